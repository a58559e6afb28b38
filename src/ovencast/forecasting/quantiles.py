"""Forecast quantiles P10 / P50 / P90 by split conformal prediction on out-of-sample
residuals.

Calibration. From pairs (actual y, point forecast ŷ) that the model did NOT see when it
was fitted (the rolling-origin backtest windows of `selection`, or the holdout where there
was no backtest), take the *scaled* residuals

    e = (y - ŷ) / s(ŷ),     s(ŷ) = max(ŷ, floor),   floor = FLOOR_SHARE * mean(y)

and keep two of their order statistics: `lower`, the floor((n + 1) * 0.1)-th smallest,
and `upper`, the ceil((n + 1) * 0.9)-th smallest (the split-conformal finite-sample
rule: with exchangeable errors each tail then holds at most 10 % in expectation).
Scaling by the forecast makes the interval proportional to the level: a bakery's errors
grow with the day's volume (a Saturday's band is wider than a Monday's). The floor keeps
the band from collapsing where the forecast is near 0 (an intermittent product's rate, a
forecast of 0 on an open day); its absolute width there is that of a forecast of `floor`.
The pool is horizon-agnostic: 1 to 28 days ahead alike. Intervals therefore do not widen
further out; for the forecasts a bakery plans with (days to a few weeks) that is the
right size, far-out dates get the same relative band.

Forecast. For a point forecast ŷ (the model's forecast):

    P50 = ŷ                                  (the point forecast itself, not re-centred)
    P10 = max(0, ŷ + min(lower, 0) * s(ŷ))
    P90 =        ŷ + max(upper, 0) * s(ŷ)
    all three 0 on closed days

so 0 <= P10 <= P50 <= P90 always holds. P50 is the point forecast so that `forecast`
and `p50` never disagree; the models are selected on WAPE, whose optimum is the median.

Counts (`counts`: the product's sales are whole units, not turnover): the models'
forecast ŷ is a mean (LightGBM's tweedie objective, Prophet, the rates of Croston and
TSB), and the median of a count lies below its mean by up to ln 2 units: a product that
sells 0.6 a day sells nothing on most days. There P50 is the median of a Poisson count
with mean ŷ (the least skewed count with that mean: no dispersion is estimated), and the
band is widened where needed to keep P10 <= P50 <= P90
(docs/decisions/030-median-of-counts.md). P10 and P90 are then whole units too: P10
rounded up, P90 down, which leaves the band's coverage of counts as it was
(`counts.whole_units_band`, decision 031). A count's `upper` is calibrated on the band's
joint coverage (`_count_band`, decision 032): where most days sell nothing, a P10 of 0
already holds the lower tail, and an upper tail cut at 10 % on its own left a band that
held about 90 % of a slow seller's days. Turnover (Kiel's EUR) keeps P50 = ŷ and the
per-tail ranks.

The calibration is a few numbers (`QuantileCalibration.to_dict`), stored with the model
version (`details["quantiles"]`), so that any stored version can give quantiles without
refitting anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ovencast.forecasting.counts import count_median, whole_units_band
from ovencast.forecasting.evaluation import Evaluation
from ovencast.forecasting.frame import CLOSED, YHAT, Y

QUANTILE_LEVELS = (0.1, 0.5, 0.9)
"""The quantiles a forecast carries: P10, P50 (the point forecast), P90."""
FLOOR_SHARE = 0.1
"""The scale floor as a share of the mean actual of the calibration days."""
METHOD = "split_conformal_scaled"


@dataclass(frozen=True, slots=True)
class QuantileCalibration:
    """Scaled-residual quantiles of one model (see the module docstring)."""

    lower: float
    upper: float
    floor: float
    n: int
    source: str  # where the residuals came from: "backtest" or "holdout"
    counts: bool = False  # the product sells whole units: P50 is a count's median

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError("a calibration needs at least one residual")
        if not (math.isfinite(self.lower) and math.isfinite(self.upper)):
            raise ValueError("calibration quantiles must be finite")
        if not (math.isfinite(self.floor) and self.floor > 0):
            raise ValueError("the scale floor must be positive")

    def interval(
        self, point: np.ndarray, closed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(P10, P50, P90) for the point forecasts `point`; 0 where `closed` is set."""
        yhat = np.clip(np.asarray(point, dtype=float), 0.0, None)
        scale = np.maximum(yhat, self.floor)
        p10 = np.clip(yhat + min(self.lower, 0.0) * scale, 0.0, None)
        p90 = yhat + max(self.upper, 0.0) * scale
        p50 = yhat.copy()
        if self.counts:
            p50 = count_median(yhat)
            p10, p90 = whole_units_band(p10, p90)
            p10, p90 = np.minimum(p10, p50), np.maximum(p90, p50)
        if closed is not None:
            mask = np.asarray(closed, dtype=bool)
            for values in (p10, p50, p90):
                values[mask] = 0.0
        return p10, p50, p90

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": METHOD,
            "levels": list(QUANTILE_LEVELS),
            "lower": self.lower,
            "upper": self.upper,
            "floor": self.floor,
            "n": self.n,
            "source": self.source,
            "counts": self.counts,
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> QuantileCalibration:
        if value.get("method") != METHOD:
            raise ValueError(f"unknown quantile method {value.get('method')!r}")
        return cls(
            lower=float(value["lower"]),
            upper=float(value["upper"]),
            floor=float(value["floor"]),
            n=int(value["n"]),
            source=str(value["source"]),
            # A version stored before counts had a median of their own: P50 = ŷ.
            counts=bool(value.get("counts", False)),
        )


def calibrate(
    actual: np.ndarray | list[float],
    predicted: np.ndarray | list[float],
    *,
    source: str,
    counts: bool = False,
) -> QuantileCalibration:
    """Calibration from out-of-sample pairs (observed open days only; same length).
    `counts`: the product sells whole units (`counts.in_whole_units`): P50 is then a count's
    median (module docstring).

    Raises ValueError without a pair to calibrate on."""
    y = np.asarray(actual, dtype=float)
    yhat = np.clip(np.asarray(predicted, dtype=float), 0.0, None)
    if y.shape != yhat.shape or y.ndim != 1:
        raise ValueError(f"actual {y.shape} and predicted {yhat.shape} must be equal 1-d")
    keep = np.isfinite(y) & np.isfinite(yhat)
    y, yhat = y[keep], yhat[keep]
    n = int(y.size)
    if n == 0:
        raise ValueError("no out-of-sample residuals to calibrate quantiles on")
    mean = float(np.mean(np.abs(y)))
    # An all-zero calibration window: any positive floor; the band is then 0-wide
    # relative to it unless the forecasts were not 0.
    floor = FLOOR_SHARE * mean if mean > 0 else 1.0
    scaled = np.sort((y - yhat) / np.maximum(yhat, floor))
    lower_rank = max(1, math.floor((n + 1) * QUANTILE_LEVELS[0]))
    upper_rank = min(n, math.ceil((n + 1) * QUANTILE_LEVELS[-1]))
    calibration = QuantileCalibration(
        lower=float(scaled[lower_rank - 1]),
        upper=float(scaled[upper_rank - 1]),
        floor=floor,
        n=n,
        source=source,
        counts=counts,
    )
    return _count_band(calibration, y, yhat, scaled) if counts else calibration


def _count_band(calibration: QuantileCalibration, y: np.ndarray, yhat: np.ndarray,
                scaled: np.ndarray) -> QuantileCalibration:
    """A count's band calibrated on its joint coverage: the lowest `upper` (among the
    scaled residuals up to the per-tail one) whose served band (P10 at 0 or above, whole
    units, holding the median) covers the split-conformal share of the calibration pairs
    for P10..P90. A slow seller's lower tail is mostly 0 sold, which a P10 of 0 already
    holds: with both tails cut at 10 % its band held about 90 % (decision 032)."""
    n = calibration.n
    target = min(n, math.ceil((n + 1) * (QUANTILE_LEVELS[-1] - QUANTILE_LEVELS[0])))
    candidates = np.unique(scaled[(scaled >= 0.0) & (scaled < calibration.upper)])

    def held(upper: float) -> int:
        p10, _, p90 = replace(calibration, upper=upper).interval(yhat)
        return int(np.sum((y >= p10) & (y <= p90)))

    low, high = 0, len(candidates)  # bisect: the band only widens as `upper` grows
    while low < high:
        middle = (low + high) // 2
        if held(float(candidates[middle])) >= target:
            high = middle
        else:
            low = middle + 1
    if low == len(candidates):
        return calibration
    return replace(calibration, upper=float(candidates[low]))


def coverage(actual: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """Share of `actual` inside [low, high]; NaN when there is nothing to cover."""
    y = np.asarray(actual, dtype=float)
    if y.size == 0:
        return math.nan
    inside = (y >= np.asarray(low, dtype=float)) & (y <= np.asarray(high, dtype=float))
    return float(np.mean(inside))


def _holdout_pairs(evaluation: Evaluation) -> tuple[np.ndarray, np.ndarray]:
    scored = evaluation.holdout_predictions
    scored = scored.loc[~scored[CLOSED].astype(bool)]
    return scored[Y].to_numpy(dtype=float), scored[YHAT].to_numpy(dtype=float)


def checked_on_holdout(calibration: QuantileCalibration, evaluation: Evaluation
                       ) -> dict[str, Any]:
    """A calibration (from the backtest) as stored with a version, plus its check on the
    holdout it never saw: the share of holdout days inside P10..P90."""
    actual, predicted = _holdout_pairs(evaluation)
    p10, _, p90 = calibration.interval(predicted)
    share = coverage(actual, p10, p90)
    return {**calibration.to_dict(),
            "holdout_coverage": None if math.isnan(share) else share}


def holdout_calibration(evaluation: Evaluation, *, counts: bool = False
                        ) -> dict[str, Any] | None:
    """A calibration from the holdout residuals (when there was no backtest), as stored
    with a version; None when the holdout has no observed open day."""
    actual, predicted = _holdout_pairs(evaluation)
    try:
        return calibrate(actual, predicted, source="holdout", counts=counts).to_dict()
    except ValueError:
        return None
