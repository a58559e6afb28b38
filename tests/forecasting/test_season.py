"""A product's off-season (forecasting/season.py): days of the year on which it never had
a row, year after year; and its days off: days of the week without a row lately."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ovencast.forecasting.features import AlignmentReport
from ovencast.forecasting.frame import CLOSED, DATE, PRODUCT, Y
from ovencast.forecasting.season import (
    MIN_RUN_DAYS,
    WEEKDAY_WEEKS,
    HolidayClosures,
    OffSeason,
    OffWeekdays,
    YearlyClosures,
    holiday_closures_of,
    off_season_of,
    off_weekdays_of,
    yearly_closures_of,
)


def _rows(dates: pd.DatetimeIndex) -> pd.DataFrame:
    return pd.DataFrame({DATE: dates, Y: 10.0, CLOSED: False})


def _winter_product(years: range) -> pd.DataFrame:
    """Sold from 1 November to 15 January only, every year of `years`."""
    days = pd.date_range(f"{years.start - 1}-11-01", f"{years.stop - 1}-01-15", freq="D")
    in_season = (days.month >= 11) | ((days.month == 1) & (days.day <= 15))
    return _rows(days[in_season])


def test_a_winter_product_is_off_season_from_spring_to_autumn() -> None:
    season = off_season_of(_winter_product(range(2015, 2019)))
    assert season is not None
    assert season.years == 3
    # Rows up to 15 January and from 1 November, 7 days of tolerance on each side.
    dates = pd.DatetimeIndex(["2019-01-20", "2019-01-23", "2019-06-15",
                              "2019-10-24", "2019-10-26", "2019-12-24"])
    assert season.mask(dates).tolist() == [False, True, True, True, False, False]
    assert OffSeason.from_dict(season.to_dict()) == season


def test_an_off_season_across_the_new_year_is_two_ranges() -> None:
    # A summer product: sold from May to September.
    days = pd.date_range("2015-05-01", "2019-09-30", freq="D")
    season = off_season_of(_rows(days[(days.month >= 5) & (days.month <= 9)]))
    assert season is not None
    assert len(season.ranges) == 2
    assert season.ranges[0][0] == 1
    assert season.ranges[-1][1] == 365
    # 2020 is a leap year: its 31 December is the 366th day, counted as the 365th.
    assert season.mask(pd.DatetimeIndex(["2020-01-01", "2020-02-29", "2020-07-01",
                                         "2020-12-31"])).tolist() == [True, True, False, True]


@pytest.mark.parametrize(
    "history",
    [
        # Every day present (zeros and closed days are rows too): no off-season.
        _rows(pd.date_range("2015-01-01", "2018-12-31", freq="D")).assign(
            **{Y: 0.0, CLOSED: [d.month == 2 for d in pd.date_range(
                "2015-01-01", "2018-12-31", freq="D")]}),
        # The same months missing in one year only: a gap, not a season.
        _winter_product(range(2018, 2019)),
        # A gap shorter than MIN_RUN_DAYS every year (a holiday closure).
        _rows(pd.DatetimeIndex([d for d in pd.date_range("2015-01-01", "2018-12-31")
                                if not (d.month == 8 and d.day <= MIN_RUN_DAYS - 15)])),
        _rows(pd.DatetimeIndex([])),
    ],
    ids=["every-day-present", "one-year-only", "short-yearly-gap", "empty"],
)
def test_no_off_season(history: pd.DataFrame) -> None:
    assert off_season_of(history) is None


def test_kiel_seasonal_bread_is_a_winter_product(
        kiel_tenant: tuple[pd.DataFrame, AlignmentReport]) -> None:
    long = kiel_tenant[0]
    seasons = {str(p): off_season_of(h.drop(columns=[PRODUCT]))
               for p, h in long.groupby(PRODUCT)}
    assert {p for p, s in seasons.items() if s is not None} == {"seasonal_bread"}
    season = seasons["seasonal_bread"]
    assert season is not None
    august = pd.date_range("2018-08-01", "2018-08-31")
    december = pd.date_range("2018-12-01", "2018-12-24")
    assert season.mask(august).all()
    assert not np.any(season.mask(december))


def _weekdays(days: pd.DatetimeIndex, offered: set[int]) -> pd.DataFrame:
    return _rows(days[days.dayofweek.isin(sorted(offered))])


def test_a_saturday_cake_is_off_on_every_other_day() -> None:
    days = pd.date_range("2023-01-01", "2023-12-31")
    found = off_weekdays_of(_weekdays(days, {5}))
    assert found == OffWeekdays(weekdays=(0, 1, 2, 3, 4, 6), weeks=WEEKDAY_WEEKS)
    assert OffWeekdays.from_dict(found.to_dict()) == found
    week = pd.date_range("2024-01-01", "2024-01-07")  # Monday to Sunday
    assert found.mask(week).tolist() == [True] * 5 + [False, True]
    assert found.names() == "Mondays, Tuesdays, Wednesdays, Thursdays, Fridays, Sundays"


def test_the_recent_weeks_decide() -> None:
    days = pd.date_range("2023-01-01", "2023-12-30")  # to a Saturday
    # Open every day until the last 8 weeks, then closed on Sundays (no rows).
    recent = days >= days[-1] - pd.Timedelta(days=7 * WEEKDAY_WEEKS - 1)
    history = _rows(days[~recent | (days.dayofweek != 6)])
    assert off_weekdays_of(history) == OffWeekdays(weekdays=(6,), weeks=WEEKDAY_WEEKS)
    # One Sunday with a row in those weeks: Sundays are still offered.
    one_sunday = days[recent & (days.dayofweek == 6)][3:4]
    assert len(one_sunday) == 1
    assert off_weekdays_of(pd.concat([history, _rows(one_sunday)])) is None


@pytest.mark.parametrize(
    "history",
    [
        _rows(pd.date_range("2023-01-01", "2023-12-31")),
        # Shorter than the weeks the rule looks at: nothing is concluded.
        _weekdays(pd.date_range("2023-12-01", "2023-12-31"), {5}),
        # Sundays closed by the calendar: rows (closed), so offered; the calendar closes them.
        _rows(pd.date_range("2023-01-01", "2023-12-31")).assign(
            **{CLOSED: lambda h: h[DATE].dt.dayofweek == 6}),
        _rows(pd.DatetimeIndex([])),
    ],
    ids=["every-day", "short", "calendar-closed-sundays", "empty"],
)
def test_no_days_off(history: pd.DataFrame) -> None:
    assert off_weekdays_of(history) is None


def test_kiel_is_closed_at_christmas_and_new_year(
        kiel_tenant: tuple[pd.DataFrame, AlignmentReport]) -> None:
    """Five years without a row on 25 and 26 December and 1 January; 1 May had one in
    2016, so it is no yearly closure."""
    long = kiel_tenant[0]
    bread = long.loc[long[PRODUCT] == "bread"].drop(columns=[PRODUCT])
    closures = yearly_closures_of(bread, off_season_of(bread))
    assert closures == YearlyClosures(dates=("01-01", "12-25", "12-26"), years=5)
    assert YearlyClosures.from_dict(closures.to_dict()) == closures
    days = pd.DatetimeIndex(["2018-12-24", "2018-12-25", "2018-12-26", "2019-01-01",
                             "2019-05-01"])
    assert closures.mask(days).tolist() == [False, True, True, True, False]
    # And Good Friday, which moves: five years without a row on it. Christmas is left to
    # the date rule; Easter Monday had rows.
    on_holidays = holiday_closures_of(bread, "DE", "SH", closures, off_season_of(bread))
    assert on_holidays == HolidayClosures(names=("Good Friday",), years=5, country="DE",
                                          subdivision="SH")
    assert HolidayClosures.from_dict(on_holidays.to_dict()) == on_holidays
    easter = pd.date_range("2019-04-18", "2019-04-22")
    assert on_holidays.mask(easter).tolist() == [False, True, False, False, False]
    assert holiday_closures_of(bread, None, None) is None
    assert holiday_closures_of(bread, "XX", None) is None  # no calendar for it


def test_a_date_missing_in_fewer_years_than_required_is_no_closure() -> None:
    days = pd.date_range("2021-01-01", "2023-06-30")  # spans 25 December twice
    history = _rows(days[days.strftime("%m-%d") != "12-25"])
    assert yearly_closures_of(history) is None
    longer = pd.date_range("2021-01-01", "2024-06-30")
    found = yearly_closures_of(_rows(longer[longer.strftime("%m-%d") != "12-25"]))
    assert found == YearlyClosures(dates=("12-25",), years=3)
    with pytest.raises(ValueError, match="'13-40' is no MM-DD date"):
        YearlyClosures.from_dict({"dates": ["13-40"], "years": 3})
