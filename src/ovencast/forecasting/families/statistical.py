"""Statistical families from statsforecast, fitted on one regular daily series:

    auto_ets     AutoETS, weekly season; the ETS form (error/trend/season: additive,
                 multiplicative or none, damped or not) is chosen by AICc.
    mstl         MSTL: the series is decomposed (STL, LOESS) into weekly and, with enough
                 history, yearly seasonal components plus a trend; the trend is forecast by
                 a non-seasonal AutoETS, each season is repeated.
    auto_arima   AutoARIMA (Hyndman-Khandakar stepwise search), weekly season.

None of them reads regressors: a constructor's `regressors` are dropped and `regressors`
is always empty, so their forecasts never wait for future weather or traffic values.
(AutoARIMA could take exogenous regressors, but then the stored forecast path below would
not exist: every forecast would need a refit with the future values. Regressors belong
to the global gradient-boosting family.)

Parameters (`params`, all optional, stored in the artifact envelope):

    auto_ets     season_length 7, model "ZZZ" (statsforecast's code, Z = chosen by AICc),
                 damped None (None: both tried; True/False: forced)
    mstl         season_length 7, yearly_seasonality "auto" (a 365-day season when the
                 regular series spans >= YEARLY_MIN_SPAN_DAYS days, the two full years STL
                 needs) or a bool, trend_model "ZZN" (AutoETS code of the trend
                 forecaster; its season letter must be N)
    auto_arima   season_length 7, approximation "auto" (conditional sum of squares during
                 the order search, then maximum likelihood for the chosen order: on when
                 the series is longer than ARIMA_APPROXIMATION_MIN_DAYS, the rule of R's
                 forecast::auto.arima; statsforecast's own default is off) or a bool,
                 stepwise True

Cost (one fit, measured on the shared 2-core development machine; Kiel bread has 1 857
regular days, North Sea item_10 1 715): AutoETS 0.6-2.5 s, MSTL (seasons 7 and 365)
0.2-0.3 s with STL_JUMP_DAYS (1.1-1.3 s without), AutoARIMA with the approximation
1.2-3.2 s, without it 14-30 s (a whole
`evaluate_family`, which fits twice: 42-65 s, for a holdout WAPE no better: 0.240 vs
0.227 on Kiel bread, 0.192 vs 0.193 on item_10). Loading an artifact and forecasting 366
days takes a few milliseconds.

Regular series. statsforecast models need one value per day. The history a family gets
has open days only (the base class removes closed rows) and missing dates (a till that
did not report). Both kinds of gap are filled the same way, by *same-weekday linear
interpolation*: a missing Tuesday is interpolated between the nearest observed Tuesdays
before and after it (the nearest one at the edges of that weekday's observations). A
weekday never observed open (a shop closed every Sunday) is interpolated between its
neighbouring days instead. Why not a weekday median for closed days: a closure of weeks
(the North Sea shop closes in winter) would be filled with a level typical of the whole
history, which bends the trend and the yearly season at exactly the dates where the
true level is lowest; the weekday interpolation keeps both the weekly shape and the local
level. The filled values are never scored: closed days are forecast as 0 by the base
class and metrics use observed days only. The series runs from the first to the last
open day, so it never starts or ends with a filled value. How many days were filled is
kept in the state (`filled_days`).

Stored state. statsforecast's fitted objects are not JSON. The state holds
- `path`: the forecast for the STORED_HORIZON_DAYS days after the last fitted day,
  computed at fit time. Predictions inside it are a lookup: loading an artifact costs
  nothing (no refit: an AutoARIMA refit can take half a minute), and an artifact keeps
  forecasting what it forecast when it was evaluated, whatever statsforecast version is
  installed later;
- `start` and `values`: the regular training series (with `params`, the whole model
  spec). A date further out than `path` refits the same spec on this series and forecasts
  up to that date (ETS, ARIMA and MSTL forecasts do not depend on the horizon asked for,
  so the first STORED_HORIZON_DAYS of the refit equal `path`); the refit is cached in
  memory, not stored.
Two years of path cover the forecast service's longest request (366 days) even when the
history ends with a long closure (the forecast starts after the last *recorded* date,
which may be months after the last open day). A five-year artifact is about 25 KB.

statsforecast is imported where a model is built (fit, or a refit past the stored path),
not at module import: it costs about 3 s (statsmodels, scipy.stats), and the registry
imports every family in every process that loads an artifact, while serving from the
stored path needs none of it.

Dates. `predict` forecasts dates after the last fitted (open) day, in any order and with
any gaps; a date on or before it raises ValueError (these are not in-sample smoothers).
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ovencast.forecasting.families.base import FitContext, ForecastModel
from ovencast.forecasting.frame import DATE, Y

WEEK_DAYS = 7
STL_JUMP_DAYS = 10
YEARLY_SEASON_DAYS = 365
"""The yearly season in days (statsforecast needs an integer period; 365.25 rounds down)."""
YEARLY_MIN_SPAN_DAYS = 2 * YEARLY_SEASON_DAYS
"""MSTL adds the yearly season only when the regular series has at least two full years."""
STORED_HORIZON_DAYS = 731
"""Days of forecast path stored in an artifact (two years)."""
ARIMA_APPROXIMATION_MIN_DAYS = 150
"""`approximation="auto"` turns the AutoARIMA search approximation on above this length."""


# -- dates and the regular series -----------------------------------------------------------
def steps_after(last_fitted: pd.Timestamp, dates: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Days from `last_fitted` to each of `dates` (1 = the next day). Raises ValueError
    when a date is on or before `last_fitted`."""
    # Whole days in numpy: DatetimeIndex.normalize() infers a frequency on every call,
    # and this runs for every backtest window of every candidate.
    days = pd.DatetimeIndex(pd.to_datetime(dates)).to_numpy().astype("datetime64[D]")
    last = np.datetime64(pd.Timestamp(last_fitted).date(), "D")
    steps = (days - last).astype(int)
    if steps.size and steps.min() < 1:
        first = str(days[int(np.argmin(steps))])
        raise ValueError(
            f"can only forecast dates after the fitted history, which ends "
            f"{last_fitted.date().isoformat()}; got {first}"
        )
    return steps


def regular_daily_series(open_days: pd.DataFrame) -> tuple[pd.Series, int]:
    """One value per calendar day from the first to the last row of `open_days` (columns
    `date`, `y`; open, observed days), gaps filled by same-weekday linear interpolation
    (see the module docstring). Returns the series and how many days were filled."""
    observed = pd.Series(
        open_days[Y].to_numpy(dtype=float),
        index=pd.DatetimeIndex(open_days[DATE]).normalize(),
    ).sort_index()
    observed = observed[~observed.index.duplicated(keep="last")]
    grid = pd.date_range(observed.index[0], observed.index[-1], freq="D")
    series = observed.reindex(grid)
    gaps = series.isna()
    filled = series.copy()
    for weekday in range(WEEK_DAYS):
        same_day = series[grid.dayofweek == weekday]
        if same_day.notna().any():
            filled[same_day.index] = same_day.interpolate(method="linear", limit_direction="both")
    # Weekdays never observed: between the neighbouring days.
    filled = filled.interpolate(method="linear", limit_direction="both")
    return filled, int(gaps.sum())


# -- the shared family ----------------------------------------------------------------------
class StatsforecastFamily(ForecastModel):
    """A statsforecast model on the regular daily series; see the module docstring.

    A subclass sets `family` and `default_params` and builds the statsforecast model for a
    series of a given length (`_build`)."""

    default_params: ClassVar[Mapping[str, Any]]

    def __init__(
        self,
        *,
        regressors: Sequence[str] = (),
        params: Mapping[str, Any] | None = None,
    ) -> None:
        del regressors  # never read (see the module docstring), so never declared
        super().__init__(regressors=(), params=params)
        unknown = set(self.params) - set(self.default_params)
        if unknown:
            raise ValueError(f"unknown {self.family} params {sorted(unknown)}")
        self._validate_params()
        self._start: pd.Timestamp | None = None
        self._values = np.empty(0)
        self._path = np.empty(0)
        self._filled_days = 0
        self._selected = ""
        self._extended: np.ndarray | None = None

    # -- what a subclass implements -----------------------------------------------------
    @abstractmethod
    def _build(self, n_days: int) -> Any:
        """A fresh, unfitted statsforecast model for a regular series of `n_days` values."""

    def _validate_params(self) -> None:
        """Raise ValueError for a parameter value the family cannot use."""
        season = self._param("season_length")
        if not isinstance(season, int) or isinstance(season, bool) or season < 1:
            raise ValueError(f"season_length must be a positive int, not {season!r}")

    def _describe(self, fitted: Any) -> str:
        """A short text naming the fitted form (stored for inspection only)."""
        return str(fitted)

    # -- ForecastModel ------------------------------------------------------------------
    def _fit(self, history: pd.DataFrame, context: FitContext) -> None:
        series, filled = regular_daily_series(history)
        values = series.to_numpy(dtype=float)
        path, selected = self._forecast(values, STORED_HORIZON_DAYS)
        self._start = pd.Timestamp(series.index[0])
        self._values = values
        self._path = path
        self._filled_days = filled
        self._selected = selected
        self._extended = None

    def _predict(self, future: pd.DataFrame) -> np.ndarray:
        steps = steps_after(self.last_fitted_date, future[DATE])
        if steps.size == 0:
            return np.empty(0)
        path = self._path
        if steps.max() > path.size:
            if self._extended is None or self._extended.size < steps.max():
                self._extended, _ = self._forecast(self._values, int(steps.max()))
            path = self._extended
        forecast: np.ndarray = path[steps - 1]
        return forecast

    def _state(self) -> dict[str, Any]:
        return {
            "start": self._require_start().date().isoformat(),
            "values": self._values.tolist(),
            "path": self._path.tolist(),
            "filled_days": self._filled_days,
            "selected": self._selected,
        }

    def _restore(self, state: Mapping[str, Any]) -> None:
        self._start = pd.Timestamp(state["start"])
        self._values = np.asarray(state["values"], dtype=float)
        self._path = np.asarray(state["path"], dtype=float)
        self._filled_days = int(state["filled_days"])
        self._selected = str(state["selected"])
        self._extended = None

    # -- inspection ---------------------------------------------------------------------
    @property
    def last_fitted_date(self) -> pd.Timestamp:
        """The last day of the fitted series (the last open day of the history)."""
        return self._require_start() + pd.Timedelta(days=self._values.size - 1)

    @property
    def selected(self) -> str:
        """The fitted form, e.g. "ETS(M,N,M)" or "ARIMA(0,1,0)(2,1,0)[7]"."""
        return self._selected

    @property
    def filled_days(self) -> int:
        """Days of the regular series that were filled (closed days and missing dates)."""
        return self._filled_days

    # -- internals ----------------------------------------------------------------------
    def _forecast(self, values: np.ndarray, horizon: int) -> tuple[np.ndarray, str]:
        model = self._build(values.size)
        # AutoARIMA warns about optimiser codes of candidate orders it then rejects, ETS
        # divides by zero degrees of freedom on very short series (in its variance only).
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.filterwarnings("ignore", message="possible convergence problem")
            model.fit(y=values)
            mean = np.asarray(model.predict(h=horizon)["mean"], dtype=float)
        return mean, self._describe(model)

    def _param(self, name: str) -> Any:
        return self.params.get(name, self.default_params[name])

    def _require_start(self) -> pd.Timestamp:
        if self._start is None:
            raise RuntimeError(f"{self.family} model is not fitted")
        return self._start


def _ets_method(fitted: Any) -> str:
    model = getattr(fitted, "model_", None)
    return str(model["method"]) if isinstance(model, dict) and "method" in model else ""


class AutoETSModel(StatsforecastFamily):
    family = "auto_ets"
    default_params: ClassVar[Mapping[str, Any]] = {
        "season_length": WEEK_DAYS,
        "model": "ZZZ",
        "damped": None,
    }

    def _validate_params(self) -> None:
        super()._validate_params()
        _check_ets_code(self._param("model"), "model")
        damped = self._param("damped")
        if damped is not None and not isinstance(damped, bool):
            raise ValueError(f"damped must be None or a bool, not {damped!r}")

    def _build(self, n_days: int) -> Any:
        from statsforecast.models import AutoETS

        return AutoETS(
            season_length=int(self._param("season_length")),
            model=str(self._param("model")),
            damped=self._param("damped"),
        )

    def _describe(self, fitted: Any) -> str:
        return _ets_method(fitted)


class MSTLModel(StatsforecastFamily):
    family = "mstl"
    default_params: ClassVar[Mapping[str, Any]] = {
        "season_length": WEEK_DAYS,
        "yearly_seasonality": "auto",
        "trend_model": "ZZN",
    }

    def _validate_params(self) -> None:
        super()._validate_params()
        yearly = self._param("yearly_seasonality")
        if yearly != "auto" and not isinstance(yearly, bool):
            raise ValueError(f"yearly_seasonality must be 'auto' or a bool, not {yearly!r}")
        trend = self._param("trend_model")
        _check_ets_code(trend, "trend_model")
        if trend[2] != "N":
            raise ValueError(f"trend_model must not be seasonal (third letter N), not {trend!r}")

    def season_lengths(self, n_days: int) -> list[int]:
        """The seasons MSTL decomposes a regular series of `n_days` values into."""
        yearly = self._param("yearly_seasonality")
        with_yearly = n_days >= YEARLY_MIN_SPAN_DAYS if yearly == "auto" else bool(yearly)
        if with_yearly and n_days < YEARLY_MIN_SPAN_DAYS:
            raise ValueError(
                f"a yearly season needs {YEARLY_MIN_SPAN_DAYS} days of history, "
                f"the series has {n_days}"
            )
        weekly = int(self._param("season_length"))
        return [weekly, YEARLY_SEASON_DAYS] if with_yearly else [weekly]

    def _build(self, n_days: int) -> Any:
        from statsforecast.models import MSTL, AutoETS

        seasons = self.season_lengths(n_days)
        return MSTL(
            season_length=seasons,
            trend_forecaster=AutoETS(model=str(self._param("trend_model"))),
            # With the yearly season, statsmodels' STL smooths by LOESS at every day of
            # 365-day cycles: 1.1-2 s per fit. Evaluating the smoothers every
            # STL_JUMP_DAYS days and interpolating between (statsmodels' own speed-up)
            # costs 0.2 s and moved a 28-day forecast of Kiel rolls by 1 %.
            stl_kwargs=({"seasonal_jump": STL_JUMP_DAYS, "trend_jump": STL_JUMP_DAYS,
                         "low_pass_jump": STL_JUMP_DAYS}
                        if YEARLY_SEASON_DAYS in seasons else {}),
        )

    def _describe(self, fitted: Any) -> str:
        seasons = "+".join(str(s) for s in fitted.season_length)
        return f"MSTL[{seasons}] trend {_ets_method(fitted.trend_forecaster)}"


class AutoARIMAModel(StatsforecastFamily):
    family = "auto_arima"
    default_params: ClassVar[Mapping[str, Any]] = {
        "season_length": WEEK_DAYS,
        "approximation": "auto",
        "stepwise": True,
    }

    def _validate_params(self) -> None:
        super()._validate_params()
        approximation = self._param("approximation")
        if approximation != "auto" and not isinstance(approximation, bool):
            raise ValueError(f"approximation must be 'auto' or a bool, not {approximation!r}")
        if not isinstance(self._param("stepwise"), bool):
            raise ValueError("stepwise must be a bool")

    def _build(self, n_days: int) -> Any:
        from statsforecast.models import AutoARIMA

        approximation = self._param("approximation")
        if approximation == "auto":
            approximation = n_days > ARIMA_APPROXIMATION_MIN_DAYS
        return AutoARIMA(
            season_length=int(self._param("season_length")),
            approximation=bool(approximation),
            stepwise=bool(self._param("stepwise")),
        )

    def _describe(self, fitted: Any) -> str:
        from statsforecast.arima import arima_string

        model = getattr(fitted, "model_", None)
        # statsforecast has no type hints; arima_string returns the model's description.
        return str(arima_string(model)).strip() if isinstance(  # type: ignore[no-untyped-call]
            model, dict) else ""


def _check_ets_code(code: Any, name: str) -> None:
    # statsforecast's three letters: error (A, M, Z), trend (N, A, M, Z), season (N, A, M, Z).
    valid = (
        isinstance(code, str)
        and len(code) == 3
        and code[0] in "AMZ"
        and code[1] in "NAMZ"
        and code[2] in "NAMZ"
    )
    if not valid:
        raise ValueError(f"{name} must be an ETS code like 'ZZZ' or 'AAN', not {code!r}")
