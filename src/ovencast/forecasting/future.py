"""Regressor values for the days ahead. A bakery forecasting next week has no measured
weather for it, often no footfall figures and sometimes no calendar: a missing future
value never refuses a forecast. Each value comes from the first of these that has it,
and says which (`ValueSource`):

1. `supplied`: the tenant's own rows for that date (future rows of weather.csv /
   traffic.csv / calendar.csv; in the service shape the weather service's forecasts),
   short interior gaps between them interpolated as in training (`interpolated`);
2. `calendar`: computed ahead for any date: the public holidays of the tenant's
   country/subdivision (`features.calendar_features`);
3. a fallback learned from the tenant's own history of that column:
   - weather: `climatology`, the mean over past years of the days around the same day
     of the year (`CLIMATE_WINDOW_DAYS` either side);
   - a 0/1 calendar flag (school holidays, a festival): `last_year`, its value on the
     same date a year earlier;
   - footfall and other numbers: `seasonal_profile`, the mean of the same weekday in the
     same week of up to `PROFILE_YEARS` past years, scaled by how the recent level
     compares with the same days of those years;
   - `recent_mean` where the history is shorter than a year, `default` (0) where there
     is no history at all.

Closed days come only from supplied calendar rows: a day whose opening hours are not
supplied is assumed open (the opening-hours value a model reads there is the profile of
open days), because forecasting nothing for a day the shop turns out to open wastes a
whole day's sales. `FutureRegressors.notes` says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from ovencast.forecasting.features import (
    ClosedDayRule,
    calendar_features,
    fill_short_gaps,
    format_date_range,
    runs_of_dates,
    to_local_dates,
)
from ovencast.forecasting.frame import CLOSED, DATE

CLIMATE_WINDOW_DAYS = 7
PROFILE_YEARS = 3
RECENT_DAYS = 28
"""The recent level: the last 28 days with a value before the forecast dates."""
LEVEL_FACTOR_BOUNDS = (0.5, 2.0)
"""A seasonal profile is scaled by at most this much towards the recent level."""
WEATHER, TRAFFIC, CALENDAR = "weather", "traffic", "calendar"


class ValueSource(StrEnum):
    SUPPLIED = "supplied"
    INTERPOLATED = "interpolated"
    CALENDAR = "calendar"
    CLIMATOLOGY = "climatology"
    SEASONAL_PROFILE = "seasonal_profile"
    LAST_YEAR = "last_year"
    RECENT_MEAN = "recent_mean"
    DEFAULT = "default"

    @property
    def is_fallback(self) -> bool:
        return self not in (ValueSource.SUPPLIED, ValueSource.INTERPOLATED,
                            ValueSource.CALENDAR)


DESCRIBED = {
    ValueSource.CLIMATOLOGY: "the mean of past years around that day of the year",
    ValueSource.SEASONAL_PROFILE: "the same weekday in past years, scaled to the "
                                  "recent level",
    ValueSource.LAST_YEAR: "its value on the same date last year",
    ValueSource.RECENT_MEAN: "the mean of recent days",
    ValueSource.DEFAULT: "0: nothing to learn it from",
}


@dataclass(frozen=True, repr=False)
class FutureRegressors:
    """Every regressor column's value on each forecast date (`values`, no NaN) and where
    it came from (`sources`, `ValueSource` values), both indexed by date; `closed`: the
    dates the supplied calendar marks closed; `notes`: what the user should know."""

    values: pd.DataFrame
    sources: pd.DataFrame
    closed: pd.Series
    notes: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"FutureRegressors(dates={len(self.values)}, columns={list(self.values)})"

    def frame_for(self, regressors: Sequence[str]) -> pd.DataFrame:
        """The future frame (forecasting/frame.py) a model reading `regressors` needs."""
        frame = pd.DataFrame({DATE: self.values.index, CLOSED: self.closed.to_numpy()})
        for name in regressors:
            frame[name] = self.values[name].to_numpy(dtype=float)
        return frame

    def fallbacks_of(self, regressors: Sequence[str]) -> list[tuple[str, ...]]:
        """Per date, the columns among `regressors` whose value is a fallback."""
        columns = [c for c in regressors if c in self.sources.columns]
        flags = self.sources[columns].map(lambda s: ValueSource(s).is_fallback)
        return [tuple(c for c in columns if row[c]) for _, row in flags.iterrows()]

    def summary(self, regressors: Sequence[str]) -> list[str]:
        """One line per (column kind of fallback, date range): what was filled in."""
        lines = []
        for source in ValueSource:
            if not source.is_fallback:
                continue
            columns = [c for c in regressors if c in self.sources.columns
                       and (self.sources[c] == source).any()]
            if not columns:
                continue
            mask = (self.sources[columns] == source.value).any(axis=1).to_numpy()
            spans = ", ".join(format_date_range(a, b) for a, b in runs_of_dates(
                pd.DatetimeIndex(self.values.index[mask])))
            lines.append(f"{', '.join(columns)} on {spans}: not supplied, taken from "
                         f"{DESCRIBED[source]} ({source})")
        return lines


def future_regressors(dates: Sequence[object] | pd.DatetimeIndex, regressors: pd.DataFrame,
                      *, columns: Sequence[str], kinds: Mapping[str, str],
                      country: str | None, subdivision: str | None,
                      closed_rule: ClosedDayRule | None = None) -> FutureRegressors:
    """The values of `columns` on `dates` (see the module docstring). `regressors`: the
    tenant's wide regressor frame (`date` + columns; past and any supplied future rows);
    `kinds`: column -> weather | traffic | calendar (unknown: judged by its values)."""
    rule = closed_rule or ClosedDayRule()
    days = to_local_dates(dates)
    table = _indexed(regressors)
    closed_known = pd.Series(rule.closed(table).to_numpy(dtype=bool), index=table.index
                             ).reindex(days, fill_value=False)
    calendar = calendar_features(days, country=country, subdivision=subdivision).set_index(
        DATE)
    values: dict[str, np.ndarray] = {}
    sources: dict[str, list[str]] = {}
    closed_columns = {rule.opening_hours_column, rule.closed_column}
    for name in columns:
        if name in calendar.columns:
            values[name] = calendar[name].to_numpy(dtype=float)
            sources[name] = [ValueSource.CALENDAR] * len(days)
            continue
        history = table[name] if name in table.columns else pd.Series(
            dtype=float, index=pd.DatetimeIndex([], name=DATE))
        # A supplied 0 (closed) stays 0: the original approach reads it (closed days are
        # its zero-sales days). A date not supplied is assumed open: its fallback comes
        # from the hours of open days.
        fallback_from = history.where(history > 0) if name == rule.opening_hours_column \
            else history
        values[name], sources[name] = _column(history, days,
                                              _kind(name, kinds, fallback_from),
                                              fallback_from=fallback_from)
    notes: tuple[str, ...] = ()
    unknown_hours = [c for c in columns if c in closed_columns
                     and any(ValueSource(s).is_fallback for s in sources.get(c, ()))]
    if unknown_hours:
        notes = (f"{', '.join(unknown_hours)} not supplied for some dates: those days are "
                 "assumed open (import calendar rows for them to mark closures)",)
    return FutureRegressors(
        values=pd.DataFrame(values, index=days, columns=list(columns), dtype=float),
        sources=pd.DataFrame(sources, index=days, columns=list(columns), dtype=object),
        closed=pd.Series(closed_known.to_numpy(dtype=bool), index=days), notes=notes)


def _indexed(regressors: pd.DataFrame) -> pd.DataFrame:
    if regressors.empty or DATE not in regressors.columns:
        return pd.DataFrame(index=pd.DatetimeIndex([], name=DATE))
    table = pd.DataFrame({name: pd.to_numeric(regressors[name], errors="coerce")
                          for name in regressors.columns if name != DATE})
    table.index = to_local_dates(regressors[DATE]).rename(DATE)
    return table.sort_index()


def _kind(name: str, kinds: Mapping[str, str], history: pd.Series) -> str:
    kind = kinds.get(name, "")
    known = history.dropna()
    if kind != WEATHER and not known.empty and set(np.unique(known)) <= {0.0, 1.0}:
        return "flag"
    return WEATHER if kind == WEATHER else TRAFFIC


def _column(history: pd.Series, days: pd.DatetimeIndex, kind: str, *,
            fallback_from: pd.Series | None = None) -> tuple[np.ndarray, list[str]]:
    """One column's values on `days`: supplied (or interpolated) first, else its
    fallback, learnt from `fallback_from` (default: `history`)."""
    known = history.dropna()
    out = np.full(len(days), np.nan)
    origin: list[str] = [ValueSource.DEFAULT] * len(days)
    if not known.empty:
        filled, was_filled = fill_short_gaps(history)
        supplied = filled.reindex(days)
        interpolated = was_filled.reindex(days, fill_value=False).to_numpy(dtype=bool)
        for i, value in enumerate(supplied.to_numpy(dtype=float)):
            if not np.isnan(value):
                out[i] = value
                origin[i] = ValueSource.INTERPOLATED if interpolated[i] else \
                    ValueSource.SUPPLIED
    missing = np.isnan(out)
    if not missing.any():
        return out, origin
    fallback = {"flag": _last_year, WEATHER: _climatology}.get(kind, _seasonal_profile)
    start = days[missing].min()
    learnt = known if fallback_from is None else fallback_from.dropna()
    past = learnt.loc[learnt.index < start]
    for position in np.flatnonzero(missing).tolist():
        out[position], origin[position] = fallback(past, days[position])
    return out, origin


def _climatology(past: pd.Series, day: pd.Timestamp) -> tuple[float, str]:
    if past.empty:
        return 0.0, ValueSource.DEFAULT
    index = pd.DatetimeIndex(past.index)
    distance = np.abs(((index.dayofyear - day.dayofyear + 183) % 366) - 183)
    near = past.loc[(distance <= CLIMATE_WINDOW_DAYS) & (index.year != day.year)]
    if near.empty:
        return float(past.iloc[-RECENT_DAYS:].mean()), ValueSource.RECENT_MEAN
    return float(near.mean()), ValueSource.CLIMATOLOGY


def _last_year(past: pd.Series, day: pd.Timestamp) -> tuple[float, str]:
    try:
        earlier = day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        earlier = day.replace(year=day.year - 1, day=28)
    if earlier in past.index:
        return float(past.loc[earlier]), ValueSource.LAST_YEAR
    return 0.0, ValueSource.DEFAULT


def _seasonal_profile(past: pd.Series, day: pd.Timestamp) -> tuple[float, str]:
    if past.empty:
        return 0.0, ValueSource.DEFAULT
    same_days = [day - pd.Timedelta(days=364 * k) for k in range(1, PROFILE_YEARS + 1)]
    earlier = past.reindex(same_days).dropna()
    if earlier.empty:
        recent = past.iloc[-RECENT_DAYS:]
        weekday = recent.loc[pd.DatetimeIndex(recent.index).dayofweek == day.dayofweek]
        return float((weekday if not weekday.empty else recent).mean()), \
            ValueSource.RECENT_MEAN
    return float(earlier.mean()) * _level_factor(past), ValueSource.SEASONAL_PROFILE


def _level_factor(past: pd.Series) -> float:
    """Recent level / the level of the same days in past years, within the bounds."""
    recent = past.iloc[-RECENT_DAYS:]
    days = pd.DatetimeIndex(recent.index)
    then = pd.DataFrame({k: past.reindex(days - pd.Timedelta(days=364 * k)).to_numpy()
                         for k in range(1, PROFILE_YEARS + 1)}, index=days)
    paired = then.mean(axis=1).dropna()
    if paired.empty or float(paired.sum()) <= 0:
        return 1.0
    factor = float(recent.loc[paired.index].sum()) / float(paired.sum())
    low, high = LEVEL_FACTOR_BOUNDS
    return min(max(factor, low), high)
