from __future__ import annotations

import json
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from ovencast.errors import ForecastUnavailable
from ovencast.forecasting.features import (
    AlignmentReport,
    ClippedDays,
    ClosedDayRule,
    RegressorUnavailable,
    _product_frames,
    _runs,
    build_future_frame,
    build_tenant_frame,
    calendar_features,
    fill_short_gaps,
    local_today,
    regressors_as_original,
    to_local_dates,
)
from ovencast.forecasting.frame import CLOSED, DATE, PRODUCT, Y

START = "2024-03-04"  # a Monday, no holiday nearby in Germany


def days(n: int, start: str = START) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq="D")


def sales_frame(values: dict[str, list[float | None]], start: str = START) -> pd.DataFrame:
    """Imported sales: product, date, quantity; None is a date without a row."""
    rows = [
        {"product": product, "date": day.date().isoformat(), "quantity": value}
        for product, series in values.items()
        for day, value in zip(days(len(series), start), series, strict=True)
        if value is not None
    ]
    return pd.DataFrame(rows)


def with_gaps(n: int, gaps: list[int], base: float = 10.0) -> list[float]:
    """A varying regressor series of length n with NaN at the positions in `gaps`."""
    values = [base + i % 5 for i in range(n)]
    for position in gaps:
        values[position] = float("nan")
    return values


# -- calendar ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("day", "subdivision", "holiday"),
    [
        ("2017-10-03", "SH", 1.0),  # German Unity Day
        ("2017-10-31", "SH", 1.0),  # Reformation Day 2017: nationwide, once
        ("2016-10-31", "SH", 0.0),
        ("2018-10-31", "SH", 1.0),  # a holiday in Schleswig-Holstein since 2018
        ("2017-06-15", "SH", 0.0),  # Corpus Christi: not in Schleswig-Holstein ...
        ("2017-06-15", "BY", 1.0),  # ... but in Bavaria
        ("2017-10-04", "SH", 0.0),
        ("2017-12-25", None, 1.0),
    ],
)
def test_public_holidays(day: str, subdivision: str | None, holiday: float) -> None:
    features = calendar_features(pd.DatetimeIndex([day]), country="DE", subdivision=subdivision)
    assert features["public_holiday"].tolist() == [holiday]


def test_calendar_without_country_has_no_holiday_column() -> None:
    features = calendar_features(days(3), country=None, subdivision=None)
    assert list(features.columns) == [DATE]
    assert features[DATE].tolist() == list(days(3))


def test_unknown_country_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="XX"):
        calendar_features(days(3), country="XX", subdivision=None)


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        ({"opening_hours": [0, 8, np.nan, 0.0]}, [True, False, False, True]),
        ({"closed": [1, 0, np.nan, 0]}, [True, False, False, False]),
        ({"opening_hours": [8, 8, 0, 8], "closed": [0, 1, 0, 0]}, [False, True, True, False]),
        ({"temperature_c": [0, 0, 0, 0]}, [False, False, False, False]),
    ],
)
def test_closed_day_rule(columns: dict[str, list[float]], expected: list[bool]) -> None:
    frame = pd.DataFrame({DATE: days(4), **columns}, index=[10, 11, 12, 13])
    closed = ClosedDayRule().closed(frame)
    assert closed.tolist() == expected
    assert closed.index.tolist() == [10, 11, 12, 13]


# -- tenant frame ------------------------------------------------------------------------
def test_closed_days_from_opening_hours_and_gaps_stay_gaps() -> None:
    # Day 3 closed with a 0 row; day 4 closed without a row (added); day 6 has no row and
    # is open (a gap); day 8 is "closed" but sold 5 (kept open: the sale happened).
    sales = sales_frame({"rolls": [5, 6, 7, 0, None, 8, None, 9, 5, 6]})
    hours = [8, 8, 8, 0, 0, 8, 8, 8, 0, 8]
    regressors = pd.DataFrame({DATE: days(10), "opening_hours": hours})
    frame, report = build_tenant_frame(sales, regressors, country=None, subdivision=None)
    by_day = frame.set_index(DATE)
    assert by_day[CLOSED].to_dict() == {
        day: day in {days(10)[3], days(10)[4]} for day in days(10) if day != days(10)[6]
    }
    assert by_day.loc[days(10)[4], Y] == 0.0
    assert days(10)[6] not in by_day.index
    assert report.closed_days_added == {"rolls": 1}
    # Opening hours are 8 on every open day here: constant, so no regressor.
    assert list(frame.columns) == [PRODUCT, DATE, Y, CLOSED]
    assert report.dropped_regressors == {"opening_hours": "constant over the sales window"}
    assert frame[CLOSED].dtype == bool
    assert frame[DATE].dtype == "datetime64[ns]"


def test_closed_days_outside_a_products_span_are_not_added() -> None:
    sales = sales_frame({"a": [5, 6, 7, 8, 9, 5, 6, 7, 8, 9], "b": [None] * 5 + [1, 2, 3, 4, 5]})
    hours = [0, 8, 8, 8, 8, 8, 8, 8, 8, 8]
    regressors = pd.DataFrame({DATE: days(10), "opening_hours": hours})
    frame, _ = build_tenant_frame(sales, regressors, country=None, subdivision=None)
    assert frame.groupby(PRODUCT).size().to_dict() == {"a": 10, "b": 5}


def test_regressor_dropping_interpolation_and_clipping() -> None:
    n = 40
    sales = sales_frame({"bread": [float(10 + i % 7) for i in range(n)]})
    regressors = pd.DataFrame(
        {
            DATE: days(n),
            "mostly_missing": with_gaps(n, list(range(0, n, 4))),  # 25 % missing
            "short_gap": with_gaps(n, [10, 11]),  # interpolated
            "long_gap": with_gaps(n, [20, 21, 22, 23]),  # 10 %: kept, 4 days clipped
            "flat": [3.0] * n,
            "label": ["x"] * n,
        }
    )
    frame, report = build_tenant_frame(sales, regressors, country=None, subdivision=None)

    assert report.used_regressors == ("short_gap", "long_gap")
    assert set(report.dropped_regressors) == {"mostly_missing", "flat", "label"}
    assert "25.0%" in report.dropped_regressors["mostly_missing"]
    assert report.dropped_regressors["flat"].startswith("constant")
    assert report.dropped_regressors["label"] == "not numeric"
    assert report.interpolated == {"short_gap": 2}
    # Linear between day 9 (10 + 4) and day 12 (10 + 2).
    filled = frame.set_index(DATE).loc[days(n)[10:12], "short_gap"].tolist()
    assert filled == pytest.approx([14 - 2 / 3, 14 - 4 / 3])
    assert report.clipped == {
        "bread": ClippedDays(
            n_days=4, ranges=((days(n)[20].date(), days(n)[23].date()),), remaining_days=36
        )
    }
    assert len(frame) == 36
    assert not frame[list(report.used_regressors)].isna().any().any()


def test_missing_share_is_judged_on_open_sales_dates_only() -> None:
    # The traffic counter is off whenever the shop is closed (half the days): still kept.
    n = 20
    hours = [8.0, 0.0] * (n // 2)
    sales = sales_frame({"cake": [5.0, 0.0] * (n // 2)})
    traffic = [float(100 + i) if h else float("nan") for i, h in enumerate(hours)]
    regressors = pd.DataFrame({DATE: days(n), "opening_hours": hours, "guests": traffic})
    frame, report = build_tenant_frame(sales, regressors, country=None, subdivision=None)
    assert "guests" not in report.dropped_regressors
    assert report.clipped == {}
    assert len(frame) == n
    open_rows = frame.loc[~frame[CLOSED]]
    assert open_rows["guests"].tolist() == [float(100 + i) for i in range(0, n, 2)]
    assert not frame["guests"].isna().any()


def test_threshold_is_configurable() -> None:
    n = 40
    sales = sales_frame({"bread": [float(10 + i % 7) for i in range(n)]})
    regressors = pd.DataFrame({DATE: days(n), "long_gap": with_gaps(n, [20, 21, 22, 23])})
    _, strict = build_tenant_frame(
        sales, regressors, country=None, subdivision=None, max_regressor_missing_share=0.05
    )
    assert strict.used_regressors == ()
    assert "long_gap" in strict.dropped_regressors


def test_public_holiday_from_the_calendar_replaces_the_uploaded_column() -> None:
    n = 40  # 2024-03-04 .. 2024-04-12: Good Friday 29 Mar and Easter Monday 1 Apr
    sales = sales_frame({"bread": [float(10 + i % 7) for i in range(n)]})
    regressors = pd.DataFrame({DATE: days(n), "public_holiday": [0.0] * (n - 1) + [1.0]})
    frame, report = build_tenant_frame(sales, regressors, country="DE", subdivision="SH")
    holidays_found = frame.loc[frame["public_holiday"] == 1.0, DATE].dt.date.tolist()
    assert holidays_found == [date(2024, 3, 29), date(2024, 4, 1)]
    assert report.used_regressors == ("public_holiday",)
    assert any("public_holiday" in note for note in report.notes)
    assert report.computed_regressors == ()  # the tenant's file had the column


def test_a_holiday_column_no_file_supplied_is_marked_computed() -> None:
    n = 40
    sales = sales_frame({"bread": [float(10 + i % 7) for i in range(n)]})
    regressors = pd.DataFrame({DATE: days(n), "temperature": [float(i % 9) for i in range(n)]})
    _, report = build_tenant_frame(sales, regressors, country="DE", subdivision="SH")
    assert set(report.used_regressors) == {"public_holiday", "temperature"}
    assert report.computed_regressors == ("public_holiday",)
    assert AlignmentReport.from_dict(report.to_dict()) == report


def test_duplicate_sales_rows_are_refused() -> None:
    sales = pd.concat([sales_frame({"a": [1, 2, 3]}), sales_frame({"a": [4]})])
    with pytest.raises(ValueError, match="a on 2024-03-04"):
        build_tenant_frame(sales, None, country=None, subdivision=None)


def test_without_regressors() -> None:
    frame, report = build_tenant_frame(
        sales_frame({"a": [1, None, 3]}), None, country=None, subdivision=None
    )
    assert list(frame.columns) == [PRODUCT, DATE, Y, CLOSED]
    assert frame[Y].tolist() == [1.0, 3.0]
    assert report.used_regressors == ()


def test_alignment_report_json_round_trip() -> None:
    report = AlignmentReport(
        sales_start=date(2024, 1, 1),
        sales_end=date(2024, 3, 1),
        used_regressors=("temperature_c",),
        dropped_regressors={"weather_code": "missing on 25.0% of open sales dates"},
        interpolated={"temperature_c": 2},
        clipped={"bread": ClippedDays(3, ((date(2024, 1, 5), date(2024, 1, 7)),), 57)},
        closed_days_added={"bread": 1},
        notes=("a note",),
    )
    payload = json.dumps(report.to_dict(), allow_nan=False)
    assert AlignmentReport.from_dict(json.loads(payload)) == report


def test_kiel_alignment(kiel_tenant: tuple[pd.DataFrame, AlignmentReport]) -> None:
    frame, report = kiel_tenant
    # weather_code is empty on about a quarter of the days; cloud cover has a 10-day gap
    # in autumn 2017 that is too long to interpolate.
    assert set(report.dropped_regressors) == {"weather_code"}
    assert "cloud_cover_okta" in report.used_regressors
    assert "public_holiday" in report.used_regressors
    bread = report.clipped["bread"]
    assert bread.ranges == ((date(2017, 10, 30), date(2017, 11, 8)),)
    assert set(report.clipped) == set(frame[PRODUCT].unique())
    assert report.closed_days_added == {}
    assert not frame[CLOSED].any()  # Kiel has no opening hours: missing dates are gaps
    assert not frame[list(report.used_regressors)].isna().any().any()
    assert json.loads(json.dumps(report.to_dict(), allow_nan=False))["used_regressors"]


# -- future frame ------------------------------------------------------------------------
def test_future_frame_columns_and_values() -> None:
    regressors = pd.DataFrame(
        {
            DATE: days(5),
            "temperature_c": [1.0, 2.0, np.nan, 4.0, 5.0],
            "opening_hours": [8, 8, 8, 0, 8],
        }
    )
    future = build_future_frame(
        days(5)[1:],
        regressors,
        used_regressors=["temperature_c", "public_holiday"],
        country="DE",
        subdivision="SH",
    )
    assert list(future.columns) == [DATE, CLOSED, "temperature_c", "public_holiday"]
    assert future[DATE].tolist() == list(days(5)[1:])
    assert future[CLOSED].tolist() == [False, False, True, False]
    assert future["temperature_c"].tolist() == [2.0, 3.0, 4.0, 5.0]  # gap interpolated
    assert future["public_holiday"].tolist() == [0.0] * 4


def test_future_frame_names_the_regressor_and_missing_dates() -> None:
    regressors = pd.DataFrame({DATE: days(3), "temperature_c": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="temperature_c") as caught:
        build_future_frame(
            days(6), regressors, used_regressors=["temperature_c"], country=None, subdivision=None
        )
    assert "2024-03-07..2024-03-09" in str(caught.value)
    assert isinstance(caught.value, RegressorUnavailable)
    assert isinstance(caught.value, ForecastUnavailable)


def test_future_frame_unknown_regressor_column() -> None:
    with pytest.raises(ValueError, match="guests has no value for 2 dates"):
        build_future_frame(
            days(2), None, used_regressors=["guests"], country=None, subdivision=None
        )


def test_regressors_missing_the_same_dates_are_named_together() -> None:
    # A weather file that ends after 3 days (two columns) and a traffic file after 4.
    regressors = pd.DataFrame({DATE: days(4), "temperature_c": [1.0, 2.0, 3.0, None],
                               "wind_speed": [1.0, 1.0, 1.0, None],
                               "guests": [5.0, 5.0, 5.0, 5.0]})
    with pytest.raises(RegressorUnavailable) as caught:
        build_future_frame(days(6), regressors,
                           used_regressors=["temperature_c", "wind_speed", "guests"],
                           country=None, subdivision=None)
    message = str(caught.value)
    assert "temperature_c, wind_speed have no value for 3 dates: 2024-03-07..2024-03-09" \
        in message
    assert "guests has no value for 2 dates: 2024-03-08..2024-03-09" in message
    assert message.count("no value") == 2


def test_closed_future_dates_need_no_regressor_values() -> None:
    regressors = pd.DataFrame(
        {DATE: days(2), "opening_hours": [8.0, 0.0], "guests": [100.0, np.nan]}
    )
    future = build_future_frame(
        days(2), regressors, used_regressors=["guests"], country=None, subdivision=None
    )
    assert future[CLOSED].tolist() == [False, True]
    assert future["guests"].tolist() == [100.0, 0.0]


# -- dates -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("instant", "tz", "expected"),
    [
        (datetime(2024, 1, 1, 23, 30, tzinfo=UTC), "Europe/Berlin", date(2024, 1, 2)),
        (datetime(2024, 1, 1, 23, 30, tzinfo=UTC), "UTC", date(2024, 1, 1)),
        (datetime(2024, 1, 1, 3, 0, tzinfo=UTC), "America/New_York", date(2023, 12, 31)),
    ],
)
def test_local_today(instant: datetime, tz: str, expected: date) -> None:
    assert local_today(tz, now=instant) == expected


def test_local_today_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        local_today("Mars/Olympus")
    with pytest.raises(ValueError, match="timezone-aware"):
        local_today("UTC", now=datetime(2024, 1, 1))
    assert isinstance(local_today("Europe/Berlin"), date)


def test_to_local_dates() -> None:
    parsed = to_local_dates(["2024-01-01", date(2024, 1, 2), pd.Timestamp("2024-01-03 17:45")])
    assert parsed.tolist() == list(pd.date_range("2024-01-01", periods=3))
    with pytest.raises(ValueError, match="naive"):
        to_local_dates([pd.Timestamp("2024-01-01", tz="Europe/Berlin")])


def test_fill_short_gaps_leaves_edges_and_long_gaps() -> None:
    index = pd.DatetimeIndex(["2024-01-01", "2024-01-02", "2024-01-04", "2024-01-09"])
    values = pd.Series([np.nan, 1.0, 3.0, 8.0], index=index)
    filled, mask = fill_short_gaps(values, max_gap_days=3)
    assert filled.index.tolist() == list(pd.date_range("2024-01-01", "2024-01-09"))
    # 01-01 edge: NaN; 01-03 one-day gap: 2.0; 01-05..01-08 four-day gap: NaN
    assert np.isnan(filled.iloc[0])
    assert filled.iloc[2] == 2.0
    assert filled.iloc[4:8].isna().all()
    assert mask.tolist() == [False, False, True, False, False, False, False, False, False]


def test_regressors_as_the_original_prepared_them() -> None:
    """Decision 033: every interior gap interpolated whatever its length, a missing
    `weather_code` 0 on the dates that have a row, the edges left unknown, a date with
    no row at all added inside the table's span; the input unchanged."""
    table = pd.DataFrame({
        DATE: ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05",
               "2024-01-06", "2024-01-07", "2024-01-08", "2024-01-10"],
        "temperature_c": [np.nan, 1.0, np.nan, np.nan, np.nan, np.nan, np.nan, 7.0, np.nan],
        "weather_code": [61.0, np.nan, 3.0, np.nan, np.nan, np.nan, np.nan, np.nan, 45.0],
        "label": ["a", "b", "c", "d", "e", "f", "g", "h", "i"]})
    before = table.copy()
    prepared, notes = regressors_as_original(table)
    pd.testing.assert_frame_equal(table, before)
    assert prepared[DATE].tolist() == list(pd.date_range("2024-01-01", "2024-01-10"))
    temperature = prepared["temperature_c"].to_numpy()
    np.testing.assert_allclose(temperature[1:8], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    assert np.isnan(temperature[0])  # the edges
    assert np.isnan(temperature[8:]).all()
    # 01-09 has no row: its code stays unknown; the rows without a code are 0.
    code = prepared["weather_code"].to_numpy()
    assert code[[0, 2, 9]].tolist() == [61.0, 3.0, 45.0]
    assert code[[1, 3, 4, 5, 6, 7]].tolist() == [0.0] * 6
    assert np.isnan(code[8])
    assert prepared["label"].iloc[:8].tolist() == list("abcdefgh")
    span = "(over every uploaded date, 2024-01-01 to 2024-01-10)"
    assert notes == (
        f"temperature_c: 5 missing values interpolated {span}, as the original system "
        "prepared its regressors",
        f"weather_code: 6 missing values taken as 0 {span}, as the original system "
        "prepared its regressors")
    assert regressors_as_original(pd.DataFrame({DATE: []}))[1] == ()


def test_empty_sales_give_an_empty_frame() -> None:
    empty = pd.DataFrame({"product": [], "date": [], "quantity": []})
    frame, report = build_tenant_frame(empty, None, country="DE", subdivision="SH")
    assert frame.empty
    assert list(frame.columns) == [PRODUCT, DATE, Y, CLOSED]
    assert report.sales_start is None


def test_a_product_entirely_outside_the_regressors_is_reported() -> None:
    sales = sales_frame({"early": [1, 2, 3, 4, 5], "late": [None] * 19 + [1, 2, 3, 4, 5]})
    regressors = pd.DataFrame({DATE: days(12), "temperature_c": np.arange(12.0)})
    frame, report = build_tenant_frame(
        sales, regressors, country=None, subdivision=None, max_regressor_missing_share=0.6
    )
    assert set(frame[PRODUCT]) == {"early"}
    assert report.clipped["late"].remaining_days == 0
    assert report.clipped["late"].n_days == 5


def _product_frames_one_by_one(sales: pd.DataFrame, closed_by_date: pd.Series,
                               grid: pd.DataFrame
                               ) -> tuple[pd.DataFrame, dict[str, ClippedDays], dict[str, int]]:
    """The tenant frame's rules written product by product, plainly (what
    `_product_frames` computes for all products at once)."""
    frames, clipped, added = [], {}, {}
    for name, rows in sales.groupby(PRODUCT, sort=True):
        observed = dict(zip(rows[DATE], rows[Y], strict=True))
        span = pd.date_range(min(observed), max(observed), freq="D")
        extra = [day for day in span if closed_by_date[day] and day not in observed]
        if extra:
            added[str(name)] = len(extra)
        y = {**observed, **dict.fromkeys(extra, 0.0)}
        frame = pd.DataFrame({PRODUCT: str(name), DATE: sorted(y),
                              Y: [y[day] for day in sorted(y)]})
        frame[CLOSED] = [bool(closed_by_date[day]) and not (value == value and value != 0)
                         for day, value in zip(frame[DATE], frame[Y], strict=True)]
        for column in grid.columns:
            frame[column] = grid[column].reindex(frame[DATE]).to_numpy()
        unknown = ~frame[CLOSED] & frame[list(grid.columns)].isna().any(axis=1)
        if unknown.any():
            clipped[str(name)] = ClippedDays(
                int(unknown.sum()), _runs(frame[DATE], unknown),
                int((~frame[CLOSED] & ~unknown).sum()))
        frames.append(frame.loc[~unknown].fillna({c: 0.0 for c in grid.columns}))
    return pd.concat(frames, ignore_index=True), clipped, added


@pytest.mark.parametrize("seed", range(60))
def test_the_tenant_frame_follows_its_rules_product_by_product(seed: int) -> None:
    """Random tenants (gaps, calendar-closed days with and without rows, sales on closed
    days, NaN quantities, regressors unknown on some days): the frame built for all
    products at once is the one built product by product."""
    rng = np.random.default_rng(seed)
    grid_days = pd.date_range("2024-01-01", periods=int(rng.integers(1, 40)), freq="D")
    rows = []
    for product in rng.choice(["a", "b", "c", "d", "e"], size=int(rng.integers(1, 5)),
                              replace=False):
        chosen = np.flatnonzero(rng.random(len(grid_days)) < rng.uniform(0.2, 1.0))
        for day in chosen if len(chosen) else [int(rng.integers(len(grid_days)))]:
            value = float(rng.choice([0.0, 0.0, 3.0, 7.5, np.nan]))
            rows.append((str(product), grid_days[day], value))
    sales = pd.DataFrame(rows, columns=[PRODUCT, DATE, Y]).sample(frac=1.0, random_state=seed)
    closed_by_date = pd.Series(rng.random(len(grid_days)) < 0.3, index=grid_days)
    columns = {name: np.where(rng.random(len(grid_days)) < 0.15, np.nan,
                              rng.normal(size=len(grid_days)))
               for name in ("temperature", "traffic")[:int(rng.integers(0, 3))]}
    grid = pd.DataFrame(columns, index=grid_days, dtype=float)

    frame, clipped, added = _product_frames(sales.reset_index(drop=True), closed_by_date, grid)
    expected, expected_clipped, expected_added = _product_frames_one_by_one(
        sales, closed_by_date, grid)
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)
    assert frame[CLOSED].dtype == bool
    assert frame[DATE].dtype == "datetime64[ns]"
    assert clipped == expected_clipped
    assert added == expected_added
