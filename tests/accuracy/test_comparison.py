"""The paired test of champion against challenger (accuracy/comparison.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ovencast.accuracy.comparison import MIN_DAYS, diebold_mariano, paired_test
from ovencast.models.states import ForecastRole


def _reference_dm(d: np.ndarray) -> tuple[float, float]:
    """Diebold-Mariano written out from the textbook, independently: Bartlett weights
    1 - k/(L+1), L = floor(n^(1/3)), autocovariances with the 1/n divisor, HLN factor
    sqrt((n + 1 - 2h + h(h - 1)/n) / n) with h = 1, t with n - 1 degrees of freedom."""
    n = len(d)
    mean = sum(d) / n
    lags = math.floor(n ** (1 / 3))

    def gamma(k: int) -> float:
        return sum((d[t] - mean) * (d[t - k] - mean) for t in range(k, n)) / n

    variance = gamma(0) + 2 * sum((1 - k / (lags + 1)) * gamma(k) for k in range(1, lags + 1))
    statistic = mean / math.sqrt(variance / n) * math.sqrt((n + 1 - 2 + 0) / n)
    return statistic, 2 * (1 - stats.t.cdf(abs(statistic), n - 1))


def test_the_statistic_is_diebold_mariano_with_the_hln_correction() -> None:
    d = np.random.default_rng(11).normal(0.3, 1.0, 40)
    assert diebold_mariano(d) == pytest.approx(_reference_dm(d), rel=1e-9)


def test_a_clearly_better_challenger_wins_significantly() -> None:
    rng = np.random.default_rng(1)
    actual = rng.poisson(100, 56).astype(float)
    champion = actual + rng.normal(0, 30, 56)
    challenger = actual + rng.normal(0, 8, 56)
    test = paired_test(actual, champion, challenger, alpha=0.05)
    assert test.n_days == 56
    assert test.challenger_wape < test.champion_wape
    assert test.significant
    assert test.winner is ForecastRole.CHALLENGER
    assert "challenger significantly better" in test.verdict
    # The same with the roles swapped: the champion wins.
    assert paired_test(actual, challenger, champion, alpha=0.05).winner is (
        ForecastRole.CHAMPION)


def test_equally_good_forecasts_are_significantly_different_only_at_the_alpha_rate(
        ) -> None:
    """Calibration: two forecasts of equal quality, 300 times over; the test says
    "significant" about as often as alpha allows (5 %). Diebold-Mariano is known to
    reject a little too often on small samples (6-9 % here over seeds): the bound says
    "about", not "exactly"."""
    rng = np.random.default_rng(2)
    significant = 0
    for _ in range(300):
        actual = rng.poisson(100, 56).astype(float)
        test = paired_test(actual, actual + rng.normal(0, 10, 56),
                           actual + rng.normal(0, 10, 56), alpha=0.05)
        significant += test.significant
    assert 0.01 <= significant / 300 <= 0.12
    actual = rng.poisson(100, 56).astype(float)
    one = actual + rng.normal(0, 10, 56)
    same = paired_test(actual, one, one, alpha=0.05)
    assert (same.statistic, same.p_value, same.winner) == (0.0, 1.0, None)
    assert same.verdict.startswith("no significant difference")


def test_too_few_days_give_no_verdict() -> None:
    actual = np.arange(MIN_DAYS - 1, dtype=float) + 10
    test = paired_test(actual, actual + 5, actual, alpha=0.05)
    assert math.isnan(test.p_value)
    assert not test.significant
    assert "too few days" in test.verdict
    assert test.to_dict()["p_value"] is None
