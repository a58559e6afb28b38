"""From imported sales and regressors to the frames of `ovencast.forecasting.frame`.

Dates are the tenant's local calendar days, held as naive datetime64 values normalised to
midnight (Prophet needs naive datetimes). Time zones are resolved before anything reaches
this module: `local_today` gives "today" in the tenant's zone; tz-aware input is refused.

Regressors (weather, traffic, calendar flags) come as one wide frame: `date` plus numeric
columns, one row per date. SPEC "Date alignment", as implemented by `build_tenant_frame`:

1. A regressor missing (NaN or no row) on more than `max_regressor_missing_share` of the
   open sales dates is dropped, as is one that is constant there (it carries nothing);
   both are reported with the reason.
2. Interior gaps of at most MAX_INTERPOLATION_GAP_DAYS consecutive days in a kept
   regressor are filled by linear interpolation (counted in the report). Longer gaps and
   the edges are never invented.
3. Each product's training rows are clipped to the dates where every kept regressor has
   a value; the removed dates are reported per product.

Closed days (`ClosedDayRule`) are not demand observations: they become rows with y = 0 and
`closed` set, and need no regressor values (they are never fitted; a model forecasts 0 on
them). On such rows an unknown regressor value is written as 0.0.

Public holidays come from the `holidays` package (it ships its data, no network) when the
tenant has a country; that column replaces an uploaded column of the same name, because
uploaded calendars are often incomplete (the Kiel calendar stops marking holidays in 2019
and marks Corpus Christi, which is no holiday in Schleswig-Holstein).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import numpy as np
import pandas as pd

from ovencast.errors import ForecastUnavailable
from ovencast.forecasting.frame import CLOSED, DATE, PRODUCT, RESERVED_COLUMNS, Y

QUANTITY = "quantity"
"""Column of the imported sales frame; becomes `y`."""
PUBLIC_HOLIDAY = "public_holiday"
OPENING_HOURS = "opening_hours"

MAX_REGRESSOR_MISSING_SHARE = 0.10
"""Default share of open sales dates a regressor may miss before it is dropped."""
MAX_INTERPOLATION_GAP_DAYS = 3
"""Longest run of consecutive missing days inside a regressor that is interpolated."""
MAX_RANGES_IN_MESSAGE = 10
"""How many date ranges an error message lists before it says "and N more"."""


class RegressorUnavailable(ForecastUnavailable, ValueError):
    """A regressor a model uses has no value for some requested dates.

    A ValueError for the pure core, a ForecastUnavailable (422) for the service edge.
    """


# -- dates -------------------------------------------------------------------------------
def local_today(tz: str, *, now: datetime | None = None) -> date:
    """Today's calendar date in the IANA time zone `tz` (e.g. "Europe/Berlin").

    `now` (tz-aware) is for tests; default is the current instant.
    """
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc
    instant = now if now is not None else datetime.now(tz=zone)
    if instant.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return instant.astimezone(zone).date()


def to_local_dates(values: Iterable[Any] | pd.Series | pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Naive, midnight-normalised dates from strings, dates or naive timestamps.

    Raises ValueError for tz-aware values: those must be converted to the tenant's local
    calendar day before they get here (which zone is meant is not known here).
    """
    raw = values if isinstance(values, pd.Series | pd.Index) else list(values)
    index = pd.DatetimeIndex(pd.to_datetime(raw))
    if index.tz is not None:
        raise ValueError(
            "dates must be naive local calendar days; convert tz-aware timestamps to the "
            "tenant's time zone first"
        )
    return pd.DatetimeIndex(index.normalize().astype("datetime64[ns]"))


# -- calendar ----------------------------------------------------------------------------
def calendar_features(
    dates: pd.DatetimeIndex, *, country: str | None, subdivision: str | None
) -> pd.DataFrame:
    """Calendar features known in advance for any date, one row per date in order.

    Columns: `date`, and `public_holiday` (float 0.0/1.0, from the `holidays` package for
    `country` and `subdivision`, e.g. "DE"/"SH") when a country is given; without a
    country there is no holiday column (a column of zeros would claim "no holidays").
    Day of week is not here: families derive it from `date`. Raises ValueError for an
    unknown country or subdivision.
    """
    days = to_local_dates(dates)
    frame = pd.DataFrame({DATE: days})
    if country is None:
        return frame
    calendar = holiday_names(country, subdivision,
                             tuple(sorted({int(year) for year in days.year})))
    frame[PUBLIC_HOLIDAY] = np.array([day in calendar for day in days.date], dtype=float)
    return frame


@functools.lru_cache(maxsize=64)
def holiday_names(country: str, subdivision: str | None, years: tuple[int, ...]
                  ) -> Mapping[date, str]:
    """date -> public holiday name (the `holidays` package's) for `country` and
    `subdivision` in `years`, read-only. Raises ValueError for an unknown country or
    subdivision. Computed once per process and arguments: the package computes the
    calendar's rules on every call (18 ms), and every training and forecast of a tenant
    asks for the same years."""
    try:
        calendar = holidays.country_holidays(country, subdiv=subdivision, years=years)
    except NotImplementedError as exc:  # the holidays package's "unknown country"
        raise ValueError(f"no holiday calendar for {country}/{subdivision}: {exc}") from exc
    return MappingProxyType(dict(calendar))


@dataclass(frozen=True, slots=True)
class ClosedDayRule:
    """Which calendar rows mean "the shop was closed": `opening_hours` == 0 or
    `closed` == 1. A frame with neither column has no closed days (e.g. Kiel, where a
    missing date is a gap, not a closed day). Unknown values (NaN) are not closed."""

    opening_hours_column: str = OPENING_HOURS
    closed_column: str = CLOSED

    def closed(self, regressors: pd.DataFrame) -> pd.Series:
        """Boolean Series aligned with `regressors`' index."""
        result = pd.Series(False, index=regressors.index, dtype=bool)
        if self.opening_hours_column in regressors.columns:
            hours = pd.to_numeric(regressors[self.opening_hours_column], errors="coerce")
            result |= hours.eq(0).to_numpy()
        if self.closed_column in regressors.columns:
            flag = pd.to_numeric(regressors[self.closed_column], errors="coerce")
            result |= flag.eq(1).to_numpy()
        return result


# -- report ------------------------------------------------------------------------------
DateRange = tuple[date, date]


@dataclass(frozen=True, slots=True)
class ClippedDays:
    """Open sales dates of one product removed because a used regressor was unknown."""

    n_days: int
    ranges: tuple[DateRange, ...]
    """The removed dates as inclusive (first, last) runs of consecutive removed rows of
    the product (a run may span dates that had no row anyway)."""
    remaining_days: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_days": self.n_days,
            "ranges": [[a.isoformat(), b.isoformat()] for a, b in self.ranges],
            "remaining_days": self.remaining_days,
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> ClippedDays:
        return cls(
            n_days=int(value["n_days"]),
            ranges=tuple(
                (date.fromisoformat(a), date.fromisoformat(b)) for a, b in value["ranges"]
            ),
            remaining_days=int(value["remaining_days"]),
        )


@dataclass(frozen=True, slots=True)
class AlignmentReport:
    """What `build_tenant_frame` decided about regressors and dates. JSON-safe via
    `to_dict` (stored with the training job next to the validation report)."""

    sales_start: date | None
    sales_end: date | None
    used_regressors: tuple[str, ...]
    dropped_regressors: dict[str, str] = field(default_factory=dict)
    """Regressor -> why it was dropped."""
    interpolated: dict[str, int] = field(default_factory=dict)
    """Kept regressor -> number of values interpolated inside the sales window."""
    clipped: dict[str, ClippedDays] = field(default_factory=dict)
    """Product -> open sales dates removed for want of regressor values."""
    closed_days_added: dict[str, int] = field(default_factory=dict)
    """Product -> closed dates inside its span that had no sales row (added, y = 0)."""
    notes: tuple[str, ...] = ()
    computed_regressors: tuple[str, ...] = ()
    """Used regressors that no uploaded column supplied: computed from the tenant's
    country (`public_holiday` where the calendar file has none)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "sales_start": None if self.sales_start is None else self.sales_start.isoformat(),
            "sales_end": None if self.sales_end is None else self.sales_end.isoformat(),
            "used_regressors": list(self.used_regressors),
            "dropped_regressors": dict(self.dropped_regressors),
            "interpolated": dict(self.interpolated),
            "clipped": {p: c.to_dict() for p, c in self.clipped.items()},
            "closed_days_added": dict(self.closed_days_added),
            "notes": list(self.notes),
            "computed_regressors": list(self.computed_regressors),
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> AlignmentReport:
        start, end = value["sales_start"], value["sales_end"]
        return cls(
            sales_start=None if start is None else date.fromisoformat(start),
            sales_end=None if end is None else date.fromisoformat(end),
            used_regressors=tuple(value["used_regressors"]),
            dropped_regressors=dict(value["dropped_regressors"]),
            interpolated={k: int(v) for k, v in value["interpolated"].items()},
            clipped={p: ClippedDays.from_dict(c) for p, c in value["clipped"].items()},
            closed_days_added={k: int(v) for k, v in value["closed_days_added"].items()},
            notes=tuple(value["notes"]),
            computed_regressors=tuple(value.get("computed_regressors", ())),
        )


# -- tenant frame ------------------------------------------------------------------------
def build_tenant_frame(
    sales: pd.DataFrame,
    regressors: pd.DataFrame | None,
    *,
    country: str | None,
    subdivision: str | None,
    max_regressor_missing_share: float = MAX_REGRESSOR_MISSING_SHARE,
    closed_rule: ClosedDayRule | None = None,
) -> tuple[pd.DataFrame, AlignmentReport]:
    """The tenant's long frame (see `frame`) and what was done to align it.

    `sales`: columns product, date, quantity; one row per (product, date), else
    ValueError. Quantities are taken as they are (validation judges them).
    `regressors`: `date` plus columns, one row per date (None: no regressors). Calendar
    features are added; non-numeric and reserved-name columns are dropped (reported).

    Output columns: product, date, y (float), closed (bool), then the used regressors
    (float, no NaN), sorted by product and date. A product all of whose open dates are
    clipped keeps only its closed rows, or disappears when it has none; its entry in
    `report.clipped` says `remaining_days == 0`.
    """
    if not 0 <= max_regressor_missing_share <= 1:
        raise ValueError("max_regressor_missing_share must be in [0, 1]")
    rule = closed_rule or ClosedDayRule()
    sales_long = _prepare_sales(sales)
    if sales_long.empty:
        empty = pd.DataFrame(
            {
                PRODUCT: pd.Series([], dtype=object),
                DATE: pd.Series([], dtype="datetime64[ns]"),
                Y: pd.Series([], dtype=float),
                CLOSED: pd.Series([], dtype=bool),
            }
        )
        return empty, AlignmentReport(None, None, ())

    start, end = sales_long[DATE].min(), sales_long[DATE].max()
    grid = pd.date_range(start, end, freq="D")
    notes: list[str] = []
    dropped: dict[str, str] = {}

    table = _prepare_regressors(regressors)
    closed_by_date = pd.Series(rule.closed(table).to_numpy(), index=table.index).reindex(
        grid, fill_value=False
    )
    candidates = _candidate_columns(table, rule, dropped)
    calendar = calendar_features(grid, country=country, subdivision=subdivision).set_index(DATE)
    if PUBLIC_HOLIDAY in calendar.columns and PUBLIC_HOLIDAY in candidates:
        notes.append(
            f"{PUBLIC_HOLIDAY} is taken from the holiday calendar of {country}"
            f"{'/' + subdivision if subdivision else ''}, not from the uploaded column"
        )
    computed = [c for c in calendar.columns if c not in candidates]
    candidates = [c for c in candidates if c not in calendar.columns]

    # Missing share is judged on raw values, on the dates that will be fitted.
    sales_dates = pd.DatetimeIndex(sales_long[DATE].unique()).sort_values()
    open_sales_dates = sales_dates[~closed_by_date.reindex(sales_dates).to_numpy(dtype=bool)]
    used, values, interpolated = _select_regressors(
        table, calendar, candidates, grid, open_sales_dates, max_regressor_missing_share,
        dropped)
    regressor_grid = pd.DataFrame(values, index=grid, columns=used, dtype=float)
    long_frame, clipped, closed_added = _product_frames(sales_long, closed_by_date,
                                                        regressor_grid)
    del sales_long
    report = AlignmentReport(
        sales_start=start.date(),
        sales_end=end.date(),
        used_regressors=tuple(used),
        computed_regressors=tuple(c for c in used if c in computed),
        dropped_regressors=dropped,
        interpolated=interpolated,
        clipped=clipped,
        closed_days_added=closed_added,
        notes=tuple(notes),
    )
    return long_frame, report


def build_future_frame(
    dates: Iterable[Any] | pd.DatetimeIndex,
    regressors: pd.DataFrame | None,
    *,
    used_regressors: Sequence[str],
    country: str | None,
    subdivision: str | None,
    closed_rule: ClosedDayRule | None = None,
) -> pd.DataFrame:
    """Future frame (see `frame`) for `dates`, in the given order: date, closed, then
    `used_regressors` (the model's `regressors`, e.g. `AlignmentReport.used_regressors`).

    Regressor values are treated as in training: calendar features computed, short
    interior gaps interpolated. Closed dates need no regressor values (0.0 is written).
    Raises `RegressorUnavailable` (a ValueError) naming each used regressor and the open
    dates it has no value for.
    """
    rule = closed_rule or ClosedDayRule()
    days = to_local_dates(dates)
    table = _prepare_regressors(regressors)
    closed = pd.Series(rule.closed(table).to_numpy(), index=table.index)
    closed_at = closed.reindex(days, fill_value=False).to_numpy(dtype=bool)
    calendar = calendar_features(days, country=country, subdivision=subdivision)
    frame = pd.DataFrame({DATE: days, CLOSED: closed_at})
    missing: dict[str, list[str]] = {}  # "N dates: ranges" -> the regressors missing them
    for name in used_regressors:
        if name in calendar.columns:
            column = calendar[name].to_numpy(dtype=float)
        elif name in table.columns:
            filled, _ = fill_short_gaps(pd.to_numeric(table[name], errors="coerce"))
            column = filled.reindex(days).to_numpy(dtype=float)
        else:
            column = np.full(len(days), np.nan)
        unknown = np.isnan(column) & ~closed_at
        if unknown.any():
            missing_days = days[unknown]
            runs = runs_of_dates(missing_days)
            shown = ", ".join(format_date_range(a, b) for a, b in runs[:MAX_RANGES_IN_MESSAGE])
            if len(runs) > MAX_RANGES_IN_MESSAGE:
                shown += f" and {len(runs) - MAX_RANGES_IN_MESSAGE} more ranges"
            missing.setdefault(f"{len(missing_days)} dates: {shown}", []).append(name)
        frame[name] = np.where(np.isnan(column), 0.0, column)
    if missing:
        # Regressors missing the same dates (a weather or traffic file that ends) are
        # named together: one clause per distinct gap, not one per column.
        problems = [f"{', '.join(names)} {'has' if len(names) == 1 else 'have'} no value "
                    f"for {gap}" for gap, names in missing.items()]
        raise RegressorUnavailable(
            "cannot forecast: the model uses regressors that are unknown for the "
            "requested dates; " + "; ".join(problems)
            + " (import their values for these dates, or ask for earlier dates)"
        )
    return frame


def fill_short_gaps(
    values: pd.Series, *, max_gap_days: int = MAX_INTERPOLATION_GAP_DAYS
) -> tuple[pd.Series, pd.Series]:
    """Linear interpolation of interior runs of at most `max_gap_days` missing days.

    `values` is indexed by date (any order, missing dates allowed); the result is on the
    full daily grid from its first to its last date, with a boolean Series (same index)
    marking the interpolated values. Leading/trailing gaps and longer gaps stay NaN.
    """
    series = pd.to_numeric(values, errors="coerce").astype(float).sort_index()
    if series.empty:
        return series, pd.Series(False, index=series.index, dtype=bool)
    daily = series.reindex(pd.date_range(series.index.min(), series.index.max(), freq="D"))
    missing = daily.isna()
    run_id = (missing != missing.shift()).cumsum()
    run_length = missing.groupby(run_id).transform("sum")
    valid = daily.notna()
    interior = valid.cummax() & valid[::-1].cummax()[::-1]
    fillable = missing & interior & (run_length <= max_gap_days)
    interpolated = daily.interpolate(method="linear", limit_area="inside")
    return daily.where(~fillable, interpolated), fillable


# -- the original system's preparation ---------------------------------------------------
ORIGINAL_PREPARATION = "original"
"""`details["regressor_preparation"]` of a model version trained on regressors prepared
by `regressors_as_original` and a tenant frame without the holiday calendar: its
forecasts are made on the same (docs/decisions/033-original-regressor-preparation.md)."""
ZERO_WHEN_MISSING = ("weather_code",)
"""A WMO weather code is reported only when there is weather to report: the original
system took a missing one as 0 (found by reproducing its forecasts exactly, decision 007)."""


def build_original_frame(sales: pd.DataFrame, regressors: pd.DataFrame | None, *,
                         order: Sequence[str] = ()) -> tuple[pd.DataFrame, AlignmentReport]:
    """The tenant frame of the original approach (`--models prophet`): its regressors
    prepared as the original system did (`regressors_as_original`, said in the report's
    notes), every column kept whatever its missing share, and no holiday calendar (an
    uploaded `public_holiday` is a regressor like any other). `order`: the columns in
    the order the tenant's files gave them (`SourceData.regressor_order`), which is the
    order the frame's regressors take, then any other column as `regressors` has it:
    Prophet's fit depends on the order its regressors are added in (decision 033)."""
    prepared: pd.DataFrame | None = None
    notes: tuple[str, ...] = ()
    if regressors is not None:
        if DATE in regressors.columns:
            columns = [c for c in regressors.columns if c != DATE]
            ordered = [c for c in order if c in columns]
            regressors = regressors[[DATE, *ordered,
                                     *(c for c in columns if c not in ordered)]]
        prepared, notes = regressors_as_original(regressors)
    frame, report = build_tenant_frame(sales, prepared, country=None, subdivision=None,
                                       max_regressor_missing_share=1.0)
    return frame, replace(report, notes=(*report.notes, *notes))


def regressors_as_original(regressors: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The regressor table (`date` + columns) as the original system prepared it before
    fitting, and one note per change made: a `ZERO_WHEN_MISSING` column 0 on every date
    the table has a row without its value, every other numeric column linearly
    interpolated over each interior gap whatever its length (ovencast's own rule fills 3
    days at most and clips the training days of longer gaps). The edges stay unknown:
    the original carried the last value forward over them, which on the shared datasets
    reaches no fitted or forecast day, and a forecast of the days ahead takes their
    values from `future.py`'s fallbacks instead."""
    if regressors.empty or DATE not in regressors.columns:
        return regressors, ()
    table = _prepare_regressors(regressors)
    present = table.index
    table = table.reindex(pd.date_range(present.min(), present.max(), freq="D", name=DATE))
    notes: list[str] = []
    for name in map(str, table.columns):
        if not pd.api.types.is_numeric_dtype(table[name]):
            continue
        column = table[name].astype(float)
        if name in ZERO_WHEN_MISSING:
            filled = column.where(column.notna() | ~column.index.isin(present), 0.0)
            how = "taken as 0"
        else:
            filled = column.interpolate(method="linear", limit_area="inside")
            how = "interpolated"
        changed = int((column.isna() & filled.notna()).sum())
        if changed:
            notes.append(f"{name}: {changed} missing values {how} (over every uploaded "
                         f"date, {present.min().date()} to {present.max().date()}), as the "
                         "original system prepared its regressors")
        table[name] = filled
    return table.reset_index(), tuple(notes)


# -- internals ---------------------------------------------------------------------------
def _select_regressors(
    table: pd.DataFrame, calendar: pd.DataFrame, candidates: Sequence[str],
    grid: pd.DatetimeIndex, open_sales_dates: pd.DatetimeIndex, max_missing_share: float,
    dropped: dict[str, str],
) -> tuple[list[str], dict[str, pd.Series], dict[str, int]]:
    """The regressor columns a model may use on `grid` (the uploaded candidates, then the
    calendar's): (names, daily values, days interpolated per name). Columns missing on
    more than `max_missing_share` of the open sales dates, or constant there, are left out
    and said why in `dropped`."""
    used: list[str] = []
    interpolated: dict[str, int] = {}
    values: dict[str, pd.Series] = {}
    for name in candidates:
        raw = table[name].reindex(open_sales_dates)
        missing_share = float(raw.isna().mean()) if len(raw) else 1.0
        if missing_share > max_missing_share:
            dropped[name] = (f"missing on {missing_share:.1%} of open sales dates "
                             f"(more than {max_missing_share:.0%})")
            continue
        if raw.dropna().nunique() <= 1:
            dropped[name] = "constant over the sales window"
            continue
        filled, was_filled = fill_short_gaps(table[name])
        in_window = was_filled.reindex(grid, fill_value=False)
        if in_window.any():
            interpolated[name] = int(in_window.sum())
        values[name] = filled.reindex(grid)
        used.append(name)
    for name in calendar.columns:
        if calendar[name].reindex(open_sales_dates).nunique() <= 1:
            dropped[name] = "constant over the sales window"
            continue
        values[name] = calendar[name]
        used.append(name)
    return used, values, interpolated


def _product_frames(
    sales_long: pd.DataFrame, closed_by_date: pd.Series, regressor_grid: pd.DataFrame,
) -> tuple[pd.DataFrame, dict[str, ClippedDays], dict[str, int]]:
    """The long frame: each product's rows on its own span (its sales rows plus the
    calendar's closed dates without a row, counted), with the regressors; open days
    without a known regressor value are clipped (reported). Sorted by product and date.

    A sales row on a calendar-closed date with a non-zero quantity is kept open: the sale
    happened, so the calendar is wrong for that day.

    Built for all products at once on positions in the daily grid (`closed_by_date`'s and
    `regressor_grid`'s index): a frame per product and their concatenation took 5 s for
    480 products (100 s of a 10,000-product job's preparation)."""
    used = list(regressor_grid.columns)
    grid_start = regressor_grid.index[0]
    codes, names = pd.factorize(sales_long[PRODUCT], sort=True)
    n_days = len(regressor_grid.index)
    day = ((sales_long[DATE] - grid_start) // pd.Timedelta(days=1)).to_numpy(dtype=np.int64)
    observed_keys = codes.astype(np.int64) * n_days + day
    first = np.full(len(names), n_days, dtype=np.int64)
    last = np.full(len(names), -1, dtype=np.int64)
    np.minimum.at(first, codes, day)
    np.maximum.at(last, codes, day)
    # The calendar's closed days within each product's span, less those it has a row for.
    closed_grid = closed_by_date.to_numpy(dtype=bool)
    closed_days = np.flatnonzero(closed_grid)
    lo = np.searchsorted(closed_days, first, side="left")
    hi = np.searchsorted(closed_days, last, side="right")
    counts = hi - lo
    added_codes = np.repeat(np.arange(len(names), dtype=np.int64), counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    added_keys = added_codes * n_days + closed_days[np.repeat(lo, counts) + offsets]
    added_keys = added_keys[~np.isin(added_keys, observed_keys)]
    keys = np.concatenate([observed_keys, added_keys])
    y = np.concatenate([sales_long[Y].to_numpy(dtype=float), np.zeros(len(added_keys))])
    order = np.argsort(keys, kind="stable")
    keys, y = keys[order], y[order]
    code, day = np.divmod(keys, n_days)
    closed = closed_grid[day] & (np.nan_to_num(y, nan=0.0) == 0)
    # Column by column: a chain's rows times every regressor are never held twice.
    daily = {column: regressor_grid[column].to_numpy(dtype=float) for column in used}
    unknown = np.zeros(len(keys), dtype=bool)
    for column in used:
        unknown |= np.isnan(daily[column][day])
    unknown &= ~closed
    dates = regressor_grid.index.to_numpy()[day]
    clipped = _clipped_days(names, code, dates, closed, unknown)
    keep = ~unknown
    kept_days = day[keep]
    # The float columns filled into one allocation that becomes the frame's block (no
    # copy): a chain's rows times every regressor are held once.
    floats = np.empty((len(kept_days), 1 + len(used)))
    floats[:, 0] = y[keep]
    for i, column in enumerate(used, start=1):
        # Only closed rows are left with NaN.
        floats[:, i] = np.nan_to_num(daily[column][kept_days], nan=0.0)
    frame = pd.DataFrame(floats, columns=[Y, *used], copy=False)
    frame.insert(0, PRODUCT, np.asarray(names, dtype=object)[code[keep]])
    frame.insert(1, DATE, dates[keep])
    frame.insert(3, CLOSED, closed[keep])
    added = np.bincount(added_keys // n_days, minlength=len(names))
    closed_added = {str(names[i]): int(n) for i, n in enumerate(added) if n}
    return frame, clipped, closed_added


def _clipped_days(names: pd.Index, code: np.ndarray, dates: np.ndarray, closed: np.ndarray,
                  unknown: np.ndarray) -> dict[str, ClippedDays]:
    """What clipping removes, per product that has any (rows sorted by product)."""
    clipped: dict[str, ClippedDays] = {}
    bounds = np.searchsorted(code, np.arange(len(names) + 1))
    for i in np.unique(code[unknown]):
        rows = slice(bounds[i], bounds[i + 1])
        mask = unknown[rows]
        clipped[str(names[i])] = ClippedDays(
            n_days=int(mask.sum()),
            ranges=_runs(pd.Series(dates[rows]), pd.Series(mask)),
            remaining_days=int((~closed[rows] & ~mask).sum()),
        )
    return clipped


def _prepare_sales(sales: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in (PRODUCT, DATE, QUANTITY) if c not in sales.columns]
    if missing:
        raise ValueError(f"sales frame lacks columns {missing}")
    frame = pd.DataFrame(
        {
            PRODUCT: sales[PRODUCT].astype(str).to_numpy(),
            DATE: to_local_dates(sales[DATE]),
            Y: pd.to_numeric(sales[QUANTITY], errors="coerce").to_numpy(dtype=float),
        }
    )
    duplicated = frame.duplicated([PRODUCT, DATE], keep=False)
    if duplicated.any():
        first = frame.loc[duplicated].iloc[0]
        raise ValueError(
            f"{int(duplicated.sum())} sales rows repeat a (product, date), e.g. "
            f"{first[PRODUCT]} on {first[DATE].date().isoformat()}"
        )
    return frame


def _prepare_regressors(regressors: pd.DataFrame | None) -> pd.DataFrame:
    """Regressors indexed by naive date, sorted; ValueError on duplicate dates."""
    if regressors is None:
        return pd.DataFrame(index=pd.DatetimeIndex([], name=DATE))
    if DATE not in regressors.columns:
        raise ValueError("regressors frame lacks a date column")
    table = regressors.drop(columns=[DATE])
    table.index = to_local_dates(regressors[DATE]).rename(DATE)
    if table.index.has_duplicates:
        repeated = table.index[table.index.duplicated()][0].date().isoformat()
        raise ValueError(f"regressors repeat the date {repeated}")
    return table.sort_index()


def _candidate_columns(
    table: pd.DataFrame, rule: ClosedDayRule, dropped: dict[str, str]
) -> list[str]:
    """Numeric, non-reserved columns other than the closed flag; the rest go to `dropped`."""
    candidates: list[str] = []
    for name in map(str, table.columns):
        if name == rule.closed_column:
            continue  # the closed-day flag, not a regressor
        if name in RESERVED_COLUMNS:
            dropped[name] = "reserved column name"
        elif not pd.api.types.is_numeric_dtype(table[name]):
            dropped[name] = "not numeric"
        else:
            candidates.append(name)
    return candidates


def _runs(dates: pd.Series, mask: pd.Series) -> tuple[DateRange, ...]:
    """Runs of consecutive rows (in row order) where `mask` holds, as (first, last) dates."""
    flags = mask.to_numpy(dtype=bool)
    day_values = pd.DatetimeIndex(dates)
    runs: list[DateRange] = []
    start: int | None = None
    for position, flag in enumerate(flags):
        if flag and start is None:
            start = position
        if not flag and start is not None:
            runs.append((day_values[start].date(), day_values[position - 1].date()))
            start = None
    if start is not None:
        runs.append((day_values[start].date(), day_values[len(flags) - 1].date()))
    return tuple(runs)


def runs_of_dates(days: pd.DatetimeIndex) -> tuple[DateRange, ...]:
    """Runs of consecutive calendar days."""
    ordered = days.sort_values().unique()
    if len(ordered) == 0:
        return ()
    breaks = np.flatnonzero(np.diff(ordered.asi8) != pd.Timedelta(days=1).value) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks - 1, [len(ordered) - 1]))
    return tuple((ordered[a].date(), ordered[b].date()) for a, b in zip(starts, ends, strict=True))


def format_date_range(first: date, last: date) -> str:
    return first.isoformat() if first == last else f"{first.isoformat()}..{last.isoformat()}"
