"""A product's off-season: the days of the year on which, year after year, it was never
offered (no row at all), such as a Christmas bread's February to September; and its
days off: the days of the week on which it has not been offered lately (a cake baked for
Saturdays only, a shop closed on Sundays whose calendar does not say so).

Why: a missing date is not a zero (SPEC), so training never sees the off-season, and a
model asked for those dates forecasts as if the product were on the shelf (Kiel's
`seasonal_bread`, sold from October to January, got about 60 EUR a day for August 2018).
A baker planning from that bakes bread that is not sold. The off-season is known in
advance from the product's own history, like a closed day from the calendar, so the
forecast there is 0 and says why (`forecasts.service`).

Rule (`off_season_of`): a day of the year is off-season when the product's history spans
it in at least `MIN_YEARS` years and no row lies within `TOLERANCE_DAYS` of it in any of
them; only runs of at least `MIN_RUN_DAYS` such days count (a two-week holiday closure is
not a season). Computed at training from the whole history and stored with the model
version (`details["off_season"]`), so forecasting needs no sales data.

Rule (`yearly_closures_of`): a calendar date (month and day) is a yearly closure when the
product's history spans it in at least `CLOSURE_MIN_YEARS` years and has no row on it in
any of them (Kiel's bakery: 25 and 26 December and 1 January, five years running).
Stored as `details["yearly_closures"]`; days the off-season covers are left to it.

Rule (`holiday_closures_of`): the same for a public holiday by name, for the tenant's
country: a holiday that moves (Good Friday) is no date of the year. A holiday with no row
on it in any of at least `CLOSURE_MIN_YEARS` years of the product's history is a closure
(Kiel: Good Friday, five years running); holidays whose every date is already a yearly
closure are left to that rule. Stored as `details["holiday_closures"]` with the country,
so that forecasting finds the holiday's dates in the years ahead.

Rule (`off_weekdays_of`): a day of the week is a day off when the product has no row on
it in the last `WEEKDAY_WEEKS` weeks of its history (which must span them), while it has
rows on other days. The recent weeks, not the whole history: a shop that stopped opening
on Sundays last month stops getting Sunday forecasts now. Stored as
`details["off_weekdays"]`. Every row counts as offered here too: a shop whose calendar
marks its Sundays closed has rows on them, and the calendar closes those days already.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from ovencast.forecasting.features import holiday_names
from ovencast.forecasting.frame import DATE

MIN_YEARS = 2
TOLERANCE_DAYS = 7
MIN_RUN_DAYS = 28
DAYS_IN_YEAR = 365  # days of the year 1..365 (`_day_of_year`: 29 February counts as the 28th)
WEEKDAY_WEEKS = 8
CLOSURE_MIN_YEARS = 3
WEEKDAY_NAMES = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays",
                 "Sundays")


@dataclass(frozen=True, slots=True)
class OffSeason:
    """Inclusive day-of-year ranges (1..365 as `_day_of_year` counts, none wrapping over
    the new year: a season across it is two ranges) and how many years of history showed
    them."""

    ranges: tuple[tuple[int, int], ...]
    years: int

    def mask(self, dates: pd.DatetimeIndex) -> np.ndarray:
        """True for each date whose day of the year is off-season."""
        doy = _day_of_year(dates)
        inside = np.zeros(len(doy), dtype=bool)
        for start, end in self.ranges:
            inside |= (doy >= start) & (doy <= end)
        return inside

    def to_dict(self) -> dict[str, Any]:
        return {"ranges": [list(r) for r in self.ranges], "years": self.years}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> OffSeason:
        ranges = tuple((int(a), int(b)) for a, b in value["ranges"])
        if any(not 1 <= a <= b <= DAYS_IN_YEAR for a, b in ranges):
            raise ValueError(f"off-season ranges out of 1..{DAYS_IN_YEAR}: {ranges}")
        return cls(ranges=ranges, years=int(value["years"]))


@dataclass(frozen=True, slots=True)
class YearlyClosures:
    """Calendar dates ("MM-DD") without a row in any of the `years` (at least) years of
    the product's history that span them."""

    dates: tuple[str, ...]
    years: int

    def mask(self, dates: pd.DatetimeIndex) -> np.ndarray:
        return np.isin(dates.strftime("%m-%d").to_numpy(), self.dates)

    def to_dict(self) -> dict[str, Any]:
        return {"dates": list(self.dates), "years": self.years}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> YearlyClosures:
        dates = tuple(str(day) for day in value["dates"])
        for day in dates:
            try:  # 2000 is a leap year: 02-29 is a date
                pd.Timestamp(f"2000-{day}")
            except ValueError:
                raise ValueError(f"yearly closure {day!r} is no MM-DD date") from None
        return cls(dates=dates, years=int(value["years"]))


def yearly_closures_of(history: pd.DataFrame,
                       season: OffSeason | None = None) -> YearlyClosures | None:
    """The product's yearly closures (module docstring), None when it has none; dates
    inside `season` are left out (the off-season already forecasts them 0)."""
    offered = pd.DatetimeIndex(history[DATE]).normalize().unique()
    if offered.empty:
        return None
    days = pd.date_range(offered.min(), offered.max(), freq="D")
    # Month and day as one number (1231 for 31 December): counted with numpy, it runs
    # for every product of a chain (a groupby on strings took 8 ms a product).
    key = days.month.to_numpy() * 100 + days.day.to_numpy()
    year, row = days.year.to_numpy(), days.isin(offered)
    if season is not None:
        kept = ~season.mask(days)
        key, year, row = key[kept], year[kept], row[kept]
    spanned = np.bincount(np.unique(key * 10_000 + year) // 10_000, minlength=1232)
    rows = np.bincount(key, weights=row, minlength=1232)
    closed = np.flatnonzero((spanned >= CLOSURE_MIN_YEARS) & (rows == 0))
    if closed.size == 0:
        return None
    return YearlyClosures(dates=tuple(f"{k // 100:02d}-{k % 100:02d}" for k in closed),
                          years=int(spanned[closed].min()))


@dataclass(frozen=True, slots=True)
class HolidayClosures:
    """Public holidays (names as the `holidays` package gives them for `country` and
    `subdivision`) without a row in any of the `years` (at least) years of the product's
    history."""

    names: tuple[str, ...]
    years: int
    country: str
    subdivision: str | None

    def mask(self, dates: pd.DatetimeIndex) -> np.ndarray:
        calendar = _holiday_names(self.country, self.subdivision,
                                  tuple(sorted({int(y) for y in dates.year})))
        return np.array([calendar.get(day) in self.names for day in dates.date], dtype=bool)

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "years": self.years, "country": self.country,
                "subdivision": self.subdivision}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> HolidayClosures:
        subdivision = value.get("subdivision")
        return cls(names=tuple(str(n) for n in value["names"]), years=int(value["years"]),
                   country=str(value["country"]),
                   subdivision=None if subdivision is None else str(subdivision))


def _holiday_names(country: str, subdivision: str | None, years: tuple[int, ...]
                   ) -> Mapping[date, str]:
    """`features.holiday_names`, empty for a country it has no calendar for (a tenant's
    country is checked when its data is prepared; nothing here should fail a training
    or a forecast)."""
    try:
        return holiday_names(country, subdivision, years)
    except ValueError:
        return {}


def holiday_closures_of(history: pd.DataFrame, country: str | None,
                        subdivision: str | None, closures: YearlyClosures | None = None,
                        season: OffSeason | None = None) -> HolidayClosures | None:
    """The product's closures on named public holidays (module docstring), None without a
    country or when it has none. A holiday whose every date is one of `closures` (a
    fixed-date closure found already) is left out, and so are its dates in `season` (the
    off-season has no rows at all)."""
    offered = pd.DatetimeIndex(history[DATE]).normalize().unique()
    if country is None or offered.empty:
        return None
    first, last = offered.min().date(), offered.max().date()
    calendar = _holiday_names(country, subdivision,
                              tuple(range(first.year, last.year + 1)))
    spanned = sorted(day for day in calendar if first <= day <= last)
    if season is not None and spanned:
        in_season = ~season.mask(pd.DatetimeIndex(spanned))
        spanned = [day for day, kept in zip(spanned, in_season, strict=True) if kept]
    seen: dict[str, list[tuple[int, bool]]] = {}
    offered_days = set(offered.date)
    for day in spanned:
        seen.setdefault(calendar[day], []).append((day.year, day in offered_days))
    fixed = set(closures.dates) if closures is not None else set()
    shut = {name: len({year for year, _ in found}) for name, found in seen.items()
            if not any(row for _, row in found)
            and len({year for year, _ in found}) >= CLOSURE_MIN_YEARS}
    moving = {name: years for name, years in shut.items()
              if any(day.strftime("%m-%d") not in fixed
                     for day, holiday in calendar.items() if holiday == name)}
    if not moving:
        return None
    return HolidayClosures(names=tuple(sorted(moving)), years=min(moving.values()),
                           country=country, subdivision=subdivision)


@dataclass(frozen=True, slots=True)
class OffWeekdays:
    """Days of the week (0 = Monday) the product was not offered on in the last `weeks`
    weeks of its history."""

    weekdays: tuple[int, ...]
    weeks: int

    def mask(self, dates: pd.DatetimeIndex) -> np.ndarray:
        return np.isin(dates.dayofweek.to_numpy(), self.weekdays)

    def names(self) -> str:
        return ", ".join(WEEKDAY_NAMES[day] for day in self.weekdays)

    def to_dict(self) -> dict[str, Any]:
        return {"weekdays": list(self.weekdays), "weeks": self.weeks}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> OffWeekdays:
        weekdays = tuple(int(day) for day in value["weekdays"])
        if not weekdays or any(not 0 <= day <= 6 for day in weekdays):
            raise ValueError(f"off weekdays out of 0..6: {weekdays}")
        return cls(weekdays=weekdays, weeks=int(value["weeks"]))


def off_weekdays_of(history: pd.DataFrame) -> OffWeekdays | None:
    """The product's days off (module docstring), None when it has none or its history is
    shorter than WEEKDAY_WEEKS weeks. `history`: a history frame (date, ...)."""
    dates = pd.DatetimeIndex(history[DATE]).normalize()
    if dates.empty:
        return None
    first = dates.max() - pd.Timedelta(days=7 * WEEKDAY_WEEKS - 1)
    if dates.min() > first:
        return None
    offered = set(dates[dates >= first].dayofweek.tolist())
    off = tuple(day for day in range(7) if day not in offered)
    return OffWeekdays(weekdays=off, weeks=WEEKDAY_WEEKS) if off else None


def off_season_of(history: pd.DataFrame) -> OffSeason | None:
    """The product's off-season (module docstring), None when it has none. `history` is
    a history frame (date, y, closed). Every row counts as offered, a zero or a closed
    day too: the off-season is the product's (no row at all), the shop's closures are the
    calendar's."""
    offered_dates = pd.DatetimeIndex(history[DATE]).normalize()
    if offered_dates.empty:
        return None
    days = pd.date_range(offered_dates.min(), offered_dates.max(), freq="D")
    offered = pd.Series(days.isin(offered_dates), index=days)
    near = offered.rolling(2 * TOLERANCE_DAYS + 1, center=True, min_periods=1).max()
    by_day = pd.DataFrame({"doy": _day_of_year(days), "year": days.year,
                           "near": near.to_numpy()})
    spanned = by_day.groupby("doy")["year"].nunique()
    ever = by_day.groupby("doy")["near"].max()
    off = np.zeros(DAYS_IN_YEAR + 1, dtype=bool)  # index 0 unused
    candidates = spanned.index[(spanned >= MIN_YEARS) & (ever == 0)]
    off[candidates.to_numpy()] = True
    ranges = _long_runs(off[1:])
    if not ranges:
        return None
    kept = [day for first, last in ranges for day in range(first, last + 1)]
    return OffSeason(ranges=tuple(ranges), years=int(spanned.loc[kept].min()))


def _day_of_year(dates: pd.DatetimeIndex) -> np.ndarray:
    """1..365: the same calendar day gets the same number in leap years (from 1 March on,
    one less than pandas' dayofyear; 29 February shares 28 February's)."""
    doy = dates.dayofyear.to_numpy()
    return np.asarray(doy - (dates.is_leap_year & (doy > 59)), dtype=int)


def _long_runs(off: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True (days 1..365 at positions 0..364) of at least MIN_RUN_DAYS, a run
    across the new year measured whole but returned as two ranges."""
    n = len(off)
    if off.all():
        return [(1, n)]
    # Rotate so that position 0 is a False day: no run then wraps.
    shift = int(np.argmin(off))
    rotated = np.roll(off, -shift)
    runs: list[tuple[int, int]] = []
    start = None
    for i, value in enumerate([*rotated, False]):
        if value and start is None:
            start = i
        elif not value and start is not None:
            if i - start >= MIN_RUN_DAYS:
                runs.append((start, i - 1))
            start = None
    found: list[tuple[int, int]] = []
    for a, b in runs:
        first, last = (a + shift) % n + 1, (b + shift) % n + 1
        found += [(first, last)] if first <= last else [(first, n), (1, last)]
    return sorted(found)
