from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ovencast.forecasting.families import load_model, model_class
from ovencast.forecasting.families.seasonal_naive import SeasonalNaive
from ovencast.forecasting.frame import CLOSED, DATE

from ..conftest import HistoryFactory

# make_history starts on Monday 2024-01-01; three weeks end on Sunday 2024-01-21.
NEXT_WEEK = pd.date_range("2024-01-22", periods=7, freq="D")


def future(dates: pd.DatetimeIndex, closed: list[int] | tuple[int, ...] = ()) -> pd.DataFrame:
    return pd.DataFrame({DATE: dates, CLOSED: [i in closed for i in range(len(dates))]})


def test_forecast_is_last_value_of_the_same_weekday(make_history: HistoryFactory) -> None:
    weeks = [[float(10 * w + d) for d in range(7)] for w in range(3)]
    model = SeasonalNaive().fit(make_history(weeks[0] + weeks[1] + weeks[2]))
    assert model.predict(future(NEXT_WEEK)).tolist() == weeks[2]
    # Two weeks ahead is the same: weekly naive repeats the last week.
    assert model.predict(future(NEXT_WEEK + pd.Timedelta(days=7))).tolist() == weeks[2]


def test_gaps_and_closed_days_are_skipped(make_history: HistoryFactory) -> None:
    values: list[float | None] = [float(10 + d) for d in range(14)] + [0.0] + [None] + [5.0] * 5
    # Monday of week three is closed (0) and Tuesday is missing: both fall back to week two.
    model = SeasonalNaive().fit(make_history(values, closed=[14]))
    assert model.predict(future(NEXT_WEEK)).tolist() == [17.0, 18.0, 5.0, 5.0, 5.0, 5.0, 5.0]


def test_weekday_never_seen_open_gets_the_last_value(make_history: HistoryFactory) -> None:
    values: list[float | None] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, None] * 2
    model = SeasonalNaive().fit(make_history(values))
    assert model.predict(future(pd.DatetimeIndex(["2024-01-21"]))).tolist() == [6.0]


def test_closed_future_day_is_zero(make_history: HistoryFactory) -> None:
    model = SeasonalNaive().fit(make_history([7.0] * 14))
    assert model.predict(future(NEXT_WEEK, closed=(2, 6))).tolist() == [7, 7, 0, 7, 7, 7, 0]


def test_json_round_trip_gives_identical_predictions(make_history: HistoryFactory) -> None:
    rng = np.random.default_rng(7)
    model = SeasonalNaive().fit(make_history(list(rng.gamma(4.0, 10.0, size=30))))
    payload = model.to_bytes()
    envelope = json.loads(payload)  # plain JSON, never pickle
    assert envelope["family"] == "seasonal_naive"
    restored = load_model(payload)
    assert isinstance(restored, SeasonalNaive)
    days = future(pd.date_range("2024-02-01", periods=21, freq="D"), closed=(3,))
    np.testing.assert_array_equal(restored.predict(days), model.predict(days))
    assert restored.to_bytes() == payload


def test_registered_by_family_name() -> None:
    assert model_class("seasonal_naive") is SeasonalNaive


def test_unfitted_model_refuses(make_history: HistoryFactory) -> None:
    with pytest.raises(RuntimeError):
        SeasonalNaive().predict(future(NEXT_WEEK))
    with pytest.raises(ValueError, match="no open days"):
        SeasonalNaive().fit(make_history([0.0, 0.0], closed=[0, 1]))


def test_declares_no_regressors(make_history: HistoryFactory) -> None:
    # Offered regressors are not read, so they are not required at forecast time either.
    history = make_history([7.0] * 14, temperature_c=[1.0] * 14)
    model = SeasonalNaive(regressors=["temperature_c"]).fit(history)
    assert model.regressors == ()
    assert model.predict(future(NEXT_WEEK)).tolist() == [7.0] * 7
