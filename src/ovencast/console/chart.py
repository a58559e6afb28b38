"""The product page's chart as geometry for an inline SVG (templates/chart.html): the
sales of the weeks before the forecast, the forecast (P50) with its P10-P90 band, closed
days and holidays marked. Server-rendered: nothing to fetch, no script needed, and the
same picture in every browser (decision 011). Pure: dates and numbers in, coordinates out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

WIDTH, HEIGHT = 880, 320
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 18, 42


@dataclass(frozen=True)
class Sold:
    day: date
    quantity: float


@dataclass(frozen=True)
class Forecast:
    day: date
    p50: float
    p10: float | None
    p90: float | None


@dataclass(frozen=True)
class DayMark:
    day: date
    kind: str  # "closed" or "holiday"
    label: str


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    day: date
    value: float


@dataclass(frozen=True)
class Mark:
    x: float
    width: float
    kind: str
    label: str
    day: date


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    sold: list[Point]
    forecast: list[Point]
    band: str  # the P10-P90 polygon's points ("x,y x,y ..."); "" without a band
    marks: list[Mark]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    forecast_start_x: float

    @property
    def sold_path(self) -> str:
        return _polyline(self.sold)

    @property
    def forecast_path(self) -> str:
        return _polyline(self.forecast)


def _polyline(points: Sequence[Point]) -> str:
    return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in points)


def nice_top(value: float) -> float:
    """The y axis' top: the smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8
    x 10^k) at or above `value`."""
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    return float(next(step * magnitude for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10)
                      if step * magnitude >= value))


def build_chart(sold: Sequence[Sold], forecast: Sequence[Forecast], marks: Sequence[DayMark],
                *, first: date, last: date) -> Chart:
    """The chart of the days `first`..`last` (the same for every product of a tenant,
    so that two products' charts line up)."""
    days = (last - first).days + 1
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    step = plot_w / max(days, 1)
    values = [s.quantity for s in sold] + [
        v for f in forecast for v in (f.p50, f.p90) if v is not None]
    top = nice_top(max(values, default=0.0))

    def x(day: date) -> float:
        return LEFT + ((day - first).days + 0.5) * step

    def y(value: float) -> float:
        return TOP + plot_h * (1 - min(max(value, 0.0), top) / top)

    band = ""
    if forecast and all(f.p10 is not None and f.p90 is not None for f in forecast):
        upper = [f"{x(f.day):.1f},{y(f.p90 or 0.0):.1f}" for f in forecast]
        lower = [f"{x(f.day):.1f},{y(f.p10 or 0.0):.1f}" for f in reversed(forecast)]
        band = " ".join(upper + lower)
    mondays = [first + timedelta(days=i) for i in range(days)
               if (first + timedelta(days=i)).weekday() == 0]
    return Chart(
        width=WIDTH, height=HEIGHT, plot_left=LEFT, plot_right=WIDTH - RIGHT,
        plot_top=TOP, plot_bottom=TOP + plot_h,
        sold=[Point(x(s.day), y(s.quantity), s.day, s.quantity) for s in sold
              if first <= s.day <= last],
        forecast=[Point(x(f.day), y(f.p50), f.day, f.p50) for f in forecast],
        band=band,
        marks=[Mark(x(m.day) - step / 2, step, m.kind, m.label, m.day) for m in marks
               if first <= m.day <= last],
        x_ticks=[Tick(x(day), day.strftime("%d %b")) for day in mondays],
        y_ticks=[Tick(y(top * i / 4), f"{top * i / 4:g}") for i in range(5)],
        forecast_start_x=x(forecast[0].day) - step / 2 if forecast else WIDTH - RIGHT,
    )
