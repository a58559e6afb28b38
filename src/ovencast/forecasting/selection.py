"""Automatic model selection for one product: rolling-origin backtests of candidate
families, the lowest backtest WAPE wins, or a weighted combination of the best few when
that backtests better.

Contract:
- Everything here sees only the frame it is given. The caller passes the *training part*
  of a history (the history minus the holdout, see `holdout`), so neither the selection
  nor the quantile calibration ever looks at the holdout; the holdout then scores the
  chosen model exactly as it scores a forced one (`evaluation.evaluate_family`).
- `BacktestPlan.windows(history)` cuts `n_windows` test windows of `horizon_days`
  calendar days, the last one ending on the last date given, each one before it ending
  where the next begins (no overlap), plus the seasonal window a year earlier (below);
  each window's model is fitted on every row before the window (an expanding origin).
  A window is left out when the rows before it have fewer than `min_train_days` open
  days, or when it has no observed open day (nothing to score).
- Every candidate is fitted once per window; a candidate's WAPE pools the observed open
  days of all its windows (a window with more sales weighs more, as in the holdout WAPE).
- Combinations are scored from the candidates' stored window predictions: no extra fit.
  For k = 2 .. `combine_top` best candidates, both inverse-WAPE and equal weights are
  scored; the best combination is chosen when its WAPE is below the best single
  candidate's by more than `ENSEMBLE_MIN_GAIN` (relative), since a combination costs k
  fits at every retraining and k times the artifact. Ties go to the simpler model.
- Under `auto`, every product keeps the tenant's global model (LightGBM) unless the
  choice above backtests more than `GLOBAL_PREFERENCE` (10 %) better than it
  (docs/decisions/001-global-model-preference.md) and has the lower WAPE in more than
  `PREFER_WINDOW_SHARE` (half) of the windows (`windows_won`; a pooled lead that one
  window carries is no evidence: docs/decisions/013-window-evidence-and-yearly-blend.md).
  Intermittent products too: an intermittent method or seasonal naive replaces the
  global model only on that evidence
  (docs/decisions/029-intermittent-products-prefer-the-global-model.md). Lists of named
  families are decided by the lowest WAPE alone (`CandidatePolicy.preferred_for`).
- Under `auto`, what a regular product keeps is the global model *blended* with a
  yearly-seasonal family (`CandidatePolicy.blend_regular`, Prophet with default parameters
  but multiplicative seasonality, and the country's holidays; decision 027): the partner's
  weight is its inverse backtest WAPE weight shrunk halfway toward equal weights, 0 when
  its pooled backtest WAPE is more than `BLEND_FAIL_RATIO` times the global model's on the
  windows it ran on (`_blended`). The partner is backtested beside the other candidates,
  on the seasonal window and the `BLEND_RECENT_WINDOWS` latest only (`partner_windows`;
  the quantiles of a blend are calibrated on those windows), and never chosen on its own
  or in the top-k combinations. A large tenant's products blend at one weight the tenant
  stage chose (`tenant_blend`, `global_stage.weigh_partner`) and do not backtest the
  partner. docs/decisions/013-window-evidence-and-yearly-blend.md,
  docs/decisions/014-cheaper-blend-partner.md, docs/decisions/016-tenant-blend-weight.md.
- A candidate that raises in any window is left out (its error is kept for the
  leaderboard); `select` raises `NoCandidate` when none is left, `NoBacktestWindow` when
  the plan gives no window at all (too short a history).

Candidate sets (`CandidatePolicy`, a policy value) name the candidates per product class.
Regular products: seasonal naive, the tenant's global LightGBM model
(`families.lightgbm_global`: trained once per tenant by the job's tenant stage, so it
costs no per-product fit), and the blend partner (Prophet with default parameters but
multiplicative seasonality, about 0.13 s a fit: the one candidate that is neither cheap
nor adopted). Croston and TSB, once regular candidates too, no longer improved a regular
product under the blend and the window rule (docs/decisions/014-cheaper-blend-partner.md);
they stay intermittent candidates.
Intermittent products: Croston, TSB, ADIDA, IMAPA, seasonal naive, LightGBM.
Why these candidates and not MSTL, AutoETS or AutoARIMA (each can be forced with
`--models`): docs/decisions/002-auto-candidates.md; why Prophet as a blend partner:
docs/decisions/013-window-evidence-and-yearly-blend.md.

The plan (`BacktestPlan`): the 6 latest 28-day windows and, besides them, the 28 days that
a forecast made a year earlier (52 weeks: same weekdays) covered (`seasonal`), because
the recent windows alone cannot show how a family does in the season to come. Why this
plan and the 5 % gain for combinations: docs/decisions/003-backtest-plan.md.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product as cartesian
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd

from ovencast.forecasting.classes import ProductClass
from ovencast.forecasting.evaluation import MIN_TRAIN_OPEN_DAYS
from ovencast.forecasting.families.base import NO_CONTEXT, FitContext, ForecastModel
from ovencast.forecasting.families.ensemble import ENSEMBLE, ensemble_params
from ovencast.forecasting.families.registry import model_class
from ovencast.forecasting.frame import CLOSED, DATE, YHAT, Y
from ovencast.forecasting.metrics import Metrics, compute_metrics
from ovencast.forecasting.metrics import wape as wape_of

AUTO = "auto"
"""The model choice that selects among the product class's candidates."""
DEFAULT_BACKTEST_WINDOWS = 6
DEFAULT_BACKTEST_HORIZON_DAYS = 28
DEFAULT_COMBINE_TOP = 3
SEASONAL_LAG_DAYS = 364
"""The seasonal window starts this many days (52 weeks: the same weekdays) before the day
after the history, i.e. it covers the weeks a forecast made a year earlier covered."""
ENSEMBLE_MIN_GAIN = 0.05
"""A combination must beat the best single candidate's backtest WAPE by more than this
share (5 %) to be chosen (docs/decisions/003-backtest-plan.md)."""
GLOBAL_PREFERENCE = 0.10
"""For every product under `auto`, regular or intermittent, a candidate (or combination)
replaces the tenant's global model only when its backtest WAPE is more than this share
(10 %) below the global model's (docs/decisions/001-global-model-preference.md, 029)."""
BLEND_FAIL_RATIO = 2.0
"""The blend partner of the global model (`CandidatePolicy.blend_regular`) loses its
weight when its pooled backtest WAPE is more than this many times the global model's
(docs/decisions/013-window-evidence-and-yearly-blend.md)."""
BLEND_RECENT_WINDOWS = 2
"""The blend partner is backtested on the plan's seasonal window and this many latest
windows only, not on all of them: its weight barely moves with more windows (0.46-0.51
on both shared datasets with 7) and each of its windows is a Prophet fit, the largest
cost of a regular product (docs/decisions/014-cheaper-blend-partner.md)."""
PREFER_WINDOW_SHARE = 0.5
"""... and only when it also has the lower WAPE than the global model in more than this
share (half) of the backtest windows: a pooled lead that one window carries (a closure,
a reopening) is no evidence (docs/decisions/013-window-evidence-and-yearly-blend.md)."""

Weighting = Literal["single", "inverse_wape", "equal", "blend"]
BacktestCallback = Callable[[str, int, int], None]
"""`on_backtest(candidate_name, n, total)`, called before candidate n (1-based) of total."""


class NoBacktestWindow(ValueError):
    """The history is too short for a single backtest window."""


class NoCandidate(RuntimeError):
    """Every candidate failed; `errors` says why, per candidate name."""

    def __init__(self, message: str, errors: Mapping[str, str]) -> None:
        super().__init__(message)
        self.errors = dict(errors)


# -- candidates -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, eq=False)
class Candidate:
    """A named model spec: family, its params, the regressor columns it is offered.

    `name` is what the leaderboard shows and what `--models` accepts; it is the family
    name unless the candidate is a parametrised variant (e.g. "mstl_weekly").
    `takes_regressors` False: `with_context` offers it none (see "prophet_holidays")."""

    name: str
    family: str
    params: Mapping[str, Any] = field(default_factory=dict)
    regressors: tuple[str, ...] = ()
    takes_regressors: bool = True

    def build(self) -> ForecastModel:
        """A fresh, unfitted model of this spec."""
        return model_class(self.family)(regressors=self.regressors, params=self.params)

    def with_context(
        self, *, regressors: Sequence[str], params: Mapping[str, Any] | None = None
    ) -> Candidate:
        """The same candidate with the tenant's regressors offered (unless it takes none)
        and extra params merged in (its own params win)."""
        return Candidate(self.name, self.family, {**(params or {}), **self.params},
                         tuple(regressors) if self.takes_regressors else (),
                         self.takes_regressors)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, "params": dict(self.params),
                "regressors": list(self.regressors)}


NAMED_CANDIDATES: Mapping[str, Candidate] = MappingProxyType({
    "mstl_weekly": Candidate("mstl_weekly", "mstl", {"yearly_seasonality": False}),
    # Multiplicative: a bakery's weekly and yearly shape scales with its level (a summer
    # week sells more on every weekday, a reopening starts low); on both shared datasets'
    # rolling origins it is the better partner and the better Prophet alone
    # (docs/decisions/027-multiplicative-blend-partner.md).
    "prophet_holidays": Candidate("prophet_holidays", "prophet",
                                  {"seasonality_mode": "multiplicative"},
                                  takes_regressors=False),
})
"""Parametrised variants of a family that `--models` and candidate sets can name."""


def resolve_candidate(name: str) -> Candidate:
    """The candidate a model name stands for: a named variant or a registered family
    (with its default params). Raises ValueError for an unknown name, "auto" or
    "ensemble" (an ensemble is what selection builds, never a candidate)."""
    if name in NAMED_CANDIDATES:
        return NAMED_CANDIDATES[name]
    if name == ENSEMBLE:
        raise ValueError("an ensemble is built by selection; name its members instead")
    if name == AUTO:
        raise ValueError("'auto' is a choice of candidates, not a candidate")
    try:
        model_class(name)
    except ValueError as exc:
        raise ValueError(f"{exc}; variants: {', '.join(sorted(NAMED_CANDIDATES))}") from None
    return Candidate(name, name)


REGULAR_CANDIDATES = ("seasonal_naive", "lightgbm")
INTERMITTENT_CANDIDATES = ("croston", "tsb", "adida", "imapa", "seasonal_naive", "lightgbm")


@dataclass(frozen=True, slots=True)
class CandidatePolicy:
    """Which candidates `auto` backtests per product class (see the module docstring);
    `for_class` is the one policy method."""

    regular: tuple[str, ...] = REGULAR_CANDIDATES
    intermittent: tuple[str, ...] = INTERMITTENT_CANDIDATES
    # The regular products' preferred candidate (`choose`'s `prefer`): the tenant's
    # global model. None: the lowest backtest WAPE alone decides.
    prefer_regular: str | None = "lightgbm"
    # ... and the intermittent products' (decision 029: an intermittent method that
    # backtests a little better forecast worse than the global model on low-volume data).
    prefer_intermittent: str | None = "lightgbm"
    # A yearly-seasonal family blended into the preferred candidate (`choose`'s
    # `blend`); backtested for regular products only, never chosen on its own.
    blend_regular: str | None = "prophet_holidays"

    def __post_init__(self) -> None:
        for names in (self.regular, self.intermittent):
            if not names:
                raise ValueError("a candidate set must not be empty")
            if len(set(names)) != len(names):
                raise ValueError(f"duplicate candidates in {names}")

    def for_class(self, product_class: ProductClass | str) -> tuple[Candidate, ...]:
        """The candidates of a class (enum or its value; an unknown or empty class is
        treated as regular)."""
        names = self.intermittent if _is_intermittent(product_class) else self.regular
        if not _is_intermittent(product_class) and self.blend_regular \
                and self.blend_regular not in names:
            names = (*names, self.blend_regular)
        return tuple(resolve_candidate(name) for name in names)

    def preferred_for(self, product_class: ProductClass | str) -> str | None:
        """The candidate that `choose` keeps unless another beats it clearly
        (`GLOBAL_PREFERENCE`): `prefer_regular` for regular classes,
        `prefer_intermittent` for intermittent ones."""
        return self.prefer_intermittent if _is_intermittent(product_class) \
            else self.prefer_regular

    def blend_for(self, product_class: ProductClass | str) -> str | None:
        """The candidate blended into the preferred one (`choose`'s `blend`):
        `blend_regular` for regular classes, None for intermittent ones."""
        return None if _is_intermittent(product_class) else self.blend_regular


def _is_intermittent(product_class: ProductClass | str) -> bool:
    """An unknown or empty class is treated as regular."""
    try:
        return ProductClass(product_class) is ProductClass.INTERMITTENT
    except ValueError:
        return False


# -- the backtest plan ------------------------------------------------------------------
@dataclass(frozen=True, slots=True, eq=False)
class BacktestWindow:
    """One rolling-origin split: fit on `train`, score on `test` (rows of `start`..`end`)."""

    start: pd.Timestamp
    end: pd.Timestamp
    train: pd.DataFrame
    test: pd.DataFrame
    seasonal: bool = False  # the window a year before the day after the history


@dataclass(frozen=True, slots=True)
class BacktestPlan:
    """Rolling-origin backtest policy; `windows` is the one policy method."""

    n_windows: int = DEFAULT_BACKTEST_WINDOWS
    horizon_days: int = DEFAULT_BACKTEST_HORIZON_DAYS
    min_train_days: int = MIN_TRAIN_OPEN_DAYS
    seasonal: bool = True

    def __post_init__(self) -> None:
        if self.n_windows < 1:
            raise ValueError(f"n_windows must be >= 1, got {self.n_windows}")
        if self.horizon_days < 1:
            raise ValueError(f"horizon_days must be >= 1, got {self.horizon_days}")
        if self.min_train_days < 1:
            raise ValueError(f"min_train_days must be >= 1, got {self.min_train_days}")

    def windows(self, history: pd.DataFrame) -> list[BacktestWindow]:
        """The windows of `history` (a history frame), oldest first; see the module
        docstring for which are left out. Frames are in date order, index reset."""
        if history.empty:
            return []
        frame = history.sort_values(DATE, kind="stable").reset_index(drop=True)
        dates = pd.DatetimeIndex(frame[DATE])
        is_open = ~frame[CLOSED].astype(bool).to_numpy()
        last = dates.max().normalize()
        step = pd.Timedelta(days=self.horizon_days)
        spans = [(last - back * step - step + pd.Timedelta(days=1), last - back * step, False)
                 for back in range(self.n_windows - 1, -1, -1)]
        if self.seasonal:
            start = last + pd.Timedelta(days=1) - pd.Timedelta(days=SEASONAL_LAG_DAYS)
            if start + step <= spans[0][0]:  # never overlaps the recent windows
                spans.insert(0, (start, start + step - pd.Timedelta(days=1), True))
        found: list[BacktestWindow] = []
        for start, end, seasonal in spans:
            # The frame is in date order: the days before `start` are its first rows.
            first = int(dates.searchsorted(start, side="left"))
            after = int(dates.searchsorted(end, side="right"))
            if int(is_open[:first].sum()) < self.min_train_days:
                continue
            if not is_open[first:after].any():
                continue
            found.append(BacktestWindow(
                start=start, end=end,
                train=frame.iloc[:first].reset_index(drop=True),
                test=frame.iloc[first:after].reset_index(drop=True), seasonal=seasonal))
        return found

    def to_dict(self) -> dict[str, Any]:
        return {"n_windows": self.n_windows, "horizon_days": self.horizon_days,
                "min_train_days": self.min_train_days, "seasonal": self.seasonal}


# -- one candidate's backtest -------------------------------------------------------------
WINDOW = "window"


@dataclass(frozen=True, slots=True, eq=False)
class FamilyBacktest:
    """One candidate over every window of a plan.

    `predictions` has one row per test row of every window, windows in order: window
    (0-based), date, y, closed, forecast. `wape` pools the observed open days of all
    windows; `window_metrics` scores each window on its own."""

    candidate: Candidate
    wape: float
    window_metrics: tuple[Metrics, ...]
    predictions: pd.DataFrame
    seconds: float

    @property
    def family(self) -> str:
        """The candidate's name (e.g. "mstl_weekly"), what the leaderboard shows."""
        return self.candidate.name

    @property
    def residuals(self) -> tuple[np.ndarray, np.ndarray]:
        """(actual, forecast) on the observed open days of every window, out of sample:
        what the quantile calibration is computed from."""
        return _open_pairs(self.predictions, self.predictions[YHAT].to_numpy(dtype=float))

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "wape": _json_float(self.wape),
                "seconds": round(self.seconds, 3),
                "windows": [_json_float(m.wape) for m in self.window_metrics]}


def backtest_family(history: pd.DataFrame, candidate: Candidate, plan: BacktestPlan, *,
                    windows: Sequence[BacktestWindow] | None = None,
                    context: FitContext = NO_CONTEXT,
                    only: Sequence[int] | None = None) -> FamilyBacktest:
    """Fit `candidate` on every window's training rows (with `context`) and score it on
    the window. `windows`: `plan.windows(history)` when the caller has them already
    (`select` cuts them once for all candidates); `only`: the positions of the windows to
    run (the others are skipped; `WINDOW` keeps the positions). Raises NoBacktestWindow
    when the plan has no window for `history`; a fit's error propagates."""
    windows = plan.windows(history) if windows is None else windows
    if not windows:
        raise NoBacktestWindow(_no_window_message(history, plan))
    started = time.monotonic()
    # The predictions' columns, window by window: one frame at the end (decision 022).
    parts: dict[str, list[np.ndarray]] = {WINDOW: [], DATE: [], Y: [], CLOSED: [], YHAT: []}
    metrics: list[Metrics] = []
    run = [index for index in range(len(windows)) if only is None or index in only]
    # What the family computes for all windows at once (the global LightGBM); None:
    # fitted and predicted window by window.
    shared = dict(zip(run, candidate.build().backtest_forecasts(
        [windows[index] for index in run], context=context), strict=True))
    for index in run:
        window, test = windows[index], windows[index].test
        forecast = shared[index]
        if forecast is None:
            model = candidate.build().fit(window.train, context=context)
            forecast = model.predict(test[[DATE, CLOSED, *model.regressors]])
        y, closed = test[Y].to_numpy(dtype=float), test[CLOSED].to_numpy(dtype=bool)
        metrics.append(compute_metrics(y[~closed], forecast[~closed],
                                       train_history=window.train))
        for name, column in ((WINDOW, np.full(len(test), index)), (DATE, test[DATE].to_numpy()),
                             (Y, y), (CLOSED, closed), (YHAT, forecast)):
            parts[name].append(column)
    predictions = pd.DataFrame({name: np.concatenate(columns)
                                for name, columns in parts.items()})
    return FamilyBacktest(
        candidate=candidate,
        wape=_wape(predictions, predictions[YHAT].to_numpy(dtype=float)),
        window_metrics=tuple(metrics),
        predictions=predictions,
        seconds=time.monotonic() - started,
    )


# -- selection ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, eq=False)
class Selection:
    """What `select` chose and why.

    `members` are the chosen candidates with their weights (one member, weight 1, for a
    single family); `wape` is the chosen model's backtest WAPE and `actual`/`predicted`
    its out-of-sample pairs on the windows' open days (for the quantile calibration).
    `backtests` are every successful candidate, best first; `errors` the failed ones."""

    members: tuple[tuple[Candidate, float], ...]
    weighting: Weighting
    wape: float
    backtests: tuple[FamilyBacktest, ...]
    errors: Mapping[str, str]
    plan: BacktestPlan
    windows: tuple[tuple[str, str], ...]
    actual: np.ndarray
    predicted: np.ndarray
    # When `choose` kept the preferred candidate over a lower backtest WAPE
    # (`GLOBAL_PREFERENCE`, `PREFER_WINDOW_SHARE`): (preferred, the choice it overruled,
    # that choice's WAPE), and (windows where that choice was better, windows scored).
    kept_preferred: tuple[str, str, float] | None = None
    windows_won: tuple[int, int] | None = None

    @property
    def chosen(self) -> str:
        """"mstl" for a single family, "ensemble(mstl+auto_ets)" for a combination."""
        return _label(self.members, self.weighting)

    def model_spec(self) -> Candidate:
        """The chosen model as one spec to fit: the single candidate, or an ensemble of
        the members with their weights."""
        if self.weighting == "single":
            return self.members[0][0]
        members = [c for c, _ in self.members]
        params = ensemble_params([c.to_dict() for c in members], [w for _, w in self.members])
        regressors = tuple(dict.fromkeys(r for c in members for r in c.regressors))
        return Candidate(self.chosen, ENSEMBLE, params, regressors)

    def alternatives(self) -> Iterator[Candidate]:
        """The chosen spec, then every single candidate in backtest order: what to fall
        back on if fitting the chosen one fails on the full history."""
        yield self.model_spec()
        for backtest in self.backtests:
            if self.weighting != "single" or backtest.candidate is not self.members[0][0]:
                yield backtest.candidate

    def leaderboard(self) -> list[dict[str, Any]]:
        """JSON-safe rows, best first: every candidate (family, wape, seconds, per-window
        wape), the best combination if one was scored, failed candidates (with error)
        last. The chosen row has "chosen": true."""
        rows: list[dict[str, Any]] = []
        for backtest in self.backtests:
            row = backtest.to_dict()
            if self.weighting == "single" and backtest.candidate is self.members[0][0]:
                row["chosen"] = True
            rows.append(row)
        if self.weighting != "single":
            seconds = sum(b.seconds for b in self.backtests
                          if any(b.candidate is c for c, _ in self.members))
            rows.append({"family": self.chosen, "wape": _json_float(self.wape),
                         "seconds": round(seconds, 3), "weighting": self.weighting,
                         "chosen": True})
        rows.sort(key=lambda r: math.inf if r["wape"] is None else r["wape"])
        rows += [{"family": name, "error": error} for name, error in self.errors.items()]
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary stored with the model version."""
        return {
            "basis": "backtest",
            "chosen": self.chosen,
            "weighting": self.weighting,
            "members": [{"name": c.name, "family": c.family, "weight": round(w, 6)}
                        for c, w in self.members],
            "wape": _json_float(self.wape),
            "plan": self.plan.to_dict(),
            "windows": [list(w) for w in self.windows],
            **({"kept_preferred": {"family": self.kept_preferred[0],
                                   "over": self.kept_preferred[1],
                                   "over_wape": _json_float(self.kept_preferred[2]),
                                   "margin": GLOBAL_PREFERENCE,
                                   **({"windows_won": list(self.windows_won),
                                       "window_share": PREFER_WINDOW_SHARE}
                                      if self.windows_won else {})}}
               if self.kept_preferred else {}),
        }


def select(history: pd.DataFrame, candidates: Sequence[Candidate], plan: BacktestPlan, *,
           combine_top: int = DEFAULT_COMBINE_TOP, min_gain: float = ENSEMBLE_MIN_GAIN,
           prefer: str | None = None, blend: str | None = None,
           tenant_blend: tuple[Candidate, float] | None = None,
           context: FitContext = NO_CONTEXT,
           on_backtest: BacktestCallback | None = None) -> Selection:
    """Backtest every candidate on `history` (the training part only; see the module
    docstring) and choose the best single candidate or combination (`choose`; `prefer`
    names the candidate kept unless another beats it clearly; `tenant_blend`: the blend
    partner and its weight chosen for the whole tenant, not among `candidates`).
    `context` goes to every candidate's fits."""
    if not candidates:
        raise ValueError("no candidates to select from")
    if combine_top < 1:
        raise ValueError("combine_top must be >= 1")
    windows = plan.windows(history)
    if not windows:
        raise NoBacktestWindow(_no_window_message(history, plan))
    results: list[FamilyBacktest] = []
    errors: dict[str, str] = {}
    for n, candidate in enumerate(candidates, start=1):
        if on_backtest is not None:
            on_backtest(candidate.name, n, len(candidates))
        only = partner_windows(windows) if prefer and candidate.name == blend else None
        try:
            results.append(backtest_family(history, candidate, plan, windows=windows,
                                           context=context, only=only))
        except Exception as exc:  # one candidate's failure never hides the others
            errors[candidate.name] = f"{type(exc).__name__}: {exc}"
    if not results:
        raise NoCandidate("every candidate failed: " + "; ".join(
            f"{name}: {error}" for name, error in errors.items()), errors)
    choice = choose(results, combine_top=combine_top, min_gain=min_gain, prefer=prefer,
                    blend=blend, tenant_blend=tenant_blend)
    return Selection(
        members=choice.members, weighting=choice.weighting, wape=choice.wape,
        backtests=choice.ranked, errors=errors, plan=plan,
        windows=tuple((w.start.date().isoformat(), w.end.date().isoformat()) for w in windows),
        actual=choice.actual, predicted=choice.predicted, kept_preferred=choice.kept_preferred,
        windows_won=choice.windows_won)


@dataclass(frozen=True, slots=True, eq=False)
class Choice:
    """What `choose` picked from a set of backtests (see `Selection` for the fields)."""

    members: tuple[tuple[Candidate, float], ...]
    weighting: Weighting
    wape: float
    ranked: tuple[FamilyBacktest, ...]
    actual: np.ndarray
    predicted: np.ndarray
    kept_preferred: tuple[str, str, float] | None = None
    windows_won: tuple[int, int] | None = None


def choose(results: Sequence[FamilyBacktest], *, combine_top: int = DEFAULT_COMBINE_TOP,
           min_gain: float = ENSEMBLE_MIN_GAIN, prefer: str | None = None,
           prefer_margin: float = GLOBAL_PREFERENCE,
           prefer_windows: float = PREFER_WINDOW_SHARE, blend: str | None = None,
           tenant_blend: tuple[Candidate, float] | None = None) -> Choice:
    """The selection rule on finished backtests (all over the same windows): the lowest
    WAPE, or a combination of the best few that beats it by more than `min_gain`
    (module docstring). Then, with `prefer` (a candidate's name) among the results: the
    preferred candidate alone unless that choice's WAPE is more than `prefer_margin`
    below its own and it wins more than `prefer_windows` of the windows (`windows_won`).
    The preferred candidate is blended with `blend`'s backtest (`_blended`), or with
    `tenant_blend`'s partner at its tenant-wide weight (`_tenant_blended`).
    bench/replay.py replays this rule on stored backtests."""
    if not results:
        raise ValueError("no backtests to choose from")
    ranked = sorted(results, key=lambda b: _rank(b.wape))
    partner = next((b for b in ranked if b.candidate.name == blend
                    and math.isfinite(b.wape)), None) if prefer else None
    pool = [b for b in ranked if b.candidate.name != blend] if prefer else ranked
    best = (pool or ranked)[0]
    chosen: tuple[tuple[Candidate, float], ...] = ((best.candidate, 1.0),)
    weighting: Weighting = "single"
    chosen_wape = best.wape
    chosen_forecast = best.predictions[YHAT].to_numpy(dtype=float)
    finite = [b for b in (pool or ranked) if math.isfinite(b.wape)]
    if math.isfinite(best.wape) and best.wape > 0:
        schemes: tuple[Weighting, ...] = ("inverse_wape", "equal")
        for k, scheme in cartesian(range(2, min(combine_top, len(finite)) + 1), schemes):
            top = finite[:k]
            raw = [1.0 / b.wape if scheme == "inverse_wape" else 1.0 for b in top]
            weights = [w / sum(raw) for w in raw]
            forecast = sum(w * b.predictions[YHAT].to_numpy(dtype=float)
                           for w, b in zip(weights, top, strict=True))
            assert isinstance(forecast, np.ndarray)
            wape = _wape(best.predictions, forecast)
            if wape < best.wape * (1.0 - min_gain) and wape < chosen_wape:
                chosen = tuple((b.candidate, w) for b, w in zip(top, weights, strict=True))
                weighting, chosen_wape, chosen_forecast = scheme, wape, forecast
    kept: tuple[str, str, float] | None = None
    won: tuple[int, int] | None = None
    blended_rows: np.ndarray | None = None
    preferred = next((b for b in finite if b.candidate.name == prefer), None)
    if preferred is not None:
        own, own_wape, own_forecast, blended_rows = (
            _tenant_blended(preferred, *tenant_blend) if tenant_blend is not None
            else _blended(preferred, partner))
        own_weighting: Weighting = "blend" if len(own) > 1 else "single"
        if chosen == ((preferred.candidate, 1.0),):
            chosen, weighting = own, own_weighting
            chosen_wape, chosen_forecast = own_wape, own_forecast
        else:
            won = windows_won(best.predictions, chosen_forecast, own_forecast)
            if (chosen_wape > own_wape * (1.0 - prefer_margin)
                    or won[0] <= prefer_windows * won[1]):
                kept = (_label(own, own_weighting), _label(chosen, weighting), chosen_wape)
                chosen, weighting = own, own_weighting
                chosen_wape, chosen_forecast = own_wape, own_forecast
    actual, predicted = _open_pairs(best.predictions, chosen_forecast)
    if weighting == "blend" and blended_rows is not None:
        # calibrated on the windows where the blend itself was backtested
        actual, predicted = _open_pairs(best.predictions.loc[blended_rows],
                                        chosen_forecast[blended_rows])
    return Choice(members=chosen, weighting=weighting, wape=chosen_wape,
                  ranked=tuple(ranked), actual=actual, predicted=predicted,
                  kept_preferred=kept, windows_won=won if kept else None)


def partner_windows(windows: Sequence[BacktestWindow]) -> list[int]:
    """Positions of the windows the blend partner is backtested on: the seasonal window
    (if the plan has one) and the `BLEND_RECENT_WINDOWS` latest."""
    latest = range(max(0, len(windows) - BLEND_RECENT_WINDOWS), len(windows))
    return sorted({*(i for i, w in enumerate(windows) if w.seasonal), *latest})


def _blended(preferred: FamilyBacktest, partner: FamilyBacktest | None
             ) -> tuple[tuple[tuple[Candidate, float], ...], float, np.ndarray,
                        np.ndarray | None]:
    """The preferred candidate blended with `partner` (members, backtest WAPE, backtest
    forecast over the preferred one's windows). The partner ran on some of those windows
    (`partner_windows`): its weight is its inverse-WAPE weight against the preferred
    one's on the same windows, shrunk halfway toward equal weights; 0 when its WAPE there
    is more than `BLEND_FAIL_RATIO` times the preferred one's, or not finite (it failed).
    The blend's backtest forecast is the preferred one's alone on the other windows; the
    last item marks the rows of the windows the blend really ran on (None: no blend)."""
    own = preferred.predictions[YHAT].to_numpy(dtype=float)
    alone = ((preferred.candidate, 1.0),), preferred.wape, own, None
    if partner is None or not math.isfinite(partner.wape):
        return alone
    shared = preferred.predictions[WINDOW].isin(
        partner.predictions[WINDOW].unique()).to_numpy()
    if not np.array_equal(preferred.predictions.loc[shared, DATE].to_numpy(),
                          partner.predictions[DATE].to_numpy()):
        raise ValueError("the blend partner's backtest days differ from the preferred "
                         "candidate's on the same windows")
    weight = partner_weight(partner.wape, _wape(preferred.predictions.loc[shared], own[shared]))
    if weight == 0.0:
        return alone
    forecast = own.copy()
    forecast[shared] = ((1.0 - weight) * own[shared]
                        + weight * partner.predictions[YHAT].to_numpy(dtype=float))
    return (((preferred.candidate, 1.0 - weight), (partner.candidate, weight)),
            _wape(preferred.predictions, forecast), forecast, shared)


def partner_weight(partner_wape: float, own_wape: float) -> float:
    """The blend partner's weight from its backtest WAPE and the preferred candidate's
    on the same windows and days: the inverse-WAPE weight shrunk halfway toward equal
    weights (0.25..0.75), 0 when the partner's WAPE is more than `BLEND_FAIL_RATIO` times
    the other's or either is not a usable number."""
    if not (math.isfinite(partner_wape) and own_wape > 0) \
            or partner_wape > BLEND_FAIL_RATIO * own_wape:
        return 0.0
    if partner_wape == 0:
        return 0.75
    inverse = (1.0 / partner_wape) / (1.0 / partner_wape + 1.0 / own_wape)
    return 0.5 * inverse + 0.25


def _tenant_blended(preferred: FamilyBacktest, partner: Candidate, weight: float
                    ) -> tuple[tuple[tuple[Candidate, float], ...], float, np.ndarray, None]:
    """The preferred candidate blended with `partner` at a weight chosen for the whole
    tenant (`global_stage.weigh_partner`): the partner has no backtest of this product,
    so the backtest forecast, WAPE and quantile calibration are the preferred one's."""
    own = preferred.predictions[YHAT].to_numpy(dtype=float)
    if weight <= 0.0:
        return ((preferred.candidate, 1.0),), preferred.wape, own, None
    return (((preferred.candidate, 1.0 - weight), (partner, weight)), preferred.wape, own,
            None)


def windows_won(predictions: pd.DataFrame, forecast: np.ndarray, other: np.ndarray
                ) -> tuple[int, int]:
    """(windows where `forecast` has the lower WAPE than `other`, windows scored): each
    window of `predictions` (a backtest's, `WINDOW` column) scored on its own open days;
    a window without sales on them scores neither and is not counted."""
    is_open = ~predictions[CLOSED].to_numpy(dtype=bool)
    y = predictions[Y].to_numpy(dtype=float)[is_open]
    f = np.asarray(forecast, dtype=float)[is_open]
    g = np.asarray(other, dtype=float)[is_open]
    window = predictions[WINDOW].to_numpy()[is_open]
    won = scored = 0
    for index in np.unique(window):
        at = window == index
        if float(np.sum(np.abs(y[at]))) <= 0:
            continue
        scored += 1
        won += int(np.sum(np.abs(y[at] - f[at])) < np.sum(np.abs(y[at] - g[at])))
    return won, scored


# -- internals ----------------------------------------------------------------------------
def _label(members: Sequence[tuple[Candidate, float]], weighting: Weighting) -> str:
    """"mstl" for a single family, "ensemble(mstl+auto_ets)" for a combination."""
    if weighting == "single":
        return members[0][0].name
    return f"{ENSEMBLE}({'+'.join(c.name for c, _ in members)})"


def _open_pairs(predictions: pd.DataFrame, forecast: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    is_open = ~predictions[CLOSED].to_numpy(dtype=bool)
    return predictions[Y].to_numpy(dtype=float)[is_open], np.asarray(forecast)[is_open]


def _wape(predictions: pd.DataFrame, forecast: np.ndarray) -> float:
    return wape_of(*_open_pairs(predictions, forecast))


def _rank(wape: float) -> float:
    return wape if math.isfinite(wape) else math.inf


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _no_window_message(history: pd.DataFrame, plan: BacktestPlan) -> str:
    n_open = 0 if history.empty else int((~history[CLOSED].astype(bool)).sum())
    return (f"no {plan.horizon_days}-day backtest window leaves {plan.min_train_days} open "
            f"days to fit on (the history given has {n_open} open days)")
