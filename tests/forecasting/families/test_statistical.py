from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ovencast.forecasting.evaluation import Evaluation, evaluate_family
from ovencast.forecasting.families import load_model, model_class, statistical
from ovencast.forecasting.families.statistical import (
    AutoARIMAModel,
    AutoETSModel,
    MSTLModel,
    StatsforecastFamily,
    regular_daily_series,
)
from ovencast.forecasting.frame import CLOSED, DATE, Y

from ..conftest import HistoryFactory

FAMILIES = ["auto_ets", "mstl", "auto_arima"]
CLASSES = {"auto_ets": AutoETSModel, "mstl": MSTLModel, "auto_arima": AutoARIMAModel}


def future(dates: pd.DatetimeIndex, closed: list[int] | tuple[int, ...] = ()) -> pd.DataFrame:
    return pd.DataFrame({DATE: dates, CLOSED: [i in closed for i in range(len(dates))]})


def weekly_values(weeks: int, *, seed: int = 3) -> list[float | None]:
    """A weekly pattern with noise, from a Monday: busy Saturdays, quiet Mondays."""
    rng = np.random.default_rng(seed)
    shape = np.array([60.0, 70.0, 75.0, 80.0, 95.0, 130.0, 90.0])
    values = np.tile(shape, weeks) * rng.normal(1.0, 0.08, size=7 * weeks)
    return [float(v) for v in values]


def days_after(model: StatsforecastFamily, first: int, count: int) -> pd.DatetimeIndex:
    start = model.last_fitted_date + pd.Timedelta(days=first)
    return pd.date_range(start, periods=count, freq="D")


def fitted(family: str, history: pd.DataFrame) -> StatsforecastFamily:
    model = model_class(family)().fit(history)
    assert isinstance(model, StatsforecastFamily)
    return model


# -- the regular series ------------------------------------------------------------------
def test_regular_series_fills_gaps_from_the_same_weekday(make_history: HistoryFactory) -> None:
    # Three weeks from a Monday; the second Tuesday is missing, the second Friday closed.
    values: list[float | None] = [float(10 * w + d) for w in range(3) for d in range(7)]
    values[8] = None
    history = make_history(values, closed=[11])
    history.loc[history[CLOSED], Y] = 0.0
    open_days = history.loc[~history[CLOSED]].reset_index(drop=True)
    series, filled = regular_daily_series(open_days)
    assert filled == 2
    assert len(series) == 21
    assert series.index.is_monotonic_increasing
    # Tuesday: between the Tuesdays before and after (1 and 21); Friday likewise (4, 24).
    assert series.iloc[8] == pytest.approx(11.0)
    assert series.iloc[11] == pytest.approx(14.0)
    observed = [i for i in range(21) if i not in (8, 11)]
    assert series.iloc[observed].tolist() == [values[i] for i in observed]


def test_regular_series_weekday_never_observed_uses_its_neighbours(
    make_history: HistoryFactory,
) -> None:
    # Sundays never recorded: filled between Saturday and Monday.
    values: list[float | None] = [10.0, 10.0, 10.0, 10.0, 10.0, 20.0, None] * 3
    series, filled = regular_daily_series(make_history(values[:-1]))
    assert filled == 2
    assert series.iloc[6] == pytest.approx(15.0)


# -- properties every statistical family has ---------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_registered_by_family_name(family: str) -> None:
    assert model_class(family) is CLASSES[family]


@pytest.mark.parametrize("family", FAMILIES)
def test_json_round_trip_gives_identical_predictions(
    family: str, make_history: HistoryFactory
) -> None:
    model = fitted(family, make_history(weekly_values(8)))
    payload = model.to_bytes()
    envelope = json.loads(payload)  # plain JSON, never pickle
    assert envelope["family"] == family
    assert envelope["regressors"] == []
    restored = load_model(payload)
    assert isinstance(restored, CLASSES[family])
    days = future(days_after(model, 1, 60), closed=(3, 10))
    np.testing.assert_array_equal(restored.predict(days), model.predict(days))
    assert restored.to_bytes() == payload


@pytest.mark.parametrize("family", FAMILIES)
def test_closed_days_are_zero_and_forecasts_non_negative(
    family: str, make_history: HistoryFactory
) -> None:
    # A product that stops selling: a trend model would go below zero if not clipped.
    values = [max(0.0, 100.0 - 2.0 * i) for i in range(56)]
    model = fitted(family, make_history(values))
    yhat = model.predict(future(days_after(model, 1, 21), closed=(2, 9)))
    assert np.isfinite(yhat).all()
    assert (yhat >= 0).all()
    assert yhat[2] == 0.0
    assert yhat[9] == 0.0


@pytest.mark.parametrize("family", FAMILIES)
def test_history_with_gaps_and_closed_days(family: str, make_history: HistoryFactory) -> None:
    values = weekly_values(8)
    for i in (9, 10, 23, 40):
        values[i] = None  # the till did not report
    closed = [6, 13, 20, 27, 34, 41, 48, 55]  # closed on Sundays
    for i in closed:
        values[i] = 0.0
    model = fitted(family, make_history(values, closed=closed))
    assert model.filled_days == 4 + 7  # the last Sunday is after the last open day
    yhat = model.predict(future(days_after(model, 1, 14), closed=(0, 7)))
    assert np.isfinite(yhat).all()
    assert (yhat[[1, 2, 3, 4, 5, 6]] > 0).all()
    # The weekly shape survives the gaps: Saturday above Monday.
    saturday, monday = yhat[6], yhat[1]
    assert saturday > monday


@pytest.mark.parametrize("family", FAMILIES)
def test_dates_on_or_before_the_history_are_refused(
    family: str, make_history: HistoryFactory
) -> None:
    model = fitted(family, make_history(weekly_values(4)))
    with pytest.raises(ValueError, match="after the fitted history"):
        model.predict(future(days_after(model, 0, 3)))
    with pytest.raises(ValueError, match="after the fitted history"):
        model.predict(future(days_after(model, -30, 3)))


@pytest.mark.parametrize("family", FAMILIES)
def test_unordered_dates_with_gaps_are_picked_from_the_path(
    family: str, make_history: HistoryFactory
) -> None:
    model = fitted(family, make_history(weekly_values(6)))
    path = model.predict(future(days_after(model, 1, 30)))
    picked = days_after(model, 1, 30)[[20, 3, 11]]
    np.testing.assert_array_equal(model.predict(future(picked)), path[[20, 3, 11]])


@pytest.mark.parametrize("family", FAMILIES)
def test_dates_past_the_stored_path_are_refitted(
    family: str, make_history: HistoryFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = make_history(weekly_values(6))
    reference = fitted(family, history)  # stores the full default path
    monkeypatch.setattr(statistical, "STORED_HORIZON_DAYS", 10)
    short = fitted(family, history)
    assert len(json.loads(short.to_bytes())["state"]["path"]) == 10
    days = future(days_after(short, 5, 20))  # steps 5..24: past the 10 stored days
    expected = reference.predict(days)
    np.testing.assert_allclose(short.predict(days), expected, rtol=1e-9)
    np.testing.assert_allclose(load_model(short.to_bytes()).predict(days), expected, rtol=1e-9)


@pytest.mark.parametrize("family", FAMILIES)
def test_declares_no_regressors(family: str, make_history: HistoryFactory) -> None:
    history = make_history(weekly_values(4), temperature_c=[1.0] * 28)
    model = model_class(family)(regressors=["temperature_c"]).fit(history)
    assert model.regressors == ()
    assert model.predict(future(pd.date_range("2024-01-29", periods=7))).shape == (7,)


@pytest.mark.parametrize("family", FAMILIES)
def test_unknown_params_are_refused(family: str) -> None:
    with pytest.raises(ValueError, match="unknown"):
        model_class(family)(params={"seasonality": 7})
    with pytest.raises(ValueError, match="season_length"):
        model_class(family)(params={"season_length": 0})


@pytest.mark.parametrize(
    ("family", "params"),
    [
        ("auto_ets", {"model": "XYZ"}),
        ("auto_ets", {"damped": "yes"}),
        ("mstl", {"trend_model": "ZZA"}),
        ("mstl", {"yearly_seasonality": "sometimes"}),
        ("auto_arima", {"approximation": "fast"}),
    ],
)
def test_invalid_param_values_are_refused(family: str, params: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=rf"{next(iter(params))} must (not )?be"):
        model_class(family)(params=params)


def test_mstl_yearly_season_needs_two_years(make_history: HistoryFactory) -> None:
    model = MSTLModel()
    assert model.season_lengths(729) == [7]
    assert model.season_lengths(730) == [7, 365]
    assert MSTLModel(params={"yearly_seasonality": False}).season_lengths(2000) == [7]
    with pytest.raises(ValueError, match="yearly season needs"):
        MSTLModel(params={"yearly_seasonality": True}).fit(make_history(weekly_values(8)))


# -- real data ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kiel_bread_mstl(kiel_bread: pd.DataFrame) -> Evaluation:
    return evaluate_family(kiel_bread, family="mstl")


def test_mstl_beats_seasonal_naive_on_kiel_bread(kiel_bread_mstl: Evaluation) -> None:
    evaluation = kiel_bread_mstl
    assert np.isfinite(evaluation.metrics.wape)
    assert evaluation.metrics.wape < evaluation.baseline_metrics.wape
    model = evaluation.model
    assert isinstance(model, MSTLModel)
    assert model.selected.startswith("MSTL[7+365]")  # five years of history: yearly season


def test_kiel_bread_artifact_round_trip(kiel_bread_mstl: Evaluation) -> None:
    model = kiel_bread_mstl.model
    assert isinstance(model, MSTLModel)
    restored = load_model(model.to_bytes())
    # The forecast service's longest request: 366 days from the day after the data.
    days = future(days_after(model, 1, 366), closed=(0, 100))
    yhat = restored.predict(days)
    np.testing.assert_array_equal(yhat, model.predict(days))
    assert np.isfinite(yhat).all()
    assert (yhat >= 0).all()
    assert yhat[0] == 0.0
    assert yhat[100] == 0.0
