"""The product chart's geometry (console/chart.py) and the words and cells the pages use
(console/service.py): pure functions, no server."""

from __future__ import annotations

import math
from datetime import date, timedelta
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from ovencast.console.chart import DayMark, Forecast, Sold, build_chart, nice_top
from ovencast.console.service import (
    _csv_cell,
    closed_marks,
    fallback_lines,
    holiday_marks,
    off_by,
)

FIRST = date(2024, 3, 4)  # a Monday
FORECAST_START = FIRST + timedelta(days=56)


def forecast(days: int, *, band: bool = True) -> list[Forecast]:
    return [Forecast(FORECAST_START + timedelta(days=i), 10.0 + i,
                     5.0 + i if band else None, 20.0 + i if band else None)
            for i in range(days)]


@pytest.mark.parametrize(("value", "top"), [
    (0.0, 1.0), (0.7, 0.8), (1.0, 1.0), (11.0, 12.0), (130.0, 150.0), (1090.0, 1200.0),
    (2600.0, 3000.0), (9100.0, 10000.0)])
def test_the_y_axis_ends_at_a_round_number_at_or_above_the_data(value: float,
                                                                top: float) -> None:
    assert math.isclose(nice_top(value), top)


def test_one_point_per_forecast_day_on_the_days_axis() -> None:
    sold = [Sold(FIRST + timedelta(days=i), 12.0) for i in range(56)]
    days = forecast(14)
    last = days[-1].day
    chart = build_chart(sold, days, [], first=FIRST, last=last)
    assert [p.day for p in chart.forecast] == [f.day for f in days]
    assert len(chart.sold) == 56
    xs = [p.x for p in chart.sold + chart.forecast]
    assert xs == sorted(xs)
    assert chart.plot_left < xs[0]
    assert xs[-1] < chart.plot_right
    # The band runs along P90 and back along P10: two points a day.
    assert len(chart.band.split()) == 2 * 14
    # Larger values are higher up (SVG's y grows downwards); the axis starts at 0.
    assert chart.forecast[0].y > chart.forecast[-1].y
    assert chart.y_ticks[0].label == "0"
    assert chart.y_ticks[0].at == chart.plot_bottom
    assert len(chart.x_ticks) == 10  # the Mondays of 70 days from a Monday


def test_no_band_without_quantiles_and_marks_only_inside_the_window() -> None:
    days = forecast(7, band=False)
    marks = [DayMark(days[2].day, "closed", "closed"),
             DayMark(days[3].day, "holiday", "Easter Monday"),
             DayMark(FIRST - timedelta(days=3), "holiday", "before the window")]
    chart = build_chart([], days, marks, first=FIRST, last=days[-1].day)
    assert chart.band == ""
    assert [(m.kind, m.label, m.day) for m in chart.marks] == [
        ("closed", "closed", days[2].day), ("holiday", "Easter Monday", days[3].day)]
    point = {p.day: p.x for p in chart.forecast}
    for mark in chart.marks:
        assert mark.x < point[mark.day] < mark.x + mark.width


def test_holidays_come_from_the_tenants_country() -> None:
    tenant: Any = SimpleNamespace(country="DE", subdivision="SH")
    found = holiday_marks(tenant, date(2024, 3, 25), date(2024, 4, 7))
    # Good Friday and Easter Monday in Schleswig-Holstein.
    assert [(m.day, m.kind) for m in found] == [(date(2024, 3, 29), "holiday"),
                                              (date(2024, 4, 1), "holiday")]
    assert holiday_marks(SimpleNamespace(country=None, subdivision=None),
                         date(2024, 3, 25), date(2024, 4, 7)) == []


@pytest.mark.parametrize(("wape", "words"), [
    (0.123, "typically off by 12\N{NO-BREAK SPACE}%"),
    (0.0, "typically off by 0\N{NO-BREAK SPACE}%"),
    (None, "not measured yet"), (float("nan"), "not measured yet")])
def test_accuracy_in_plain_words(wape: float | None, words: str) -> None:
    assert off_by(wape) == words


@pytest.mark.parametrize(("text", "cell"), [
    ("rolls", "rolls"), ("a,b", '"a,b"'), ('say "hi"', '"say ""hi"""'),
    ("=cmd()", "'=cmd()"), ("fallback: temperature_c, wind", '"fallback: temperature_c, wind"')])
def test_csv_cells_are_quoted_and_never_formulas(text: str, cell: str) -> None:
    assert _csv_cell(text) == cell


def test_fallback_inputs_are_named_once_per_span_of_dates() -> None:
    spans = [{"regressor": "temperature_c", "source": "climatology",
              "dates": ["2023-11-01..2023-11-14"]},
             {"regressor": "guests", "source": "seasonal_profile",
              "dates": ["2023-11-01..2023-11-14"]},
             {"regressor": "school_holiday", "source": "last_year", "dates": ["2023-11-14"]}]
    assert fallback_lines(spans) == [
        "on 2023-11-01..2023-11-14: temperature_c (climatology), guests (seasonal profile)",
        "on 2023-11-14: school_holiday (last year)"]


def test_past_closed_days_come_from_the_calendar_by_the_training_rule() -> None:
    calendar = pd.DataFrame({"date": pd.to_datetime(["2024-03-01", "2024-03-02",
                                                     "2024-03-03", "2024-03-04"]),
                             "opening_hours": [8, 0, float("nan"), 0]})
    marks = closed_marks(calendar, date(2024, 3, 1), date(2024, 3, 3))
    assert [(m.day, m.kind) for m in marks] == [(date(2024, 3, 2), "closed")]
    assert closed_marks(pd.DataFrame({"date": []}), date(2024, 3, 1), date(2024, 3, 3)) == []
