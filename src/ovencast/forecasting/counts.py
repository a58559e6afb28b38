"""Forecasts of counts: a product whose recorded quantities are whole units (not
turnover) is served whole numbers, the median of a count with the model's mean and a band
whose ends are whole units (docs/decisions/030-median-of-counts.md and
031-served-forecast-scored.md). Used by the quantiles (`quantiles.py`) and by the holdout
evaluation, which scores what is served (`evaluation.py`)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def count_median(mean: np.ndarray) -> np.ndarray:
    """The median of a Poisson count with each of `mean` as its mean (0 for a mean of 0):
    the smallest k with P(N <= k) >= 1/2."""
    from scipy.stats import poisson  # only where a forecast of counts is made

    mu = np.clip(np.asarray(mean, dtype=float), 0.0, None)
    return np.where(mu > 0.0, poisson.ppf(0.5, np.where(mu > 0.0, mu, 1.0)), 0.0)


def whole_units_band(p10: np.ndarray, p90: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The band in whole units: P10 rounded up, P90 down. A count lies inside [p10, p90]
    exactly when it lies inside [ceil(p10), floor(p90)], so the band's coverage of counts
    is unchanged and its ends are counts a baker can bake (decision 031); the slack keeps
    a float's last bit from moving an end by a whole unit."""
    slack = 1e-9
    return np.ceil(p10 - slack) + 0.0, np.floor(p90 + slack)  # + 0.0: ceil(-1e-9) is -0.0


def in_whole_units(sales: np.ndarray | pd.Series) -> bool:
    """Whether every recorded quantity of `sales` (NaN: none recorded) is a whole number:
    units sold rather than turnover, so that its forecasts are counts."""
    values = np.asarray(sales, dtype=float)
    values = values[np.isfinite(values)]
    return bool(values.size) and bool(np.all(values == np.round(values)))
