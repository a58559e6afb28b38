"""Global LightGBM: one gradient-boosted tree model per tenant, trained on the daily sales
of all its products at once and used for every one of them (family "lightgbm").

Why global: a bakery's products share their weekly rhythm, their holidays and their
response to weather and footfall; one model that sees all of them learns those from many
more days than a per-product model can, and it is trained once per tenant instead of once
per product (docs/decisions/004-lightgbm-sales-features.md).

Direct, not recursive: every sales feature of a day looks back at least
`MIN_LAG_DAYS` (28) days, so one fitted model forecasts any day of the next 28 from
observed sales only: no forecast is fed back into the model there, and the backtest and
holdout (28 days) score exactly what is served. Beyond 28 days the forecast goes on in
28-day blocks, each block's forecasts standing in for the unknown sales that the next
block's lags read (recursive by blocks).

Features of a day t (one row per product and open day; `feature_names` lists them):
- `product`: the product, a LightGBM categorical feature;
- calendar: day of week, day of year, month;
- the tenant's regressors on day t (weather, footfall, holiday and calendar flags): the
  model reads them, so like Prophet with regressors it forecasts only as far as they are
  known (see `features.build_future_frame`);
- sales, divided by the product's scale (its mean sales on open days up to the training
  cut-off, so that products of any size share trees): the mean of the 91 days ending 28
  days back (the product's recent level) and the 28-day mean around the same date a year
  back (last year's level in this season). Closed days and missing dates are unknown
  (NaN), which LightGBM routes natively.
The two sales features, the tweedie objective and one OpenMP thread per booster:
docs/decisions/004-lightgbm-sales-features.md. Artifacts store the feature list they were
trained with (`sales_features`), so a model trained with an earlier list keeps
forecasting with it. The target is the scaled sales; forecasts are multiplied back.

Two members: the tenant stage trains, beside the booster above (the *level* member), a
*horizon* member per cut-off that reads the sales lags of 28, 35, 42 and 49 days and the
7- and 28-day means of the 28-day lag (`HORIZON_FEATURES`, 500 rounds at learning rate
0.05), and blends the two with one weight per tenant, chosen on the tenant's backtest
windows pooled over its products (`global_stage.weigh_members`). The level
member carries the season, the horizon member the recent weeks: which matters more
differs by tenant. docs/decisions/009-global-lightgbm-members.md. The feature rows are
hand-written rather than mlforecast's (lags by date over gappy series, no pickle):
docs/decisions/010-mlforecast-utilsforecast.md.

Training once per tenant: `train_global` fits one booster per training cut-off date that
the tenant's products need (each product's backtest windows, its holdout and its final
fit; products of a tenant share them, so a job fits about nine boosters in all) on every
product's rows up to that date, never later ones. A product's training then
*adopts* the booster of the matching cut-off instead of fitting: the caller passes the
tenant's boosters in `fit(history, context=FitContext(product, global_fits))`, and the
family looks up the booster trained up to the last open day of `history` (or the
earlier one the stage trained in its place, `GlobalFits.trained_cutoff`). So selection,
holdout evaluation and ensembles use the global model through the same `fit` / `predict`
interface as every other family. Without a matching booster
(a single product evaluated on its own, a cut-off the stage did not plan), `fit` trains
the same model on that product alone.

Stored state: the product's name, its scale, the sales features the booster reads, the
last `TAIL_DAYS` days of its sales for them, the horizon member's weight, and the
boosters: when the job stored a serving copy of its final cut-offs' boosters
(`GlobalFits.serving`), a reference to it (key, SHA-256, cut-off), loaded and verified by
`load_model(..., stored=...)`, parsed once per process and SHA-256 (`_serving_fits`);
otherwise the booster texts themselves (LightGBM's text format, no pickle) and the
category list. The job's artifact of all cut-offs is deleted when the job ends; the
serving copy is kept while a version refers to it
(docs/decisions/017-shared-serving-boosters.md).
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from ovencast.forecasting.families.base import (
    NO_CONTEXT,
    BacktestCut,
    FitContext,
    ForecastModel,
    StoredLoader,
)
from ovencast.forecasting.families.global_fits import (
    LEGACY_SALES_FEATURES,
    LIGHTGBM,
    GlobalFits,
    HorizonMember,
)
from ovencast.forecasting.frame import CLOSED, DATE, Y

MIN_LAG_DAYS = 28
LEVEL_WINDOW = 91  # the product's recent level: the 91 days ending MIN_LAG_DAYS back
LAST_YEAR_SHIFT, LAST_YEAR_WINDOW = 350, 28  # the 28 days centred on t - 364
TAIL_DAYS = LAST_YEAR_SHIFT + LAST_YEAR_WINDOW + 1
"""Days of sales a model keeps for its features: the longest look-back of any sales
feature (`LEGACY_SALES_FEATURES` included)."""
CALENDAR = ("dow", "doy", "month")
SALES_FEATURES = (f"mean_{LEVEL_WINDOW}", "last_year_mean")
PRODUCT_FEATURE = "product"
BOOSTER_PARAMS: Mapping[str, Any] = {
    "objective": "tweedie", "learning_rate": 0.1, "num_leaves": 31,
    "min_data_in_leaf": 20, "feature_fraction": 0.8, "bagging_fraction": 0.8,
    "bagging_freq": 1, "seed": 0, "deterministic": True, "force_row_wise": True,
    "verbose": -1,
    # One OpenMP thread per booster: the stage runs several boosters in threads
    # (docs/decisions/004-lightgbm-sales-features.md).
    "num_threads": 1,
}
N_ROUNDS = 150
HORIZON_FEATURES = ("lag_28", "lag_35", "lag_42", "lag_49", "mean_7", "mean_28")
HORIZON_PARAMS: Mapping[str, Any] = {**BOOSTER_PARAMS, "learning_rate": 0.05,
                                     "lambda_l2": 0.1}
HORIZON_ROUNDS = 500
ROW_SAMPLE_SEED = 0
"""The draw of a large tenant's rows when they exceed the stage's bound (`_matrix`)."""
LOCAL_PRODUCT = "_product"
"""The product name of a model trained on one product alone (no tenant stage)."""


def feature_names(regressors: Sequence[str],
                  sales_features: Sequence[str] = SALES_FEATURES) -> list[str]:
    return [PRODUCT_FEATURE, *CALENDAR, *regressors, *sales_features]


# -- features -----------------------------------------------------------------------------
def _daily(history: pd.DataFrame, regressors: Sequence[str]
           ) -> tuple[pd.Series, pd.DataFrame]:
    """(sales, regressors) on every calendar day from the first row to the last: sales NaN
    on closed and missing days. Placed by day offset in numpy (called for every fit of a
    product; pandas' sort, set_index and reindex cost 4 times as much)."""
    dates = pd.DatetimeIndex(history[DATE])
    if len(dates) == 0:
        raise ValueError("lightgbm needs at least one day of history")
    first = dates.min()
    offsets = _day_offsets(dates, first)
    if len(np.unique(offsets)) != len(offsets):
        raise ValueError("lightgbm history has the same date twice")
    index = pd.date_range(first, periods=int(offsets.max()) + 1, freq="D")
    closed = history[CLOSED].to_numpy(dtype=bool)
    sales = np.full(len(index), np.nan)
    sales[offsets] = np.where(closed, np.nan, history[Y].to_numpy(dtype=float))
    exog = np.full((len(index), len(regressors)), np.nan)
    for column, name in enumerate(regressors):
        exog[offsets, column] = history[name].to_numpy(dtype=float)
    return (pd.Series(sales, index=index, name=Y),
            pd.DataFrame(exog, index=index, columns=list(regressors)))


def _day_offsets(dates: pd.DatetimeIndex, first: pd.Timestamp) -> np.ndarray:
    """Whole days from `first` to each of `dates` (their times of day dropped)."""
    days = dates.to_numpy(dtype="datetime64[D]")
    return (days - np.datetime64(first.date(), "D")).astype(np.int64)


def _sales_feature(scaled: pd.Series, name: str) -> np.ndarray:
    """One sales feature of every day of `scaled` (daily, NaN where unknown); each reads
    only days at least MIN_LAG_DAYS earlier."""
    if name.startswith("lag_"):
        return scaled.shift(int(name[4:])).to_numpy()
    if name.startswith("mean_"):
        window = int(name[5:])
        return scaled.shift(MIN_LAG_DAYS).rolling(window, min_periods=1).mean().to_numpy()
    if name == "same_weekday_mean":
        weeks = pd.concat([scaled.shift(lag) for lag in (28, 35, 42, 49)], axis=1)
        return weeks.mean(axis=1).to_numpy()
    if name == "last_year_mean":
        return scaled.shift(LAST_YEAR_SHIFT).rolling(
            LAST_YEAR_WINDOW, min_periods=1).mean().to_numpy()
    raise ValueError(f"unknown lightgbm sales feature {name!r}")


def _features(sales: pd.Series, regressors: pd.DataFrame, *, scale: float, code: int,
              names: Sequence[str]) -> np.ndarray:
    """One row of features per day of `sales.index` (a daily index), the columns `names`
    (product, calendar, the regressors' columns, then sales features), float64. A plain
    array: a forecast builds these for every 28-day block of every backtest window, and a
    DataFrame's construction and LightGBM's reading of it cost 4 times the features."""
    index = pd.DatetimeIndex(sales.index)
    scaled = sales / scale
    calendar = {"dow": index.dayofweek, "doy": index.dayofyear, "month": index.month}
    values = np.empty((len(index), len(names)))
    for i, name in enumerate(names):
        if name == PRODUCT_FEATURE:
            values[:, i] = code
        elif name in calendar:
            values[:, i] = calendar[name]
        elif name in regressors.columns:
            values[:, i] = regressors[name].to_numpy(dtype=float)
        else:
            values[:, i] = _sales_feature(scaled, name)
    return values


@dataclass(frozen=True, eq=False)  # eq=False: hashed by identity (params is a dict)
class _Member:
    """How one member's boosters are trained: its sales features and parameters."""

    sales_features: tuple[str, ...]
    params: Mapping[str, Any]
    rounds: int


LEVEL = _Member(SALES_FEATURES, BOOSTER_PARAMS, N_ROUNDS)
HORIZON = _Member(HORIZON_FEATURES, HORIZON_PARAMS, HORIZON_ROUNDS)


def _scale(sales: pd.Series) -> float:
    value = float(sales.mean()) if sales.notna().any() else 0.0
    return value if value > 0 else 1.0


@dataclass(frozen=True)
class _Matrix:
    """The training rows of a tenant's products, built once and shared by every cut-off
    and member: one row per product and observed open day (grouped by product, in the
    order of the histories given, then by date), the columns `names` (product, calendar,
    regressors, every member's sales features) in float32 with the sales features
    unscaled. A row's sales features read only days at least 28 days earlier, so they are
    the same whatever later data exists; only the product's scale (and so the division
    in `_training_rows`) depends on the cut-off. float32: LightGBM bins every feature (255
    bins) and keeps its labels in float32 itself; half the memory of float64 for a chain's
    millions of rows. docs/decisions/012-scale.md."""

    names: tuple[str, ...]
    sales_features: tuple[str, ...]  # every member's, unscaled in `values`
    values: np.ndarray  # float32 (rows, names)
    sales: np.ndarray  # float64 (rows,): what sold
    days: np.ndarray  # datetime64[D] (rows,)
    codes: np.ndarray  # int32 (rows,): the row's product in the category order
    bounds: dict[int, tuple[int, int]]  # product code -> its rows [start, end)

    def scales_at(self, cutoff: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
        """The rows up to `cutoff` (their indexes) and the scale of each product (by
        code) there: its mean sales on its observed days up to the cut-off (1 when not
        positive), as `_scale` computes it."""
        rows = np.flatnonzero(self.days <= np.datetime64(cutoff.date(), "D"))
        codes = self.codes[rows]
        size = int(self.codes.max()) + 1 if len(self.codes) else 0
        counts = np.bincount(codes, minlength=size)
        sums = np.bincount(codes, weights=self.sales[rows], minlength=size)
        means = np.divide(sums, counts, out=np.zeros(size), where=counts > 0)
        return rows, np.where(means > 0, means, 1.0)

    def features(self, rows: np.ndarray, scales: np.ndarray, sales_features: Sequence[str],
                 regressors: Sequence[str]) -> np.ndarray:
        """float32 features of `rows` as a member reads them (`feature_names` order), the
        sales features divided by each row's scale: a fresh array, the matrix unchanged."""
        names = feature_names(regressors, sales_features)
        columns = np.array([self.names.index(name) for name in names])
        values: np.ndarray = self.values[rows[:, None], columns]
        scaled = [names.index(name) for name in sales_features]
        values[:, scaled] /= scales[:, None]
        return values


def _matrix(histories: Mapping[str, pd.DataFrame], regressors: Sequence[str],
            products: Sequence[str], sales_features: Sequence[str] = SALES_FEATURES,
            *, max_rows: int | None = None) -> _Matrix:
    """The `_Matrix` of every non-empty history; `products` gives the product feature's
    codes. Filled in place (one allocation), product by product.

    `max_rows`: when the observed days of all products exceed it, each product keeps the
    same share of its observed days, drawn uniformly (seeded: the same rows every run),
    so that a chain's boosters cost a bounded time and memory whatever its size and
    every product, every season and every weekday stays represented (decision 012). The
    features are computed on the whole history first: lags and rolling means are exact."""
    names = tuple(feature_names(regressors, sales_features))
    observed_days = {product: int((~h[CLOSED].astype(bool) & h[Y].notna()).sum())
                     for product, h in histories.items()}
    share = 1.0
    if max_rows is not None and sum(observed_days.values()) > max_rows:
        share = max_rows / sum(observed_days.values())
    rng = np.random.default_rng(ROW_SAMPLE_SEED)
    kept: dict[str, np.ndarray | None] = {}  # product -> its kept observed rows (None: all)
    total = 0
    for product, count in observed_days.items():
        sample = None
        if share < 1.0 and count:
            sample = np.sort(rng.choice(count, size=max(1, round(count * share)),
                                        replace=False))
        kept[product] = sample
        total += count if sample is None else len(sample)
    values = np.empty((total, len(names)), dtype=np.float32)
    sales = np.empty(total)
    days = np.empty(total, dtype="datetime64[D]")
    codes = np.empty(total, dtype=np.int32)
    bounds: dict[int, tuple[int, int]] = {}
    filled = 0
    for product, history in histories.items():
        if history.empty:
            continue
        daily, exog = _daily(history, regressors)
        code = products.index(product)
        observed = np.flatnonzero(daily.notna().to_numpy())
        sample = kept[product]
        if sample is not None:
            observed = observed[sample]
        end = filled + len(observed)
        values[filled:end] = _features(daily, exog, scale=1.0, code=code,
                                       names=names)[observed]
        sales[filled:end] = daily.to_numpy()[observed]
        days[filled:end] = daily.index.to_numpy()[observed].astype("datetime64[D]")
        codes[filled:end] = code
        bounds[code] = (filled, end)
        filled = end
    assert filled == total, "one row per product and date"
    return _Matrix(names=names, sales_features=tuple(sales_features), values=values,
                   sales=sales, days=days, codes=codes, bounds=bounds)


def _training_rows(matrix: _Matrix, cutoff: pd.Timestamp, member: _Member,
                   regressors: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The features and target of `member` at `cutoff`: every product's observed days up
    to it, divided by the product's scale there."""
    rows, scale = matrix.scales_at(cutoff)
    if not len(rows):
        raise ValueError(f"no observed sales up to {cutoff.date()} to train on")
    scales = scale[matrix.codes[rows]]
    return (matrix.features(rows, scales, member.sales_features, regressors),
            matrix.sales[rows] / scales)


def _booster_at(matrix: _Matrix, cutoff: pd.Timestamp, member: _Member,
                regressors: Sequence[str]) -> Any:
    import lightgbm as lgb  # 1-2 s import: only where a model is trained or served

    # Nothing but the dataset refers to the rows, so they are freed once LightGBM has
    # binned them (free_raw_data), before the rounds.
    data = lgb.Dataset(*_training_rows(matrix, cutoff, member, regressors),
                       feature_name=feature_names(regressors, member.sales_features),
                       categorical_feature=[PRODUCT_FEATURE], free_raw_data=True)
    return lgb.train(dict(member.params), data, num_boost_round=member.rounds)


class BoosterTrainer(Protocol):
    """Trains one booster elsewhere (another engine: `training/dask_stage.py`) and
    returns its model text (LightGBM's text format). `features`: float32 rows in
    `feature_names` order, the first column the product's code (categorical)."""

    def __call__(self, features: np.ndarray, target: np.ndarray, *,
                 feature_names: Sequence[str], params: Mapping[str, Any], rounds: int
                 ) -> str: ...


def fit_booster(histories: Mapping[str, pd.DataFrame], regressors: Sequence[str], *,
                products: Sequence[str], cutoff: pd.Timestamp,
                sales_features: Sequence[str] = SALES_FEATURES) -> Any:
    """One booster on every product's rows up to `cutoff` (inclusive). `products` is the
    category order (the product feature's codes). Raises ValueError when no product has
    an observed open day up to the cutoff."""
    member = _Member(tuple(sales_features), BOOSTER_PARAMS, N_ROUNDS)
    return _booster_at(_matrix(histories, regressors, products, sales_features), cutoff,
                       member, regressors)


# -- the tenant stage's boosters, and adopting them ---------------------------------------
def train_global(histories: Mapping[str, pd.DataFrame], regressors: Sequence[str],
                 cutoffs: Sequence[pd.Timestamp], *, workers: int = 1,
                 horizon: bool = True, trainer: BoosterTrainer | None = None,
                 max_rows: int | None = None) -> GlobalFits:
    """Fit one booster of each member (the level member; the horizon member too when
    `horizon`, weight 0 until `global_stage` weighs it) per distinct cut-off on all
    `histories` (product -> history frame) up to it, `workers` boosters at a time
    (threads: LightGBM trains without the GIL; each booster uses one OpenMP thread), or
    one at a time by `trainer` (another engine, e.g. a Dask cluster). A cut-off without
    any observed sale before it is skipped. `max_rows`: a bound on the rows the boosters
    learn from (`_matrix`)."""
    started = time.monotonic()
    products = tuple(sorted(histories))
    ordered = sorted({pd.Timestamp(c).normalize() for c in cutoffs})
    members = [LEVEL, HORIZON] if horizon else [LEVEL]
    matrix = _matrix(histories, regressors, products,
                     tuple(dict.fromkeys(f for m in members for f in m.sales_features)),
                     max_rows=max_rows)

    def fit(job: tuple[_Member, pd.Timestamp]) -> str | None:
        member, cutoff = job
        try:
            if trainer is None:
                return str(_booster_at(matrix, cutoff, member, regressors).model_to_string())
            return trainer(*_training_rows(matrix, cutoff, member, regressors),
                           feature_names=feature_names(regressors, member.sales_features),
                           params=member.params, rounds=member.rounds)
        except ValueError:
            return None

    jobs = [(member, cutoff) for member in members for cutoff in ordered]
    # Another engine trains one booster at a time on all its workers.
    with ThreadPoolExecutor(max_workers=1 if trainer else max(1, workers)) as pool:
        texts = dict(zip(jobs, pool.map(fit, jobs), strict=True))

    def boosters_of(member: _Member) -> dict[str, str]:
        return {cutoff.date().isoformat(): text for cutoff in ordered
                if (text := texts[(member, cutoff)]) is not None}

    return GlobalFits(products=products, regressors=tuple(regressors),
                      boosters=boosters_of(LEVEL), seconds=time.monotonic() - started,
                      sales_features=SALES_FEATURES,
                      horizon=HorizonMember(boosters_of(HORIZON), HORIZON_FEATURES)
                      if horizon else None)


def member_backtests(fits: GlobalFits, histories: Mapping[str, pd.DataFrame],
                     windows: Mapping[str, Sequence[tuple[pd.Timestamp, pd.DatetimeIndex]]]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What sold and each member's forecast (level, horizon; unblended, >= 0) on the
    open days of every product's backtest windows: `windows` maps a product to its
    (cut-off, days) pairs, each day within the 28 days after its cut-off. The features of
    such a day read only sales up to the cut-off (every sales feature looks back 28 days
    or more), so they are computed once over each history and scaled per cut-off, as a
    model adopting that cut-off's boosters computes them; one prediction per member and
    cut-off for all products."""
    if fits.horizon is None:
        raise ValueError("no horizon member")
    members = ((fits.sales_features, fits.boosters),
               (fits.horizon.sales_features, fits.horizon.boosters))
    union = tuple(dict.fromkeys(f for features, _ in members for f in features))
    wanted = {p: h for p, h in histories.items() if windows.get(p)}
    matrix = _matrix(wanted, fits.regressors, fits.products, union)
    parts: dict[pd.Timestamp, list[np.ndarray]] = {}
    for product, product_windows in windows.items():
        bounds = matrix.bounds.get(fits.products.index(product)) if product in wanted \
            and product in fits.products else None
        if bounds is None:
            continue
        days = matrix.days[bounds[0]:bounds[1]]
        for cutoff, window_days in product_windows:
            inside = np.isin(days, window_days.to_numpy().astype("datetime64[D]"))
            if inside.any():
                parts.setdefault(cutoff, []).append(bounds[0] + np.flatnonzero(inside))
    y: list[np.ndarray] = []
    forecasts: list[list[np.ndarray]] = [[], []]
    for cutoff, chunks in parts.items():
        key = fits.trained_cutoff(cutoff.date().isoformat())
        if any(key not in boosters for _, boosters in members):
            continue
        rows = np.concatenate(chunks)
        row_scales = matrix.scales_at(cutoff)[1][matrix.codes[rows]]
        y.append(matrix.sales[rows])
        for index, (names, boosters) in enumerate(members):
            features = matrix.features(rows, row_scales, names, fits.regressors)
            predicted = _parsed_booster(boosters[key]).predict(features, num_threads=1)
            forecasts[index].append(np.clip(predicted, 0.0, None) * row_scales)
    if not y:
        empty = np.zeros(0)
        return empty, empty, empty
    return (np.concatenate(y), np.concatenate(forecasts[0]), np.concatenate(forecasts[1]))


@functools.lru_cache(maxsize=16)
def _parsed_booster(text: str) -> Any:
    """A booster parsed from its model text, kept for the next model that holds the same
    text: a worker process trains several products of a tenant, and each of them adopts
    the same boosters (one per cut-off). A parsed booster is only read (LightGBM's predict
    is thread-safe for one booster). Size: docs/decisions/004-lightgbm-sales-features.md."""
    import lightgbm as lgb

    return lgb.Booster(model_str=text)


SERVING_CACHE_SIZE = 4
_serving: OrderedDict[str, GlobalFits] = OrderedDict()
_serving_lock = threading.Lock()


def _serving_fits(key: str, sha256: str, loader: StoredLoader) -> GlobalFits:
    """A job's stored serving boosters, parsed once per process and digest: the models
    of all a job's products refer to the same copy. A digest found here is not loaded
    again: the artifact that names it was verified, and so is what is kept."""
    digest = sha256.lower()
    with _serving_lock:
        if digest in _serving:
            _serving.move_to_end(digest)
            return _serving[digest]
    fits = GlobalFits.from_bytes(loader(key, sha256))
    with _serving_lock:
        _serving[digest] = fits
        while len(_serving) > SERVING_CACHE_SIZE:
            _serving.popitem(last=False)
    return fits


@dataclass(frozen=True)
class _History:
    """A product's history as `LightGBMModel.backtest_forecasts` reads it: the days of
    its longest window's rows, its daily sales from `first` (NaN: closed or missing),
    and the position of the last open row up to each row."""

    days: np.ndarray  # datetime64[D]
    values: np.ndarray
    first: np.datetime64
    last_open: np.ndarray


def _days(frame: pd.DataFrame) -> np.ndarray:
    return frame[DATE].to_numpy(dtype="datetime64[D]")


# -- the family -----------------------------------------------------------------------------
class LightGBMModel(ForecastModel):
    """One product's view of a (tenant-wide) LightGBM booster. No params."""

    family = LIGHTGBM

    def __init__(self, *, regressors: Sequence[str] = (),
                 params: Mapping[str, Any] | None = None) -> None:
        if params:
            raise ValueError(f"lightgbm takes no params, got {sorted(params)}")
        super().__init__(regressors=regressors, params={})
        self._booster: Any = None
        self._booster_text = ""
        self._products: tuple[str, ...] = ()
        self._product = LOCAL_PRODUCT
        self._scale = 1.0
        self._sales_features: tuple[str, ...] = SALES_FEATURES
        # The adopted horizon member: its booster text, sales features and weight (a
        # model without one, or with weight 0, forecasts with the level member alone).
        self._horizon: tuple[str, tuple[str, ...], float] | None = None
        self._horizon_booster: Any = None
        # Where the adopted boosters are stored for serving (key, sha256, cut-off): the
        # artifact refers to them instead of holding them; None: it holds them.
        self._serving: tuple[str, str, str] | None = None
        self._tail = pd.Series(dtype=float)
        self.adopted = False

    def _fit(self, history: pd.DataFrame, context: FitContext) -> None:
        cutoff = pd.Timestamp(history[DATE].max()).normalize()
        fits = context.global_fits
        text = None if fits is None else fits.booster_for(
            context.product, self.regressors, cutoff.date().isoformat())
        self._horizon = self._serving = None
        if text is not None and fits is not None:
            self._products, self._product = fits.products, context.product
            self._booster_text, self.adopted = text, True
            iso = fits.trained_cutoff(cutoff.date().isoformat())
            if fits.serving is not None and iso in fits.serving.cutoffs:
                self._serving = (fits.serving.key, fits.serving.sha256, iso)
            self._sales_features = tuple(fits.sales_features)
            member = fits.horizon
            horizon_text = None if member is None else member.boosters.get(iso)
            if member is not None and horizon_text is not None:
                self._horizon = (horizon_text, member.sales_features, member.weight)
        else:
            self._products, self._product = (LOCAL_PRODUCT,), LOCAL_PRODUCT
            self._sales_features = SALES_FEATURES
            booster = fit_booster({LOCAL_PRODUCT: history}, self.regressors,
                                  products=self._products, cutoff=cutoff)
            self._booster_text = booster.model_to_string()
        sales, _ = _daily(history, ())
        self._scale = _scale(sales)
        self._tail = sales.iloc[-TAIL_DAYS:]
        self._booster = self._horizon_booster = None

    def backtest_forecasts(self, windows: Sequence[BacktestCut], *,
                           context: FitContext = NO_CONTEXT) -> list[np.ndarray | None]:
        """Every window's forecast from the tenant stage's boosters of its cut-off, the
        features computed once over the product's history instead of once per window
        and member: a product's backtest windows are prefixes of one history, and every
        sales feature of a day within 28 days after a cut-off reads only sales up to
        it, so a window's features are the same rows of one feature matrix, its sales
        features divided by the product's scale at the window's cut-off. The same
        numbers as fitting and predicting each window (tested; cost: decision 022).
        None for a window the
        stage has no booster for (its fit would train one), whose open test days reach
        beyond one 28-day block (recursive: `_blocks`), or that is not a prefix of the
        longest window's history: the caller fits and predicts it as before."""
        found: list[np.ndarray | None] = [None] * len(windows)
        fits = context.global_fits
        if fits is None or not windows or not fits.adoptable(context.product,
                                                             self.regressors):
            return found
        longest = max((w.train for w in windows), key=len)
        columns = {DATE, CLOSED, Y, *self.regressors}
        if longest.empty or any(not columns <= set(frame.columns) for frame in
                                (longest, *(w.test for w in windows))):
            return found  # the fit or predict of each window says what is missing
        days = _days(longest)
        later = [w.test.loc[_days(w.test) > days[-1]] for w in windows]
        rows = pd.concat([longest, *(frame for frame in later if len(frame))],
                         ignore_index=True)
        try:
            sales, exog = _daily(rows.loc[~rows[CLOSED].to_numpy(dtype=bool)],
                                 self.regressors)
        except ValueError:  # the same date twice: the windows are not one history
            return found
        history = _History(
            days=days, values=sales.to_numpy(),
            first=np.datetime64(sales.index[0].date(), "D"),
            # the position of the last open row up to each row of `longest` (-1: none)
            last_open=np.maximum.accumulate(np.where(
                ~longest[CLOSED].to_numpy(dtype=bool), np.arange(len(longest)), -1)))
        code = fits.products.index(context.product)
        members = [(fits.sales_features, fits.boosters)]
        if fits.horizon is not None:
            members.append((fits.horizon.sales_features, fits.horizon.boosters))
        matrices = [_features(sales, exog, scale=1.0, code=code,
                              names=feature_names(self.regressors, features))
                    for features, _ in members]
        return [self._window_forecast(window, history, matrices, members, fits)
                for window in windows]

    def _window_forecast(self, window: BacktestCut, history: _History,
                         matrices: list[np.ndarray],
                         members: list[tuple[tuple[str, ...], dict[str, str]]],
                         fits: GlobalFits) -> np.ndarray | None:
        """One window of `backtest_forecasts`, or None (its docstring)."""
        train, test = window.train, window.test
        n = len(train)
        if n == 0 or n > len(history.days) or history.days[n - 1] != _days(train)[-1]:
            return None  # not a prefix of the longest window's history
        last_open = int(history.last_open[n - 1])
        if last_open < 0:
            return None
        cutoff = history.days[last_open]
        iso = fits.trained_cutoff(str(cutoff))
        level = members[0][1].get(iso)
        horizon = members[1][1].get(iso) if len(members) > 1 else None
        if level is None:
            return None
        is_open = ~test[CLOSED].to_numpy(dtype=bool)
        offsets = (_days(test)[is_open] - history.first).astype(np.int64)
        cut = int((cutoff - history.first).astype(np.int64))
        if len(offsets) and (offsets.min() <= cut or offsets.max() > cut + MIN_LAG_DAYS
                             or len(np.unique(offsets)) != len(offsets)):
            return None
        known = history.values[:cut + 1]
        count = int(np.count_nonzero(~np.isnan(known)))
        mean = float(np.nansum(known)) / count if count else 0.0  # as `_scale`
        scale = mean if mean > 0 else 1.0
        weight = fits.horizon.weight if fits.horizon is not None and horizon else 0.0
        shares = [(0, level, 1.0 - weight)] if weight < 1.0 else []
        if horizon is not None and weight > 0.0:
            shares.append((1, horizon, weight))
        predicted = np.zeros(len(offsets))
        for member, text, share in shares:
            features = matrices[member][offsets]
            names = feature_names(self.regressors, members[member][0])
            features[:, [names.index(name) for name in members[member][0]]] /= scale
            predicted += share * np.clip(_parsed_booster(text).predict(features, num_threads=1),
                                         0.0, None)
        raw = np.zeros(len(test))
        raw[is_open] = predicted * scale
        return self._finished(raw, test)

    @property
    def horizon_weight(self) -> float:
        return 0.0 if self._horizon is None else self._horizon[2]

    def member_forecasts(self, future: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Each member's raw forecast of `future`'s dates within the first 28 days after
        the fit (the level member's, the horizon member's or None), unblended: the
        evidence the tenant stage weighs the members on. Closed days are not zeroed."""
        future = future.reset_index(drop=True)
        level = self._blocks(future, weight=0.0)
        if self._horizon is None:
            return level, None
        return level, self._blocks(future, weight=1.0)

    def _predict(self, future: pd.DataFrame) -> np.ndarray:
        return self._blocks(future, weight=self.horizon_weight)

    def _blocks(self, future: pd.DataFrame, *, weight: float) -> np.ndarray:
        """Forecast in 28-day blocks, each block's (blended) forecasts standing in for
        the sales the next block's lags read. `weight`: the horizon member's share.
        Days are positions from the kept tail's first day (numpy: a product's backtests
        call this for every window, and pandas' reindexing cost more than the features)."""
        if len(future) == 0:
            return np.zeros(0)
        first, known = self._tail.index.min(), len(self._tail)
        offsets = _day_offsets(pd.DatetimeIndex(future[DATE]), first)
        if (offsets < known).any():
            raise ValueError(f"lightgbm forecasts dates after "
                             f"{self._tail.index.max().date()} only")
        days = int(offsets.max()) + 1
        index = pd.date_range(first, periods=days, freq="D")
        sales = np.full(days, np.nan)
        sales[:known] = self._tail.to_numpy(dtype=float)
        # A date asked twice: its first row counts.
        _, rows = np.unique(offsets, return_index=True)
        given = offsets[rows]
        exog = np.full((days, len(self.regressors)), np.nan)
        for column, name in enumerate(self.regressors):
            exog[given, column] = future[name].to_numpy(dtype=float)[rows]
        # Only the open days asked for are forecast; a day not asked for (a gap in the
        # request, closed days after the last fitted one) stays unknown, as closed and
        # missing days are in training, so the answer for a date never depends on which
        # other dates were asked for.
        wanted = np.zeros(days, dtype=bool)
        wanted[given] = ~future[CLOSED].to_numpy(dtype=bool)[rows]
        regressors = pd.DataFrame(exog, index=index, columns=list(self.regressors))
        members = self._members(weight)
        code = self._products.index(self._product)
        for start in range(known, days, MIN_LAG_DAYS):
            block = np.flatnonzero(wanted[start:start + MIN_LAG_DAYS]) + start
            if len(block) == 0:
                continue
            history = pd.Series(sales, index=index)
            predicted = np.zeros(len(block))
            for booster, names, share in members:
                features = _features(history, regressors, scale=self._scale, code=code,
                                     names=names)
                predicted += share * np.clip(booster.predict(features[block],
                                                             num_threads=1), 0.0, None)
            # The block's forecasts are the next block's lags.
            sales[block] = predicted * self._scale
        answer: np.ndarray = np.nan_to_num(sales[offsets], nan=0.0)
        return answer

    def _members(self, weight: float) -> list[tuple[Any, list[str], float]]:
        """(booster, feature names, share) of the members with a share > 0."""
        found = []
        if weight < 1.0 or self._horizon is None:
            found.append((self._load_booster(),
                          feature_names(self.regressors, self._sales_features),
                          1.0 - weight if self._horizon is not None else 1.0))
        if self._horizon is not None and weight > 0.0:
            if self._horizon_booster is None:
                self._horizon_booster = _parsed_booster(self._horizon[0])
            found.append((self._horizon_booster,
                          feature_names(self.regressors, self._horizon[1]), weight))
        return found

    def _load_booster(self) -> Any:
        if self._booster is None:
            self._booster = _parsed_booster(self._booster_text)
        return self._booster

    def _state(self) -> dict[str, Any]:
        shared = self._serving is not None
        state: dict[str, Any] = {
            "product": self._product, "scale": self._scale, "adopted": self.adopted,
            "sales_features": list(self._sales_features),
            "tail_start": self._tail.index.min().date().isoformat(),
            "tail": [None if np.isnan(v) else float(v) for v in self._tail.to_numpy()],
            # Only a member that forecasts is stored (weight 0: the level member alone).
            "horizon": None if self.horizon_weight == 0.0 or self._horizon is None else {
                "sales_features": list(self._horizon[1]), "weight": self._horizon[2],
                **({} if shared else {"booster": self._horizon[0]})},
        }
        if self._serving is not None:
            key, sha256, cutoff = self._serving
            state["serving"] = {"key": key, "sha256": sha256, "cutoff": cutoff}
        else:
            state |= {"booster": self._booster_text, "products": list(self._products)}
        return state

    def _restore(self, state: Mapping[str, Any]) -> None:
        serving = state.get("serving")
        self._serving = None if not serving else (
            str(serving["key"]), str(serving["sha256"]), str(serving["cutoff"]))
        # Referring to the serving boosters: texts and categories come from them
        # (`_attach_stored`).
        self._booster_text = "" if serving else str(state["booster"])
        self._products = () if serving else tuple(state["products"])
        self._product = str(state["product"])
        if not serving:
            self._check_product()
        self._scale = float(state["scale"])
        self.adopted = bool(state.get("adopted", False))
        self._sales_features = tuple(state.get("sales_features", LEGACY_SALES_FEATURES))
        horizon = state.get("horizon")
        self._horizon = None if not horizon else (
            "" if serving else str(horizon["booster"]), tuple(horizon["sales_features"]),
            float(horizon["weight"]))
        self._horizon_booster = None
        values = [np.nan if v is None else float(v) for v in state["tail"]]
        self._tail = pd.Series(values, index=pd.date_range(state["tail_start"],
                                                           periods=len(values), freq="D"))
        self._booster = None

    def _attach_stored(self, loader: StoredLoader | None) -> None:
        if self._serving is None:
            return
        key, sha256, cutoff = self._serving
        if loader is None:
            raise ValueError(f"lightgbm artifact refers to the stored boosters {key!r}: "
                             "load it with its store")
        fits = _serving_fits(key, sha256, loader)
        horizon = None if fits.horizon is None else fits.horizon.boosters.get(cutoff)
        if cutoff not in fits.boosters or (self._horizon is not None and horizon is None):
            raise ValueError(f"lightgbm artifact: the stored boosters {key!r} hold no "
                             f"booster of cut-off {cutoff}")
        self._booster_text, self._products = fits.boosters[cutoff], fits.products
        self._check_product()
        if self._horizon is not None and horizon is not None:  # (checked above)
            self._horizon = (horizon, *self._horizon[1:])

    def _check_product(self) -> None:
        if self._product not in self._products:
            raise ValueError(f"lightgbm artifact: product {self._product!r} not among "
                             "its categories")
