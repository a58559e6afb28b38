"""Weekly seasonal naive: the baseline every model must beat.

The forecast for a date is the last observed open-day value on the same weekday in the
fitted history. A weekday never observed open (e.g. a shop whose calendar does not mark
its closed Sundays) gets the last observed open-day value of any weekday. Regressors
offered to the constructor are dropped: `regressors` is always empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ovencast.forecasting.families.base import FitContext, ForecastModel
from ovencast.forecasting.frame import DATE, Y


class SeasonalNaive(ForecastModel):
    family = "seasonal_naive"

    def __init__(
        self,
        *,
        regressors: Sequence[str] = (),
        params: Mapping[str, Any] | None = None,
    ) -> None:
        # The model reads no regressor, so it declares none (whatever the caller offers):
        # its forecasts then never need future weather or traffic values.
        del regressors
        super().__init__(regressors=(), params=params)
        self._last_by_weekday: dict[int, float] = {}
        self._last_value = 0.0

    def _fit(self, history: pd.DataFrame, context: FitContext) -> None:
        # `history` is open days sorted by date: the last row per weekday is the latest.
        # Weekdays as pandas' dayofweek: Monday = 0.
        weekdays = pd.DatetimeIndex(history[DATE]).dayofweek
        values = history[Y].to_numpy(dtype=float)
        self._last_by_weekday = {int(d): float(v) for d, v in zip(weekdays, values, strict=True)}
        self._last_value = float(values[-1])

    def _predict(self, future: pd.DataFrame) -> np.ndarray:
        weekdays = pd.DatetimeIndex(future[DATE]).dayofweek
        return np.array(
            [self._last_by_weekday.get(int(d), self._last_value) for d in weekdays], dtype=float
        )

    def _state(self) -> dict[str, Any]:
        return {
            "last_by_weekday": {str(d): v for d, v in sorted(self._last_by_weekday.items())},
            "last_value": self._last_value,
        }

    def _restore(self, state: Mapping[str, Any]) -> None:
        self._last_by_weekday = {int(d): float(v) for d, v in state["last_by_weekday"].items()}
        self._last_value = float(state["last_value"])
