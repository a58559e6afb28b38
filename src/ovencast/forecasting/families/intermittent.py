"""Intermittent-demand families from statsforecast, for products that sell on few days:

    croston   CrostonOptimized: separate exponential smoothing of the non-zero demand
              sizes and of the intervals between them (smoothing parameters optimised);
              forecast = size / interval.
    tsb       Teunter-Syntetos-Babai: smooths the demand size and the *probability* of a
              sale; unlike Croston, the forecast decays while a product stops selling.
              Params alpha_d (size, default 0.1) and alpha_p (probability, default 0.1),
              each in (0, 1].
    adida     ADIDA: sums the series into buckets of the mean demand interval, forecasts
              the buckets by optimised simple exponential smoothing, spreads the result
              evenly back over the days.
    imapa     IMAPA: ADIDA averaged over every bucket size from 1 to the mean interval.

The series. These methods run on the sequence of *open, observed* days, in date order:
closed days are left out entirely (they are known zeros, forecast as 0 by the base
class; counting them would make a product look slower than it is on the days it can
sell) and so are missing dates (SPEC: a missing date is not a zero, and nothing else
would be a neutral value for a count that is mostly 0). No calendar regularisation is
needed: the forecast is a rate per open day.

Forecast and state. All four forecast one flat rate for every future day, so the
fitted state is that rate (plus the last fitted date and counts for inspection): loading
costs nothing and predicts exactly what was fitted. Regressors are never read:
`regressors` is always empty. Dates on or before the last fitted open day raise
ValueError, as for the statistical families. statsforecast is imported only when a model
is fitted (see `statistical`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ovencast.forecasting.families.base import FitContext, ForecastModel
from ovencast.forecasting.families.statistical import steps_after
from ovencast.forecasting.frame import DATE, Y


class IntermittentFamily(ForecastModel):
    """A flat-rate intermittent-demand method on the open-day sequence; a subclass sets
    `family`, `default_params` and builds the statsforecast model (`_build`)."""

    default_params: ClassVar[Mapping[str, Any]] = {}

    def __init__(
        self,
        *,
        regressors: Sequence[str] = (),
        params: Mapping[str, Any] | None = None,
    ) -> None:
        del regressors  # never read, so never declared
        super().__init__(regressors=(), params=params)
        unknown = set(self.params) - set(self.default_params)
        if unknown:
            raise ValueError(f"unknown {self.family} params {sorted(unknown)}")
        self._validate_params()
        self._rate = 0.0
        self._last_date: pd.Timestamp | None = None
        self._n_open_days = 0
        self._n_demand_days = 0

    @abstractmethod
    def _build(self) -> Any:
        """A fresh, unfitted statsforecast model."""

    def _validate_params(self) -> None:
        """Raise ValueError for a parameter value the family cannot use."""

    # -- ForecastModel ------------------------------------------------------------------
    def _fit(self, history: pd.DataFrame, context: FitContext) -> None:
        y = history[Y].to_numpy(dtype=float)
        mean = self._build().fit(y=y).predict(h=1)["mean"]
        rate = float(np.asarray(mean, dtype=float)[0])
        self._rate = rate if np.isfinite(rate) else 0.0
        self._last_date = pd.Timestamp(history[DATE].iloc[-1]).normalize()
        self._n_open_days = int(y.size)
        self._n_demand_days = int(np.count_nonzero(y))

    def _predict(self, future: pd.DataFrame) -> np.ndarray:
        steps = steps_after(self.last_fitted_date, future[DATE])
        return np.full(steps.size, self._rate)

    def _state(self) -> dict[str, Any]:
        return {
            "rate": self._rate,
            "last_date": self.last_fitted_date.date().isoformat(),
            "n_open_days": self._n_open_days,
            "n_demand_days": self._n_demand_days,
        }

    def _restore(self, state: Mapping[str, Any]) -> None:
        self._rate = float(state["rate"])
        self._last_date = pd.Timestamp(state["last_date"])
        self._n_open_days = int(state["n_open_days"])
        self._n_demand_days = int(state["n_demand_days"])

    # -- inspection ---------------------------------------------------------------------
    @property
    def rate(self) -> float:
        """The forecast per open day."""
        return self._rate

    @property
    def last_fitted_date(self) -> pd.Timestamp:
        if self._last_date is None:
            raise RuntimeError(f"{self.family} model is not fitted")
        return self._last_date

    def _param(self, name: str) -> Any:
        return self.params.get(name, self.default_params[name])


class CrostonModel(IntermittentFamily):
    family = "croston"

    def _build(self) -> Any:
        from statsforecast.models import CrostonOptimized

        return CrostonOptimized()


class TSBModel(IntermittentFamily):
    family = "tsb"
    default_params: ClassVar[Mapping[str, Any]] = {"alpha_d": 0.1, "alpha_p": 0.1}

    def _validate_params(self) -> None:
        for name in ("alpha_d", "alpha_p"):
            value = self._param(name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, not {value!r}")
            if not 0 < value <= 1:
                raise ValueError(f"{name} must be in (0, 1], not {value!r}")

    def _build(self) -> Any:
        from statsforecast.models import TSB

        return TSB(alpha_d=float(self._param("alpha_d")), alpha_p=float(self._param("alpha_p")))


class ADIDAModel(IntermittentFamily):
    family = "adida"

    def _build(self) -> Any:
        from statsforecast.models import ADIDA

        return ADIDA()


class IMAPAModel(IntermittentFamily):
    family = "imapa"

    def _build(self) -> Any:
        from statsforecast.models import IMAPA

        return IMAPA()
