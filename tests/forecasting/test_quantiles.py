from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from ovencast.forecasting.counts import count_median, in_whole_units, whole_units_band
from ovencast.forecasting.frame import CLOSED, DATE, YHAT, Y
from ovencast.forecasting.quantiles import (
    QuantileCalibration,
    calibrate,
    coverage,
)
from ovencast.forecasting.selection import BacktestPlan, resolve_candidate, select
from ovencast.training.fitting import fit_product
from ovencast.training.plan import FitPlan

from .conftest import HistoryFactory

WEEK = np.array([60.0, 70.0, 75.0, 80.0, 95.0, 130.0, 90.0])


@pytest.mark.parametrize("seed", range(5))
def test_quantiles_are_ordered_and_non_negative(seed: int) -> None:
    rng = np.random.default_rng(seed)
    actual = rng.gamma(2.0, 20.0, size=80) * rng.integers(0, 2, size=80)
    predicted = rng.gamma(2.0, 20.0, size=80)
    calibration = calibrate(actual, predicted, source="backtest")
    point = np.concatenate([[0.0, 1e-9, 0.5], rng.gamma(1.0, 50.0, size=200)])
    closed = rng.random(point.size) < 0.1
    p10, p50, p90 = calibration.interval(point, closed)
    assert (p10 >= 0).all()
    assert (p10 <= p50).all()
    assert (p50 <= p90).all()
    assert (p50[~closed] == point[~closed]).all()  # P50 is the point forecast
    assert (p10[closed] == 0).all()
    assert (p90[closed] == 0).all()


def test_one_sided_residuals_still_bracket_the_forecast() -> None:
    # Every actual above the forecast: the lower residual quantile is positive, but P10
    # never goes above P50.
    calibration = calibrate([12.0, 13.0, 14.0, 15.0], [10.0] * 4, source="holdout")
    assert calibration.lower > 0
    p10, p50, p90 = calibration.interval(np.array([10.0]))
    assert p10[0] == p50[0] == 10.0 < p90[0]


def test_split_conformal_ranks() -> None:
    # Scaled residuals -0.9, -0.8, ..., 0.9 (n = 19) around a forecast of 100.
    residuals = np.round(np.arange(-9, 10) / 10, 1)
    calibration = calibrate(100.0 * (1 + residuals), [100.0] * 19, source="backtest")
    # floor((n+1) * 0.1) = 2nd smallest, ceil((n+1) * 0.9) = 18th smallest.
    assert calibration.lower == pytest.approx(-0.8)
    assert calibration.upper == pytest.approx(0.8)
    assert calibration.n == 19
    assert calibration.floor == pytest.approx(10.0)
    p10, _, p90 = calibration.interval(np.array([50.0, 0.0]))
    assert p10 == pytest.approx([10.0, 0.0])
    assert p90 == pytest.approx([90.0, 8.0])  # a forecast of 0 gets the floor's width


def test_calibration_round_trips_and_refuses_nothing_to_calibrate() -> None:
    calibration = calibrate([1.0, 2.0, 3.0], [2.0, 2.0, 2.0], source="holdout")
    assert QuantileCalibration.from_dict(calibration.to_dict()) == calibration
    with pytest.raises(ValueError, match="no out-of-sample"):
        calibrate([], [], source="holdout")
    zero = calibrate([0.0, 0.0], [0.0, 0.0], source="holdout")
    assert zero.floor > 0
    assert zero.lower == zero.upper == 0.0


def test_coverage() -> None:
    assert coverage(np.array([1.0, 5.0, 9.0]), np.array([0.0] * 3), np.array([5.0] * 3)) == (
        pytest.approx(2 / 3))
    assert math.isnan(coverage(np.array([]), np.array([]), np.array([])))


def test_backtest_calibration_covers_fresh_draws(make_history: HistoryFactory) -> None:
    """A weekly pattern with 15 % multiplicative noise: P10-P90 from the backtest
    residuals of the seasonal naive covers about 80 % of new days."""
    rng = np.random.default_rng(11)
    weeks = 30
    level = np.tile(WEEK, weeks)
    history = make_history(list(level * rng.normal(1.0, 0.15, size=level.size)))
    selection = select(history, [resolve_candidate("seasonal_naive")], BacktestPlan())
    calibration = calibrate(selection.actual, selection.predicted, source="backtest")
    plan = BacktestPlan()
    assert calibration.n == plan.n_windows * plan.horizon_days  # 210 days: no seasonal one

    model = resolve_candidate("seasonal_naive").build().fit(history)
    future = pd.DataFrame({DATE: pd.date_range(history[DATE].max() + pd.Timedelta(days=1),
                                               periods=28), CLOSED: False})
    p10, _, p90 = calibration.interval(model.predict(future))
    truth = np.tile(WEEK, 4)
    draws = truth * rng.normal(1.0, 0.15, size=(200, truth.size))
    covered = coverage(draws.ravel(), np.tile(p10, 200), np.tile(p90, 200))
    assert 0.6 <= covered <= 0.95, covered


# -- counts: P50 is a count's median (decision 030) ------------------------------------------
def test_count_median_is_the_poisson_median() -> None:
    # P(N = 0) = exp(-mean): above 1/2 up to mean ln 2 = 0.693, so the median is 0 there.
    means = np.array([0.0, 0.3, 0.69, 0.70, 2.5, 10.0, 100.4])
    assert count_median(means).tolist() == [0.0, 0.0, 0.0, 1.0, 2.0, 10.0, 100.0]


def test_a_count_calibration_forecasts_its_median_inside_the_band() -> None:
    rng = np.random.default_rng(4)
    actual = rng.poisson(1.5, size=120).astype(float)
    calibration = calibrate(actual, np.full(120, 1.5), source="backtest", counts=True)
    point = np.array([0.0, 0.4, 0.8, 1.5, 3.7, 40.2])
    closed = np.array([False, False, False, False, False, True])
    p10, p50, p90 = calibration.interval(point, closed)
    assert p50.tolist() == [0.0, 0.0, 1.0, 1.0, 4.0, 0.0]
    assert (p10 <= p50).all()
    assert (p50 <= p90).all()
    assert p10[-1] == p90[-1] == 0.0  # closed
    # The same calibration of turnover keeps the mean as P50.
    mean = calibrate(actual, np.full(120, 1.5), source="backtest")
    assert mean.interval(point, closed)[1].tolist() == [0.0, 0.4, 0.8, 1.5, 3.7, 0.0]


@pytest.mark.parametrize("seed", range(3))
def test_a_count_band_is_whole_units_and_no_wider_than_the_per_tail_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mean = rng.gamma(1.5, 2.0, size=400)
    actual = rng.poisson(mean).astype(float)
    args = (actual[:200], mean[:200])
    per_tail = calibrate(*args, source="backtest").interval(mean[200:])
    calibration = calibrate(*args, source="backtest", counts=True)
    p10, p50, p90 = calibration.interval(mean[200:])
    for values in (p10, p50, p90):
        assert (values == np.round(values)).all()
    assert (p10 <= p50).all()
    assert (p50 <= p90).all()
    assert (p10 == np.minimum(np.ceil(per_tail[0] - 1e-9), p50)).all()  # the same lower end
    assert (p90 <= np.maximum(per_tail[2], p50)).all()  # never wider above
    assert p90.max() > 0  # not a band collapsed to nothing
    # On its calibration pairs it holds the split-conformal share for P10..P90.
    low, _, high = calibration.interval(mean[:200])
    assert np.mean((actual[:200] >= low) & (actual[:200] <= high)) >= 161 / 200


def test_a_slow_sellers_band_holds_eight_days_in_ten_not_nine() -> None:
    # Most days sell nothing: P10 is 0 and holds them all, so cutting 10 % off the upper
    # tail alone left a band that held about 90 % (decision 032).
    rng = np.random.default_rng(11)
    mean = np.tile([0.3, 0.4, 0.5, 0.6, 0.9, 1.4, 0.2], 340)
    actual = rng.poisson(mean).astype(float)
    calibrate_on, check = slice(0, 280), slice(280, None)
    args = (actual[calibrate_on], mean[calibrate_on])
    low, _, high = calibrate(*args, source="backtest").interval(mean[check])
    per_tail = coverage(actual[check], np.ceil(low - 1e-9), np.floor(high + 1e-9))
    low, _, high = calibrate(*args, source="backtest", counts=True).interval(mean[check])
    joint = coverage(actual[check], low, high)
    assert per_tail > 0.87
    assert 0.75 <= joint <= 0.85


def test_whole_units_band_keeps_whole_ends() -> None:
    low, high = whole_units_band(np.array([0.0, 0.2, 2.0 + 1e-12, 1.0]),
                                 np.array([0.38, 1.0 - 1e-12, 2.5, 7.0]))
    assert low.tolist() == [0.0, 1.0, 2.0, 1.0]
    assert not np.signbit(low).any()  # a P10 of 0 is printed 0, not -0
    assert high.tolist() == [0.0, 1.0, 2.0, 7.0]


def test_counts_round_trip_and_older_versions_keep_the_mean() -> None:
    calibration = calibrate([1.0, 2.0, 3.0], [2.0, 2.0, 2.0], source="holdout", counts=True)
    stored = calibration.to_dict()
    assert stored["counts"] is True
    assert QuantileCalibration.from_dict(stored) == calibration
    older = {k: v for k, v in stored.items() if k != "counts"}  # stored before decision 030
    assert QuantileCalibration.from_dict(older).counts is False


def test_in_whole_units() -> None:
    assert in_whole_units(np.array([0.0, 3.0, np.nan, 12.0]))
    assert not in_whole_units(np.array([0.0, 3.0, 12.5]))  # turnover
    assert not in_whole_units(np.array([np.nan, np.nan]))  # nothing recorded


@pytest.mark.parametrize(("values", "counts"), [
    (lambda rng: rng.poisson(np.tile([1.0, 1, 1, 2, 2, 3, 0.5], 30)).astype(float), True),
    (lambda rng: np.round(rng.gamma(5.0, 20.0, size=210), 2), False),
])
def test_a_fit_stores_whether_the_product_sells_whole_units(
        make_history: HistoryFactory, values: Callable[[np.random.Generator], np.ndarray],
        counts: bool) -> None:
    history = make_history(list(values(np.random.default_rng(2))))
    plan = FitPlan(families=("seasonal_naive",), product_class="medium_volume",
                   country=None, subdivision=None, regressors=(), time_limit_s=600)
    result = fit_product(history, plan)
    assert result.details["quantiles"]["counts"] is counts
    assert ("served_wape" in result.details["selection"]) is counts


def test_a_count_products_stored_holdout_wape_is_its_served_medians(
        make_history: HistoryFactory) -> None:
    sales = np.random.default_rng(5).poisson(np.tile([0.2, 0.2, 0.3, 0.3, 0.5, 0.8, 0.1], 30))
    plan = FitPlan(families=("croston",), product_class="intermittent", country=None,
                   subdivision=None, regressors=(), time_limit_s=600)
    result = fit_product(make_history(sales.astype(float).tolist()), plan)
    best = result.best
    scored = best.holdout_predictions.loc[~best.holdout_predictions[CLOSED]]
    actual, served = scored[Y].to_numpy(), count_median(scored[YHAT].to_numpy())
    assert best.metrics.wape == pytest.approx(np.abs(actual - served).sum() / actual.sum())
    # The backtest's too, beside the mean's that selection compared (decision 031).
    selection = result.details["selection"]
    assert selection["basis"] == "backtest"
    assert 0 < selection["served_wape"] < selection["wape"]
