"""Forecast accuracy metrics (numpy; not utilsforecast's losses, which are slower per call
and pair MASE's naive error by position: docs/decisions/010-mlforecast-utilsforecast.md).

Definitions (y = actual, ŷ = forecast, sums over the evaluated days):

    wape = sum|y - ŷ| / sum|y|
    mase = mean|y - ŷ| / scale, scale = in-sample MAE of the weekly seasonal naive
           forecast on the training history (see `seasonal_naive_scale`)
    mape = mean(|y - ŷ| / |y|) over the days with y != 0   (a fraction, not percent)
    bias = sum(ŷ - y) / sum(y)   (> 0: over-forecast, i.e. waste; < 0: lost sales)

Degenerate cases never raise: a metric whose denominator is zero or that has no days to
average over is NaN (sum y == 0 -> wape and bias NaN; no non-zero actual -> mape NaN; no
pair of open days 7 days apart in the history, or a zero scale -> mase NaN; no days at all
-> all NaN). `Metrics.to_dict` turns NaN into None so that it is JSON-safe.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ovencast.forecasting.frame import CLOSED, DATE, Y

SEASON_DAYS = 7


@dataclass(frozen=True, slots=True)
class Metrics:
    wape: float
    mase: float
    mape: float
    bias: float
    n_days: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict; NaN metrics become None."""
        return {
            "wape": _json_float(self.wape),
            "mase": _json_float(self.mase),
            "mape": _json_float(self.mape),
            "bias": _json_float(self.bias),
            "n_days": self.n_days,
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Metrics:
        """Inverse of `to_dict` (None becomes NaN)."""
        return cls(
            wape=_from_json_float(value["wape"]),
            mase=_from_json_float(value["mase"]),
            mape=_from_json_float(value["mape"]),
            bias=_from_json_float(value["bias"]),
            n_days=int(value["n_days"]),
        )


def compute_metrics(
    actual: np.ndarray | pd.Series | list[float],
    predicted: np.ndarray | pd.Series | list[float],
    *,
    train_history: pd.DataFrame,
) -> Metrics:
    """Metrics of `predicted` against `actual` (same length, same day order).

    `train_history` is the history frame the model was fitted on (columns `date`, `y`,
    `closed`); it only sets the MASE scale. Pass only the days to be scored (observed open
    days): this function does not filter. Raises ValueError only when the lengths differ
    or a value is NaN (a caller error, not a degenerate case).
    """
    y = np.asarray(actual, dtype=float)
    yhat = np.asarray(predicted, dtype=float)
    if y.shape != yhat.shape or y.ndim != 1:
        raise ValueError(f"actual {y.shape} and predicted {yhat.shape} must be equal 1-d")
    if np.isnan(y).any() or np.isnan(yhat).any():
        raise ValueError("actual and predicted must not contain NaN")
    n = int(y.size)
    abs_err = np.abs(y - yhat)
    sum_y = float(np.sum(y))
    nonzero = y != 0
    scale = seasonal_naive_scale(train_history)
    mae = float(np.mean(abs_err)) if n else math.nan
    return Metrics(
        wape=wape(y, yhat),
        mase=_ratio(mae, scale),
        mape=float(np.mean(abs_err[nonzero] / np.abs(y[nonzero]))) if nonzero.any() else math.nan,
        bias=_ratio(float(np.sum(yhat - y)), sum_y),
        n_days=n,
    )


def seasonal_naive_scale(history: pd.DataFrame, *, season_days: int = SEASON_DAYS) -> float:
    """In-sample MAE of the seasonal naive forecast y[d] ≈ y[d - season_days].

    Pairs are formed by date, not position: a day counts only when it and the same date
    `season_days` earlier are both observed open days (gaps and closed days are skipped).
    NaN when there is no such pair.
    """
    is_open = ~history[CLOSED].to_numpy(dtype=bool)
    # numpy rather than a pandas join or DatetimeIndex.normalize() (which infers a
    # frequency): this runs for every backtest window of every candidate.
    day_numbers = history[DATE].to_numpy(dtype="datetime64[ns]")[is_open].astype(
        "datetime64[D]").astype(np.int64)
    values = history[Y].to_numpy(dtype=float)[is_open]
    # The last row of a day that appears twice: unique over the reversed days.
    _, last = np.unique(day_numbers[::-1], return_index=True)
    keep = np.sort(len(day_numbers) - 1 - last)
    day_numbers = day_numbers[keep]
    values = values[keep]
    order = np.argsort(day_numbers, kind="stable")
    day_numbers, values = day_numbers[order], values[order]
    earlier = np.searchsorted(day_numbers, day_numbers - season_days)
    found = earlier < day_numbers.size
    found[found] = day_numbers[earlier[found]] == day_numbers[found] - season_days
    if not found.any():
        return math.nan
    return float(np.mean(np.abs(values[found] - values[earlier[found]])))


def wape(actual: np.ndarray, predicted: np.ndarray) -> float:
    """sum |y - ŷ| / sum |y| of equal-length arrays (the days to score only); NaN when
    nothing sold."""
    y = np.asarray(actual, dtype=float)
    return _ratio(float(np.sum(np.abs(y - np.asarray(predicted, dtype=float)))),
                  float(np.sum(np.abs(y))))


def _ratio(numerator: float, denominator: float) -> float:
    if math.isnan(denominator) or denominator == 0 or math.isnan(numerator):
        return math.nan
    return numerator / denominator


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _from_json_float(value: float | None) -> float:
    return math.nan if value is None else float(value)
