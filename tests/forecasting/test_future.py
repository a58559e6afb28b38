"""Regressor values for the days ahead (forecasting/future.py): supplied first, then the
calendar, then a fallback learned from the history, each value saying where it came
from; never a refusal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ovencast.forecasting.future import (
    CLIMATE_WINDOW_DAYS,
    ValueSource,
    future_regressors,
)

FIRST = pd.Timestamp("2023-11-01")
DAYS = pd.date_range(FIRST, periods=14)


def _history(years: int = 4) -> pd.DataFrame:
    """Daily regressors up to the day before FIRST: a seasonal temperature, a footfall
    with a weekly rhythm, a 0/1 holiday flag (Nov 1-5 every year), opening hours (closed
    on Sundays)."""
    dates = pd.date_range(FIRST - pd.DateOffset(years=years), FIRST - pd.Timedelta(days=1))
    day = dates.dayofyear.to_numpy()
    return pd.DataFrame({
        "date": dates,
        "temperature_c": 10 + 8 * np.sin(2 * np.pi * (day - 100) / 365) + dates.year - 2019,
        "guests": (100 + 50 * (dates.dayofweek >= 5)) * (1 + 0.1 * (dates.year - 2019)),
        "school_holiday": ((dates.month == 11) & (dates.day <= 5)).astype(float),
        "opening_hours": np.where(dates.dayofweek == 6, 0.0, 8.0),
    })


KINDS = {"temperature_c": "weather", "guests": "traffic", "school_holiday": "calendar",
         "opening_hours": "calendar"}
COLUMNS = [*KINDS, "public_holiday"]


def test_nothing_supplied_ahead_every_value_is_filled_and_says_how() -> None:
    history = _history()
    future = future_regressors(DAYS, history, columns=COLUMNS, kinds=KINDS, country="DE",
                               subdivision="NI")

    assert not future.values.isna().any().any()
    sources = future.sources
    assert set(sources["temperature_c"]) == {ValueSource.CLIMATOLOGY}
    assert set(sources["guests"]) == {ValueSource.SEASONAL_PROFILE}
    assert set(sources["school_holiday"]) == {ValueSource.LAST_YEAR}
    assert set(sources["public_holiday"]) == {ValueSource.CALENDAR}
    # Climatology: the mean of the past years' days within the window of each date.
    table = history.set_index("date")["temperature_c"]
    for day in DAYS[:3]:
        window = [day - pd.DateOffset(years=k) + pd.Timedelta(days=d) for k in range(1, 5)
                  for d in range(-CLIMATE_WINDOW_DAYS, CLIMATE_WINDOW_DAYS + 1)]
        near = [table.loc[t] for t in window if t in table.index]
        assert future.values.loc[day, "temperature_c"] == pytest.approx(np.mean(near), abs=0.1)
    # A flag: last year's value on the same date (the holiday of Nov 1-5).
    assert list(future.values["school_holiday"][:7]) == [1, 1, 1, 1, 1, 0, 0]
    # The holiday calendar of Lower Saxony, computed: 31 Oct is before the window.
    assert future.values["public_holiday"].sum() == 0
    # Footfall: same weekday in past years, scaled up to this year's level.
    saturday = DAYS[DAYS.dayofweek == 5][0]
    wednesday = DAYS[0]
    assert future.values.loc[saturday, "guests"] > future.values.loc[wednesday, "guests"]
    assert future.values.loc[wednesday, "guests"] == pytest.approx(100 * 1.4, rel=0.08)
    # Nothing is closed without a supplied calendar; the note says so.
    assert not future.closed.any()
    assert any("assumed open" in note for note in future.notes)
    # Opening hours of an open day, not a Sunday's 0.
    assert (future.values["opening_hours"] == 8.0).all()
    summary = " ".join(future.summary(COLUMNS))
    assert "temperature_c on 2023-11-01..2023-11-14" in summary
    assert "climatology" in summary
    assert "seasonal_profile" in summary


def test_supplied_values_win_and_a_supplied_closure_closes() -> None:
    history = _history()
    ahead = pd.DataFrame({"date": DAYS[:5], "temperature_c": [1.0, 2.0, 3.0, 4.0, 5.0],
                          "guests": np.nan, "school_holiday": np.nan,
                          "opening_hours": [8, 8, 0, 8, 8]})
    table = pd.concat([history, ahead], ignore_index=True)
    future = future_regressors(DAYS, table, columns=COLUMNS, kinds=KINDS, country=None,
                               subdivision=None)
    assert list(future.values["temperature_c"][:5]) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert set(future.sources["temperature_c"][:5]) == {ValueSource.SUPPLIED}
    assert set(future.sources["temperature_c"][5:]) == {ValueSource.CLIMATOLOGY}
    assert list(future.closed[:5]) == [False, False, True, False, False]
    assert not future.closed[5:].any()
    # The supplied closure's 0 hours are what a model reading opening_hours sees (the
    # original approach forecasts closed days from it); unsupplied days get open hours.
    assert list(future.values["opening_hours"][:5]) == [8.0, 8.0, 0.0, 8.0, 8.0]
    assert set(future.sources["opening_hours"][:5]) == {ValueSource.SUPPLIED}
    assert (future.values["opening_hours"][5:] == 8.0).all()
    # No country: no holiday column can be computed; the uploaded-style flag has none.
    assert set(future.sources["public_holiday"]) == {ValueSource.DEFAULT}
    fallbacks = future.fallbacks_of(["temperature_c", "guests"])
    assert fallbacks[0] == ("guests",)
    assert fallbacks[7] == ("temperature_c", "guests")


def test_a_short_history_falls_back_to_recent_days_and_no_history_to_zero() -> None:
    history = _history(years=1).iloc[-60:]
    future = future_regressors(DAYS, history, columns=["temperature_c", "guests", "wind"],
                               kinds={**KINDS, "wind": "weather"}, country=None,
                               subdivision=None)
    assert set(future.sources["temperature_c"]) == {ValueSource.RECENT_MEAN}
    assert future.values["temperature_c"].iloc[0] == pytest.approx(
        history["temperature_c"].iloc[-28:].mean())
    assert set(future.sources["guests"]) == {ValueSource.RECENT_MEAN}
    assert set(future.sources["wind"]) == {ValueSource.DEFAULT}
    assert (future.values["wind"] == 0).all()


def test_the_north_sea_weather_ends_and_the_forecast_still_gets_every_value(
        northsea_dir: Path) -> None:
    frames = [pd.read_csv(northsea_dir / f"{name}.csv") for name in
              ("weather", "traffic", "calendar")]
    table = frames[0].merge(frames[1], on="date").merge(frames[2], on="date")
    kinds = {**dict.fromkeys(frames[0].columns[1:], "weather"),
             **dict.fromkeys(frames[1].columns[1:], "traffic"),
             **dict.fromkeys(frames[2].columns[1:], "calendar")}
    columns = list(kinds)
    future = future_regressors(pd.date_range("2023-10-30", periods=16), table,
                               columns=columns, kinds=kinds, country="DE", subdivision="NI")
    assert not future.values.isna().any().any()
    assert set(future.sources.iloc[:2].stack()) == {ValueSource.SUPPLIED}
    assert set(future.sources.iloc[2:].stack()) <= {ValueSource.CLIMATOLOGY,
                                                     ValueSource.SEASONAL_PROFILE}
    # Early-November climatology of the island: between 5 and 15 degrees.
    assert future.values["temperature_c"].iloc[2:].between(5, 15).all()
