from __future__ import annotations

import pandas as pd
import pytest

from ovencast.forecasting.frame import CLOSED, DATE
from ovencast.forecasting.holdout import HoldoutSplit

from .conftest import HistoryFactory


@pytest.mark.parametrize(
    ("n_days", "holdout_days", "n_train", "n_test"),
    [
        (60, 28, 32, 28),
        (60, 1, 59, 1),
        (28, 28, 0, 28),
        (10, 28, 0, 10),
    ],
)
def test_split_sizes_without_gaps(
    make_history: HistoryFactory, n_days: int, holdout_days: int, n_train: int, n_test: int
) -> None:
    train, test = HoldoutSplit(days=holdout_days).split(make_history([5.0] * n_days))
    assert (len(train), len(test)) == (n_train, n_test)


def test_split_is_by_calendar_days_not_rows(make_history: HistoryFactory) -> None:
    # 60 days, of which days 40..58 are missing: the last 28 calendar days (32..59)
    # hold only 9 rows; taking the last 28 rows would reach back to day 13.
    values: list[float | None] = [float(day) for day in range(60)]
    for day in range(40, 59):
        values[day] = None
    train, test = HoldoutSplit(days=28).split(make_history(values))
    assert len(test) == 9
    assert test[DATE].min() == pd.Timestamp("2024-01-01") + pd.Timedelta(days=32)
    assert train[DATE].max() == pd.Timestamp("2024-01-01") + pd.Timedelta(days=31)


def test_split_partitions_the_history(make_history: HistoryFactory) -> None:
    history = make_history([float(day) for day in range(50)], closed=[45])
    train, test = HoldoutSplit().split(history)
    assert train[DATE].max() < test[DATE].min()
    pd.testing.assert_frame_equal(pd.concat([train, test], ignore_index=True), history)


def test_cutoff_is_first_holdout_day(make_history: HistoryFactory) -> None:
    history = make_history([1.0] * 40)
    assert HoldoutSplit(days=7).cutoff(history) == pd.Timestamp("2024-02-03")


@pytest.mark.parametrize("days", [0, -3])
def test_rejects_non_positive_days(days: int) -> None:
    with pytest.raises(ValueError, match="holdout days"):
        HoldoutSplit(days=days)


def test_rejects_empty_history(make_history: HistoryFactory) -> None:
    with pytest.raises(ValueError, match="empty"):
        HoldoutSplit().split(make_history([]))


def test_a_short_history_gets_the_longest_holdout_that_leaves_enough_open_days(
        make_history: HistoryFactory) -> None:
    # 40 days, 5 of them closed before the last 28: 12 - 5 = 7 open days before a 28-day
    # holdout; 14 open ones before a holdout of 21 (the closed days come first).
    history = make_history([5.0] * 40)
    history[CLOSED] = history.index.isin(range(2, 7))
    assert HoldoutSplit(28).fitting(history, 14) == HoldoutSplit(21)
    assert HoldoutSplit(28).fitting(make_history([5.0] * 60), 14) == HoldoutSplit(28)
    # Too short for even MIN_HOLDOUT_DAYS: unchanged, the caller says why.
    assert HoldoutSplit(28).fitting(make_history([5.0] * 20), 14) == HoldoutSplit(28)
