"""Champion against challenger on the days both forecast: a paired test on the daily
absolute errors (pure functions).

The test is Diebold and Mariano's on the loss differential d_t = |e_champion,t| -
|e_challenger,t| (one value per day, in date order), its long-run variance estimated with
a Bartlett kernel of floor(n^(1/3)) lags (errors of neighbouring days are correlated),
with the small-sample correction of Harvey, Leybourne and Newbold and a Student t
reference with n - 1 degrees of freedom; two-sided. d > 0 on average: the challenger's
errors are smaller. Fewer than MIN_DAYS days: no verdict. Why this test and not a sign
test: docs/decisions/008-model-governance.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ovencast.models.states import ForecastRole

MIN_DAYS = 14
"""Two weeks: every weekday twice. Fewer paired days give no verdict."""


@dataclass(frozen=True, slots=True)
class PairedTest:
    """The comparison of two forecasts of the same days against what sold."""

    n_days: int
    champion_wape: float
    challenger_wape: float
    mean_difference: float  # mean(|e_champion| - |e_challenger|), > 0: challenger better
    statistic: float
    p_value: float
    alpha: float

    @property
    def significant(self) -> bool:
        return not math.isnan(self.p_value) and self.p_value < self.alpha

    @property
    def winner(self) -> ForecastRole | None:
        """The better one when the difference is significant, else None."""
        if not self.significant:
            return None
        return (ForecastRole.CHALLENGER if self.mean_difference > 0
                else ForecastRole.CHAMPION)

    @property
    def verdict(self) -> str:
        if self.n_days < MIN_DAYS:
            return f"too few days to tell ({self.n_days} < {MIN_DAYS})"
        if self.winner is None:
            return f"no significant difference (p = {self.p_value:.3f})"
        return f"{self.winner} significantly better (p = {self.p_value:.3g})"

    def to_dict(self) -> dict[str, Any]:
        return {"n_days": self.n_days, "champion_wape": _json(self.champion_wape),
                "challenger_wape": _json(self.challenger_wape),
                "mean_difference": _json(self.mean_difference),
                "statistic": _json(self.statistic), "p_value": _json(self.p_value),
                "alpha": self.alpha, "significant": self.significant,
                "winner": self.winner, "verdict": self.verdict}


def paired_test(actual: np.ndarray, champion: np.ndarray, challenger: np.ndarray, *,
                alpha: float) -> PairedTest:
    """Compare two forecasts of the same days (arrays in date order)."""
    y = np.asarray(actual, dtype=float)
    a = np.abs(y - np.asarray(champion, dtype=float))
    b = np.abs(y - np.asarray(challenger, dtype=float))
    n = int(y.size)
    total = float(np.sum(np.abs(y)))
    statistic, p_value = diebold_mariano(a - b) if n >= MIN_DAYS else (math.nan, math.nan)
    return PairedTest(
        n_days=n, champion_wape=float(a.sum()) / total if total > 0 else math.nan,
        challenger_wape=float(b.sum()) / total if total > 0 else math.nan,
        mean_difference=float(np.mean(a - b)) if n else math.nan,
        statistic=statistic, p_value=p_value, alpha=alpha)


def diebold_mariano(differences: np.ndarray) -> tuple[float, float]:
    """(statistic, two-sided p-value) of the mean loss differential being 0 (module
    docstring). Identical losses: (0, 1)."""
    from scipy import stats

    d = np.asarray(differences, dtype=float)
    n = int(d.size)
    if n < 2:
        return math.nan, math.nan
    centred = d - d.mean()
    lags = int(n ** (1.0 / 3.0))
    variance = float(np.sum(centred * centred)) / n
    for lag in range(1, lags + 1):  # autocovariances with the 1/n divisor (stays >= 0)
        weight = 1.0 - lag / (lags + 1.0)
        variance += 2.0 * weight * float(np.sum(centred[lag:] * centred[:-lag])) / n
    if variance <= 0.0:
        return (0.0, 1.0) if not np.any(d) else (math.copysign(math.inf, d.mean()), 0.0)
    statistic = float(d.mean()) / math.sqrt(variance / n)
    statistic *= math.sqrt((n - 1.0) / n)  # Harvey-Leybourne-Newbold, one step ahead
    return statistic, float(2.0 * stats.t.sf(abs(statistic), df=n - 1))


def _json(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else float(value)
