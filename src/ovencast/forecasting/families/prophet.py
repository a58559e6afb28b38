"""Prophet family: trend + weekly/yearly seasonality + country holidays + the tenant's
regressors, fitted by MAP (cmdstan's optimiser).

Parameters (`params`, all optional, stored in the artifact envelope):

    country, subdivision         holiday calendar of the `holidays` package, e.g. "DE"/"SH";
                                 no country -> no holidays
    changepoint_prior_scale      Prophet default 0.05
    seasonality_prior_scale      Prophet default 10.0
    holidays_prior_scale         Prophet default 10.0; also the prior of every regressor
                                 (Prophet's `add_regressor` default), so it matters
                                 without a holiday calendar
    seasonality_mode             "additive" (default) or "multiplicative"
    yearly_seasonality           "auto" (default: on with >= YEARLY_MIN_SPAN_DAYS of history)
                                 or a bool
    weekly_seasonality           "auto" (default: on with >= WEEKLY_MIN_SPAN_DAYS of history)
                                 or a bool
    uncertainty_samples          0 (default): point forecasts only; quantiles are computed
                                 elsewhere

Fit-time options that are not part of the model (constructor keywords, not stored):

    fit_timeout_s     hard limit in seconds on the optimiser: the cmdstan process is
                      terminated when it runs longer and `fit` raises `FitTimeout`. The
                      limit is a deadline over all optimiser runs of one fit (Prophet falls
                      back from L-BFGS to Newton on failure; the fallback gets what is left).
    warm_start_from   a fitted `ProphetModel` (or its `stan_init()`) whose parameters start
                      the optimiser (Prophet's documented warm start); parameters whose
                      shape does not match this fit fall back to Prophet's defaults.

Artifacts: the fitted Prophet model is stored with Prophet's own JSON serialisation
(`prophet.serialize.model_to_json`) inside the envelope's `state`, never pickled.

Holidays cover the history's years plus `HOLIDAY_YEARS_AHEAD` years, so that forecasts of
future dates see their holidays; dates past that get no holiday effect.

Temporary files: every optimiser run writes its CSV and console output to a private
temporary directory that is removed when the fit ends (success, error or timeout); the
data/inits JSON files that cmdstanpy writes to its own temp directory are removed by
cmdstanpy itself. Nothing accumulates over hundreds of fits.

Data hand-over: every fit gives cmdstan its data as numpy arrays (`_stan_arrays`) where
Prophet's backend gives nested lists; stanio (cmdstanpy's JSON writer) converts an array
in one call but walks a nested list element by element, a quarter of a fit's time. The
JSON written, and so the fit, is the same.

Answers shared within a process: the holidays frame of a calendar and years
(`holiday_frame`), Prophet's holiday features and component matrix (`_share_answers`),
which depend on the dates, the calendar and the model's components, not on the product's
sales: a pool process computes each once for all the products that share them. Fits and
forecasts are the same (tests/forecasting/test_prophet.py compares them with Prophet's
own).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
import pandas as pd

from ovencast.forecasting.families.base import FitContext, ForecastModel
from ovencast.forecasting.features import holiday_names
from ovencast.forecasting.frame import DATE, Y

if TYPE_CHECKING:
    from prophet import Prophet


class _DropCmdStanExitCode(logging.Filter):
    """cmdstanpy logs "CmdStan error: code '-15'" when a run ends non-zero (e.g. when we
    terminate it on timeout). The same failure reaches the caller as an exception, so the
    log line is only noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "error: code" not in str(record.msg)


@functools.cache
def prophet_library() -> tuple[Any, Any, Any]:
    """(Prophet, model_from_json, model_to_json), imported on first use: prophet and the
    matplotlib it imports cost about 0.7 s, paid by every worker process that imports the
    family registry even when no Prophet model is fitted or loaded (`auto` has none)."""
    # Prophet and cmdstanpy log every fit at INFO. Set before and after importing them
    # (prophet's module sets its own logger to INFO on import; cmdstanpy configures its
    # logger lazily).
    quiet_prophet_import()
    from cmdstanpy.utils import get_logger
    from prophet import Prophet
    from prophet.serialize import model_from_json, model_to_json

    logging.getLogger("prophet").setLevel(logging.WARNING)
    get_logger().setLevel(logging.WARNING)
    get_logger().addFilter(_DropCmdStanExitCode())
    return Prophet, model_from_json, model_to_json


def quiet_prophet_import() -> None:
    """Prophet logs an ERROR on import when plotly is missing (we never plot). Called
    before anything may import it: `prophet_library`, and a service worker, whose fit
    processes send fitted Prophet models back by pickle (unpickling imports prophet)."""
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)


YEARLY_MIN_SPAN_DAYS = 730
"""Yearly seasonality is fitted only when the open history spans at least this many days."""
WEEKLY_MIN_SPAN_DAYS = 14
"""Weekly seasonality is fitted only when the open history spans at least this many days."""
HOLIDAY_YEARS_AHEAD = 2
"""Holidays are generated for the history's years plus this many following years."""
OPTIMIZER_SEED = 0
"""Fixed cmdstan seed: the same data and parameters give the same fit."""

SeasonalityMode = Literal["additive", "multiplicative"]
StanInit = dict[str, Any]

DEFAULT_PARAMS: Mapping[str, Any] = {
    "country": None,
    "subdivision": None,
    "changepoint_prior_scale": 0.05,
    "seasonality_prior_scale": 10.0,
    "holidays_prior_scale": 10.0,
    "seasonality_mode": "additive",
    "yearly_seasonality": "auto",
    "weekly_seasonality": "auto",
    "uncertainty_samples": 0,
}


class FitTimeout(TimeoutError):
    """The optimiser ran past `fit_timeout_s` and was terminated."""


class ProphetModel(ForecastModel):
    """Prophet with holidays and regressors; see the module docstring for `params`."""

    family = "prophet"

    def __init__(
        self,
        *,
        regressors: Sequence[str] = (),
        params: Mapping[str, Any] | None = None,
        fit_timeout_s: float | None = None,
        warm_start_from: ProphetModel | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(regressors=regressors, params=params)
        unknown = set(self.params) - set(DEFAULT_PARAMS)
        if unknown:
            raise ValueError(f"unknown prophet params {sorted(unknown)}")
        mode = self._param("seasonality_mode")
        if mode not in ("additive", "multiplicative"):
            raise ValueError(f"seasonality_mode must be additive or multiplicative, not {mode!r}")
        if fit_timeout_s is not None and fit_timeout_s <= 0:
            raise ValueError("fit_timeout_s must be positive")
        self.fit_timeout_s = fit_timeout_s
        self.warm_start_from = warm_start_from
        self._prophet: Prophet | None = None

    # -- ForecastModel ------------------------------------------------------------------
    def _fit(self, history: pd.DataFrame, context: FitContext) -> None:
        span_days = int((history[DATE].iloc[-1] - history[DATE].iloc[0]).days)
        prophet_class, _, _ = prophet_library()
        model = prophet_class(
            growth="linear",
            yearly_seasonality=self._seasonality(
                "yearly_seasonality", span_days, YEARLY_MIN_SPAN_DAYS
            ),
            weekly_seasonality=self._seasonality(
                "weekly_seasonality", span_days, WEEKLY_MIN_SPAN_DAYS
            ),
            daily_seasonality=False,
            holidays=self._holidays(history[DATE]),
            seasonality_mode=self._param("seasonality_mode"),
            changepoint_prior_scale=float(self._param("changepoint_prior_scale")),
            seasonality_prior_scale=float(self._param("seasonality_prior_scale")),
            holidays_prior_scale=float(self._param("holidays_prior_scale")),
            uncertainty_samples=int(self._param("uncertainty_samples")),
        )
        for name in self.regressors:
            model.add_regressor(name)
        frame = pd.DataFrame({"ds": history[DATE].to_numpy(), "y": history[Y].to_numpy(float)})
        for name in self.regressors:
            frame[name] = history[name].to_numpy(dtype=float)

        if model.stan_backend is not None:  # an instance attribute: this fit's only
            model.stan_backend.prepare_data = _stan_arrays
        fit_kwargs: dict[str, Any] = {"seed": OPTIMIZER_SEED}
        init = self._warm_start_init()
        if init is not None:
            fit_kwargs["init"] = init
        if self.fit_timeout_s is not None:
            _limit_optimizer(model, deadline=time.monotonic() + self.fit_timeout_s)

        with tempfile.TemporaryDirectory(prefix="ovencast-prophet-") as output_dir:
            try:
                with _share_answers(model):
                    model.fit(frame, output_dir=output_dir, **fit_kwargs)
            except TimeoutError as exc:
                raise FitTimeout(
                    f"prophet optimiser exceeded {self.fit_timeout_s} s and was terminated"
                ) from exc
            finally:
                # The fit result points at files in output_dir; drop it so that nothing
                # refers to the removed directory, and keep fit options (paths, inits) out
                # of the artifact.
                model.stan_fit = None
                if model.stan_backend is not None:
                    model.stan_backend.stan_fit = None
                model.fit_kwargs = {}
        self._prophet = model

    def _predict(self, future: pd.DataFrame) -> np.ndarray:
        model = self._require_prophet()
        frame = pd.DataFrame({"ds": pd.to_datetime(future[DATE]).to_numpy()})
        for name in self.regressors:
            frame[name] = future[name].to_numpy(dtype=float)
        with _share_answers(model):
            forecast = model.predict(frame)
        return forecast["yhat"].to_numpy(dtype=float)

    def _state(self) -> dict[str, Any]:
        model_to_json = prophet_library()[2]
        return {"prophet": json.loads(model_to_json(self._require_prophet()))}

    def _restore(self, state: Mapping[str, Any]) -> None:
        model_from_json = prophet_library()[1]
        self._prophet = model_from_json(json.dumps(state["prophet"]))

    # -- warm start ---------------------------------------------------------------------
    def start_from(self, fitted: ForecastModel) -> Self:
        """Prophet's documented warm start from the same spec fitted on a shorter
        history (unless this model already has one): the refit on the whole history
        converges in fewer L-BFGS steps to nearly the same optimum (decision 021)."""
        if self.warm_start_from is None and isinstance(fitted, ProphetModel) \
                and fitted._prophet is not None:
            self.warm_start_from = fitted.stan_init()  # not the model: nothing kept alive
        return self

    def stan_init(self) -> StanInit:
        """The fitted MAP parameters in the shape `Prophet.fit(init=...)` takes (Prophet's
        documented warm start): scalars `k`, `m`, `sigma_obs`, arrays `delta`, `beta`."""
        params = self._require_prophet().params
        init: StanInit = {}
        for name in ("k", "m", "sigma_obs"):
            init[name] = float(np.asarray(params[name]).reshape(-1)[0])
        for name in ("delta", "beta"):
            init[name] = np.asarray(params[name], dtype=float)[0].copy()
        return init

    @property
    def prophet(self) -> Prophet:
        """The underlying fitted Prophet object (for inspection; do not refit it)."""
        return self._require_prophet()

    # -- internals ----------------------------------------------------------------------
    def _param(self, name: str) -> Any:
        return self.params.get(name, DEFAULT_PARAMS[name])

    def _seasonality(self, name: str, span_days: int, min_span_days: int) -> bool:
        value = self._param(name)
        if value == "auto":
            return span_days >= min_span_days
        if isinstance(value, bool):
            return value
        raise ValueError(f"{name} must be 'auto' or a bool, not {value!r}")

    def _holidays(self, dates: pd.Series) -> pd.DataFrame | None:
        country = self._param("country")
        if not country:
            return None
        return holiday_frame(
            country,
            self._param("subdivision"),
            first_year=int(dates.iloc[0].year),
            last_year=int(dates.iloc[-1].year) + HOLIDAY_YEARS_AHEAD,
        )

    def _warm_start_init(self) -> StanInit | None:
        source = self.warm_start_from
        if source is None:
            return None
        if isinstance(source, ProphetModel):
            return source.stan_init()
        init = dict(source)
        for name in ("delta", "beta"):
            init[name] = np.asarray(init[name], dtype=float)
        return init

    def _require_prophet(self) -> Prophet:
        if self._prophet is None:
            raise RuntimeError("prophet model is not fitted")
        return self._prophet


def holiday_frame(
    country: str, subdivision: str | None, *, first_year: int, last_year: int
) -> pd.DataFrame:
    """Prophet `holidays` frame (columns `holiday`, `ds`) of a country/subdivision for the
    years first_year..last_year inclusive. Raises ValueError for an unknown country or
    subdivision. Computed once per process and arguments (the holidays package computes
    the calendar's rules on every call, 18 ms; every fit of a tenant asks for the same):
    a copy of the computed frame."""
    return _holiday_frame(country, subdivision, first_year, last_year).copy()


@functools.lru_cache(maxsize=32)
def _holiday_frame(country: str, subdivision: str | None, first_year: int, last_year: int
                   ) -> pd.DataFrame:
    calendar = holiday_names(country, subdivision, tuple(range(first_year, last_year + 1)))
    rows = sorted(calendar.items())
    return pd.DataFrame(
        {
            "holiday": [name for _, name in rows],
            "ds": pd.to_datetime([day for day, _ in rows]),
        }
    )


_SHARED: dict[tuple[Any, ...], Any] = {}
_SHARED_MAX = 512


def _shared(key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
    """The answer stored under `key` in this process, computed on a miss (the table is
    emptied when full: a pool process trains one tenant's products at a time). Safe in
    threads (the service forecasts in several): the answer returned is the one this call
    found or computed, never a second lookup that another thread's clear() could miss."""
    found = _SHARED.get(key)
    if found is None:
        found = compute()
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        _SHARED[key] = found
    return found


# The Prophet objects `_share_answers` has patched, with how many blocks are inside: the
# service's forecast threads share one loaded model, so the patch goes on with the first
# block in and comes off with the last one out.
_PATCHED: dict[int, int] = {}
_PATCH_LOCK = threading.Lock()


@contextlib.contextmanager
def _share_answers(model: Prophet) -> Iterator[None]:
    """While in the block, give `model` (instance attributes: this model's only) versions
    of two of Prophet's feature methods that compute each distinct answer once per
    process. They are removed when the last block on `model` is left (`_PATCHED`: threads
    forecasting with one model share them): they are closures, and a fitted model must
    stay picklable (the service's fit process sends it back to the worker).

    On every fit and every predict Prophet builds its holiday features (a Python loop over
    the holidays, each looked up in the dates) and its component matrix (which feature
    columns make up which component: a pandas crosstab), together about a fifth of a
    fit's Python time. Their answers depend only on the dates, the holidays and the
    model's components, which most products of a tenant share (the same open days, the
    same calendar and regressors). Each key holds every input Prophet's method reads; a
    miss calls Prophet's own method, a hit returns copies and has the method's one side
    effect (the training's holiday names). tests/forecasting/test_prophet.py checks the
    forecasts and the stored model against Prophet's own methods. Not stored with the
    model (Prophet's serialisation writes a fixed list of attributes)."""
    column_matrix: Callable[..., tuple[pd.DataFrame, Any]] = model.regressor_column_matrix
    holiday_features: Callable[..., tuple[pd.DataFrame, list[float], list[str]]] = (
        model.make_holiday_features)

    def regressor_column_matrix(seasonal_features: pd.DataFrame, modes: Any
                                ) -> tuple[pd.DataFrame, Any]:
        names, trained = model.train_holiday_names, model.train_component_cols
        key = ("component_cols", tuple(seasonal_features.columns),
               tuple((mode, tuple(modes[mode])) for mode in sorted(modes)),
               None if names is None else tuple(names),
               tuple((name, props["mode"]) for name, props in model.extra_regressors.items()),
               model.holidays_mode,
               None if trained is None else (tuple(trained.columns),
                                             trained.to_numpy().tobytes()))
        matrix, found = _shared(key, lambda: column_matrix(
            seasonal_features, {m: list(v) for m, v in modes.items()}))
        return matrix.copy(), {m: list(v) for m, v in found.items()}

    def make_holiday_features(dates: pd.Series, holidays: pd.DataFrame
                              ) -> tuple[pd.DataFrame, list[float], list[str]]:
        key = ("holiday_features", dates.to_numpy(dtype="datetime64[ns]").tobytes(),
               tuple(holidays.columns),
               pd.util.hash_pandas_object(holidays, index=False).to_numpy().tobytes(),
               float(model.holidays_prior_scale))
        features, scales, names = _shared(key, lambda: holiday_features(dates, holidays))
        if model.train_holiday_names is None:  # Prophet's method records them on a fit
            model.train_holiday_names = pd.Series(names)
        return features.copy(), list(scales), list(names)

    with _PATCH_LOCK:
        inside = _PATCHED.get(id(model), 0)
        if not inside:
            model.regressor_column_matrix = regressor_column_matrix  # type: ignore[method-assign]
            model.make_holiday_features = make_holiday_features  # type: ignore[method-assign]
        _PATCHED[id(model)] = inside + 1
    try:
        yield
    finally:
        with _PATCH_LOCK:
            inside = _PATCHED.pop(id(model)) - 1
            if inside:
                _PATCHED[id(model)] = inside
            else:
                del model.regressor_column_matrix, model.make_holiday_features


_STAN_ARRAYS = ("y", "t", "cap", "t_change", "s_a", "s_m")


def _stan_arrays(init: Mapping[str, Any], data: Mapping[str, Any]
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Prophet's `CmdStanPyBackend.prepare_data` (the inits and data of one optimiser
    run) with numpy arrays where it calls `tolist()` (module docstring): stanio writes
    them as the same JSON lists. tests/forecasting/test_prophet.py compares the two."""
    inits = {"k": init["k"], "m": init["m"], "delta": np.asarray(init["delta"]),
             "beta": np.asarray(init["beta"]), "sigma_obs": init["sigma_obs"]}
    arrays = {name: np.asarray(data[name]) for name in _STAN_ARRAYS}
    return inits, {"T": data["T"], "S": data["S"], "K": data["K"], "tau": data["tau"],
                   "trend_indicator": data["trend_indicator"], **arrays,
                   "X": np.asarray(data["X"]), "sigmas": data["sigmas"]}


def _limit_optimizer(model: Prophet, *, deadline: float) -> None:
    """Make every cmdstan optimiser run of `model` end by `deadline` (time.monotonic()).

    cmdstanpy's `optimize(timeout=...)` terminates the cmdstan child process when the
    timeout passes and raises TimeoutError; Prophet forwards fit kwargs to it, but a plain
    `timeout` kwarg would restart the clock for Prophet's Newton fallback run. Wrapping the
    backend model's `optimize` gives each run only the time left.
    """
    backend = model.stan_backend
    if backend is None:  # pragma: no cover - Prophet always loads a backend
        raise RuntimeError("prophet has no stan backend")
    stan_model = backend.model
    optimize: Callable[..., Any] = stan_model.optimize

    def optimize_until_deadline(*args: Any, **kwargs: Any) -> Any:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no time left for the optimiser")
        kwargs["timeout"] = remaining
        return optimize(*args, **kwargs)

    stan_model.optimize = optimize_until_deadline
