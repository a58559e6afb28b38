"""Product classes and the hyper-parameter trial budget per class (SPEC "Product classes").

A product is classified from the quantities of its *open, observed* days (closed days and
missing dates are not demand observations):

1. intermittent, when demand is sporadic: the average demand interval (ADI, the mean
   number of open days from one non-zero day to the next, counted from the start of the
   series) is at least 1.32 (Syntetos & Boylan's cut-off), or the share of zero days is
   at least `max_zero_share`. The zero share catches series that stop selling (a long
   run of trailing zeros does not show in the intervals between sales);
2. otherwise by mean daily quantity: high / medium / low volume.

Volume thresholds. `quantity` is whatever unit the tenant sends; the two reference
datasets differ: Kiel is EUR turnover per product group (means 67-402 EUR/day), North Sea
is units per product (regular sellers 20-171 units/day; the slow movers are all
intermittent). With high >= 100 and medium >= 10 per day:
- Kiel: rolls, cake, croissant, bread are high; confectionery and seasonal_bread medium;
- North Sea: item_10 is high, the other best sellers medium, the slow movers intermittent;
- low volume is left for regular sellers of under 10 a day (a handful of loaves or
  a few EUR), whose series are noisy relative to their level.

The original approach's Prophet search sizes its budget with its own, simpler rule
(`SearchClassRule`), kept apart so that `auto`'s classes do not move with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

import numpy as np


class ProductClass(StrEnum):
    HIGH_VOLUME = "high_volume"
    MEDIUM_VOLUME = "medium_volume"
    LOW_VOLUME = "low_volume"
    INTERMITTENT = "intermittent"


ADI_INTERMITTENT = 1.32
"""Average demand interval at and above which demand is intermittent (Syntetos-Boylan)."""
MAX_ZERO_SHARE = 0.5
"""Share of zero open days at and above which demand is intermittent."""
HIGH_VOLUME_MEAN = 100.0
"""Mean daily quantity at and above which a product is high volume."""
MEDIUM_VOLUME_MEAN = 10.0
"""Mean daily quantity at and above which a product is medium volume (below: low)."""


@dataclass(frozen=True, slots=True)
class ClassThresholds:
    """Thresholds of the product classification; `classify` is the one policy method."""

    adi_intermittent: float = ADI_INTERMITTENT
    max_zero_share: float = MAX_ZERO_SHARE
    high_volume_mean: float = HIGH_VOLUME_MEAN
    medium_volume_mean: float = MEDIUM_VOLUME_MEAN

    def __post_init__(self) -> None:
        if not self.high_volume_mean > self.medium_volume_mean >= 0:
            raise ValueError("need high_volume_mean > medium_volume_mean >= 0")
        if self.adi_intermittent < 1:
            raise ValueError("adi_intermittent must be >= 1 (an ADI is never below 1)")
        if not 0 < self.max_zero_share <= 1:
            raise ValueError("max_zero_share must be in (0, 1]")

    def classify(self, y_open_days: np.ndarray) -> ProductClass:
        """Class of a product from its quantities on open, observed days, in date order.

        NaN values are ignored. A product without any demand (no values, or all zero) is
        intermittent: nothing regular can be learnt from it.
        """
        y = np.asarray(y_open_days, dtype=float)
        y = y[~np.isnan(y)]
        if y.size == 0:
            return ProductClass.INTERMITTENT
        zero_share = float(np.mean(y == 0))
        if average_demand_interval(y) >= self.adi_intermittent or (
            zero_share >= self.max_zero_share
        ):
            return ProductClass.INTERMITTENT
        mean = float(np.mean(y))
        if mean >= self.high_volume_mean:
            return ProductClass.HIGH_VOLUME
        if mean >= self.medium_volume_mean:
            return ProductClass.MEDIUM_VOLUME
        return ProductClass.LOW_VOLUME


def average_demand_interval(y: np.ndarray) -> float:
    """Mean number of periods between consecutive non-zero values, the first interval
    counted from the start of the series (so a series without zeros has ADI 1).

    `inf` when there is no non-zero value.
    """
    nonzero = np.flatnonzero(np.asarray(y, dtype=float) != 0)
    if nonzero.size == 0:
        return math.inf
    # Positions are 0-based: the first sale at position k means an interval of k + 1.
    intervals = np.diff(np.concatenate(([-1], nonzero)))
    return float(np.mean(intervals))


TRIAL_BUDGET: Mapping[ProductClass, int] = MappingProxyType(
    {
        ProductClass.HIGH_VOLUME: 30,
        ProductClass.MEDIUM_VOLUME: 25,
        ProductClass.LOW_VOLUME: 20,
        ProductClass.INTERMITTENT: 15,
    }
)
"""Optuna trials of the Prophet hyper-parameter search per class (SPEC table)."""


def trials_for(product_class: ProductClass | str) -> int:
    """Trial budget of a class (accepts the enum or its string value)."""
    return TRIAL_BUDGET[ProductClass(product_class)]


@dataclass(frozen=True, slots=True)
class SearchClassRule:
    """The class that sets the trial budget of the original approach's Prophet search
    (`--models prophet`), as the original system classified: from every training value,
    closed days' zeros included (the original approach fits them as zero sales), missing
    dates (NaN) ignored. Intermittent when the zero share is above `max_zero_share` or the
    mean below `min_mean`; otherwise high / medium / low volume by the mean. It differs
    from `ClassThresholds` (no ADI, another high-volume threshold), which chooses `auto`'s
    candidates; see docs/decisions/007-faithful-original.md."""

    max_zero_share: float = 0.5
    min_mean: float = 1.0
    high_volume_mean: float = 50.0
    medium_volume_mean: float = 10.0

    def __post_init__(self) -> None:
        if not self.high_volume_mean > self.medium_volume_mean >= 0:
            raise ValueError("need high_volume_mean > medium_volume_mean >= 0")
        if not 0 < self.max_zero_share <= 1:
            raise ValueError("max_zero_share must be in (0, 1]")

    def classify(self, y_training: np.ndarray) -> ProductClass:
        """Class of a product from all its training values (NaN ignored); no value at
        all is intermittent."""
        y = np.asarray(y_training, dtype=float)
        y = y[~np.isnan(y)]
        if y.size == 0:
            return ProductClass.INTERMITTENT
        mean = float(np.mean(y))
        if float(np.mean(y == 0)) > self.max_zero_share or mean < self.min_mean:
            return ProductClass.INTERMITTENT
        if mean >= self.high_volume_mean:
            return ProductClass.HIGH_VOLUME
        if mean >= self.medium_volume_mean:
            return ProductClass.MEDIUM_VOLUME
        return ProductClass.LOW_VOLUME

    def trials(self, y_training: np.ndarray) -> int:
        """Optuna trials of the product's search: the budget of its class."""
        return TRIAL_BUDGET[self.classify(y_training)]
