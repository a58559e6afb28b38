"""`forecast.png`: one panel per product, every panel on the same dates: the last 8 weeks
of sales and the forecast with its likely range, the y axis from 0, weekends shaded,
closed days marked, titles in plain words."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from ovencast.forecasts.service import HISTORY_DAYS, TenantForecast

SOLD, FORECAST, BAND, CLOSED_MARK = "#4d4d4d", "#c0571b", "#e8a27c", "#1f5fa8"


def plot_forecast(forecast: TenantForecast, path: Path, *, title: str,
                  labels: dict[str, str] | None = None) -> Path:
    """Draw `forecast` to `path` (PNG); see `draw_forecast`."""
    figure = draw_forecast(forecast, title=title, labels=labels)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    finally:
        plt.close(figure)
    return path


def draw_forecast(forecast: TenantForecast, *, title: str,
                  labels: dict[str, str] | None = None) -> Figure:
    """The figure of `forecast` (its `history` too, when it has one). `labels`: an extra
    phrase per product for its panel's title (e.g. "typically off by 12 %")."""
    frame = forecast.forecast
    products = list(dict.fromkeys(frame["product"]))
    if not products:
        raise ValueError("nothing to plot: no product was forecast")
    cols = 2 if len(products) > 1 else 1
    rows = math.ceil(len(products) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7.5 * cols, 2.9 * rows), squeeze=False,
                             sharex=True)
    first, last = forecast.dates[0], forecast.dates[-1]
    start = first - pd.Timedelta(days=HISTORY_DAYS)
    history = forecast.history if forecast.history is not None else pd.DataFrame(
        columns=["product", "date", "quantity"])
    for ax, product in zip(axes.flat, products, strict=False):
        rows_of = frame.loc[frame["product"] == product]
        sold = history.loc[history["product"] == product].sort_values("date")
        _panel(ax, product, rows_of, sold, start, last, (labels or {}).get(product))
    for ax in list(axes.flat)[len(products):]:
        ax.set_visible(False)
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper right", ncol=len(names), fontsize=9,
               frameon=False)
    fig.suptitle(f"{title}: {first.date():%a %d %b %Y} to {last.date():%a %d %b %Y}",
                 fontsize=12, x=0.01, ha="left")
    footer = _footer(forecast)
    if footer:
        fig.text(0.01, 0.005, footer, fontsize=8, color="#555555", ha="left", va="bottom",
                 wrap=True)
    fig.tight_layout(rect=(0, 0.02 if footer else 0, 1, 0.97))
    return fig


def _panel(ax: Any, product: str, rows: pd.DataFrame, sold: pd.DataFrame,
           start: pd.Timestamp, last: pd.Timestamp, label: str | None) -> None:
    dates = pd.to_datetime(rows["date"])
    for day in pd.date_range(start, last, freq="D"):
        if day.dayofweek >= 5:  # weekends shaded
            ax.axvspan(day - pd.Timedelta(hours=12), day + pd.Timedelta(hours=12),
                       color="#eeeeee", lw=0, zorder=0)
    ax.axvline(dates.iloc[0] - pd.Timedelta(hours=12), color="#999999", lw=0.8, ls="--")
    ax.plot(pd.to_datetime(sold["date"]), sold["quantity"], color=SOLD, lw=1.2, marker=".",
            ms=3, label="sold")
    if rows["p10"].notna().any():
        ax.fill_between(dates, rows["p10"], rows["p90"], color=BAND, alpha=0.45, lw=0,
                        label="likely range (8 in 10 days)")
    ax.plot(dates, rows["forecast"], color=FORECAST, lw=1.8, marker="o", ms=3,
            label="forecast")
    closed = rows["closed"].to_numpy(dtype=bool)
    if closed.any():
        ax.scatter(dates[closed], [0] * int(closed.sum()), marker="x", color=CLOSED_MARK,
                   zorder=3, label="closed")
    open_days = rows.loc[~rows["closed"] & ~rows["off_season"], "forecast"]
    typical = f"about {open_days.mean():.0f} a day" if not open_days.empty else \
        "not sold on these days"
    ax.set_title(f"{product}: {typical}" + (f" ({label})" if label else ""), fontsize=10,
                 loc="left")
    ax.set_xlim(start - pd.Timedelta(days=1), last + pd.Timedelta(days=1))
    ax.set_ylim(0, max(1.0, float(ax.get_ylim()[1])))
    ax.set_ylabel("sold per day", fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    # matplotlib.dates has no type hints.
    ax.xaxis.set_major_locator(mdates.WeekdayLocator(  # type: ignore[no-untyped-call]
        byweekday=mdates.MO))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))  # type: ignore[no-untyped-call]
    ax.tick_params(axis="x", labelsize=7, labelbottom=True)
    ax.tick_params(axis="y", labelsize=8)


def _footer(forecast: TenantForecast) -> str:
    filled = sorted({span["regressor"] for span in forecast.fallbacks})
    if not filled:
        return ""
    return ("Grey: weekends. Not supplied for some forecast days, so filled in from the "
            f"shop's past years: {', '.join(filled)}.")
