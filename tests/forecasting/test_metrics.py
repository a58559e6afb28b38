from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from ovencast.forecasting.metrics import Metrics, compute_metrics, seasonal_naive_scale

from .conftest import HistoryFactory


def test_hand_computed_values(make_history: HistoryFactory) -> None:
    # Weekly naive on the history is off by 4 every day of week two: scale 4.
    history = make_history([10.0] * 7 + [14.0] * 7)
    metrics = compute_metrics([10, 20, 30, 0], [12, 18, 33, 1], train_history=history)
    # |errors| = 2, 2, 3, 1 (sum 8, mean 2); sum y = 60; sum(ŷ - y) = 4
    assert metrics.wape == pytest.approx(8 / 60)
    assert metrics.mase == pytest.approx(2 / 4)
    assert metrics.mape == pytest.approx((2 / 10 + 2 / 20 + 3 / 30) / 3)  # zero day skipped
    assert metrics.bias == pytest.approx(4 / 60)
    assert metrics.n_days == 4


def test_under_forecast_has_negative_bias(make_history: HistoryFactory) -> None:
    history = make_history([10.0] * 7 + [14.0] * 7)
    metrics = compute_metrics([10, 10], [5, 5], train_history=history)
    assert metrics.bias == pytest.approx(-0.5)
    assert metrics.wape == pytest.approx(0.5)


def test_perfect_forecast(make_history: HistoryFactory) -> None:
    history = make_history([10.0] * 7 + [14.0] * 7)
    metrics = compute_metrics([3, 4], [3, 4], train_history=history)
    assert (metrics.wape, metrics.mase, metrics.mape, metrics.bias) == (0, 0, 0, 0)


def test_scale_pairs_by_date_not_position(make_history: HistoryFactory) -> None:
    # y = day number over two weeks, day 3 missing: every pair one week apart differs
    # by exactly 7. Pairing by row position would cross the gap and see 8s.
    values: list[float | None] = [float(day) for day in range(14)]
    values[3] = None
    history = make_history(values)
    assert len(history) == 13
    assert seasonal_naive_scale(history) == pytest.approx(7.0)


def test_scale_skips_closed_days(make_history: HistoryFactory) -> None:
    # Day 7 is closed (0): pairing it with day 0 would add |0 - 10| = 10.
    history = make_history([10.0] * 7 + [0.0] + [12.0] * 6, closed=[7])
    assert seasonal_naive_scale(history) == pytest.approx(2.0)


def test_scale_reads_unsorted_rows_and_keeps_the_last_of_a_duplicated_date(
        make_history: HistoryFactory) -> None:
    # Week two is 12 everywhere, week one 10: scale 2. A duplicated row of day 0 (value
    # 40) before the real one is replaced by it; rows in reverse order change nothing.
    history = make_history([10.0] * 7 + [12.0] * 7)
    duplicated = pd.concat([history.iloc[[0]].assign(y=40.0), history], ignore_index=True)
    assert seasonal_naive_scale(duplicated) == pytest.approx(2.0)
    assert seasonal_naive_scale(history.iloc[::-1]) == pytest.approx(2.0)
    last_wins = pd.concat([history, history.iloc[[0]].assign(y=40.0)], ignore_index=True)
    assert seasonal_naive_scale(last_wins) == pytest.approx((6 * 2 + 28) / 7)


@pytest.mark.parametrize(
    ("actual", "predicted", "history_values", "nan_fields"),
    [
        pytest.param(
            [0, 0], [1, 2], [10.0] * 7 + [14.0] * 7, {"wape", "bias", "mape"}, id="sum-y-0"
        ),
        pytest.param([], [], [10.0] * 7 + [14.0] * 7, {"wape", "mase", "mape", "bias"}, id="empty"),
        pytest.param([10], [12], [10.0] * 14, {"mase"}, id="zero-scale"),
        pytest.param([10], [12], [10.0] * 6, {"mase"}, id="history-under-a-week"),
    ],
)
def test_degenerate_cases_are_nan_not_errors(
    make_history: HistoryFactory,
    actual: list[float],
    predicted: list[float],
    history_values: list[float],
    nan_fields: set[str],
) -> None:
    metrics = compute_metrics(actual, predicted, train_history=make_history(history_values))
    values = {"wape": metrics.wape, "mase": metrics.mase, "mape": metrics.mape}
    values["bias"] = metrics.bias
    assert {name for name, value in values.items() if math.isnan(value)} == nan_fields


@pytest.mark.parametrize(
    ("actual", "predicted"),
    [([1, 2], [1]), ([1.0, float("nan")], [1.0, 2.0])],
)
def test_caller_errors_raise(
    make_history: HistoryFactory, actual: list[float], predicted: list[float]
) -> None:
    with pytest.raises(ValueError, match=r"must be equal 1-d|NaN|nan|finite"):
        compute_metrics(actual, predicted, train_history=make_history([1.0] * 14))


def test_to_dict_is_json_safe_and_round_trips(make_history: HistoryFactory) -> None:
    metrics = compute_metrics(
        np.array([0.0, 0.0]), np.array([1.0, 1.0]), train_history=make_history([1.0] * 14)
    )
    payload = json.dumps(metrics.to_dict(), allow_nan=False)
    assert json.loads(payload)["wape"] is None
    restored = Metrics.from_dict(json.loads(payload))
    assert restored.n_days == 2
    assert math.isnan(restored.wape)
    assert restored.to_dict() == metrics.to_dict()
