"""`forecast.png`: recent history and forecast, one panel per product."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt
import pandas as pd


def plot_forecasts(history: pd.DataFrame, forecasts: pd.DataFrame, path: Path, *,
                   title: str, history_days: int = 56,
                   metrics: dict[str, str] | None = None) -> Path:
    """`history`: product, date, quantity; `forecasts`: date, product, forecast and
    optionally p10, p90 (drawn as a band)."""
    products: Sequence[str] = sorted(forecasts["product"].unique())
    cols = 2 if len(products) > 1 else 1
    rows = math.ceil(len(products) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 2.8 * rows), squeeze=False)
    for ax, product in zip(axes.flat, products, strict=False):
        past = history.loc[history["product"] == product].sort_values("date")
        future = forecasts.loc[forecasts["product"] == product].sort_values("date")
        if not past.empty:
            start = past["date"].max() - pd.Timedelta(days=history_days)
            past = past.loc[past["date"] > start]
        ax.plot(pd.to_datetime(past["date"]), past["quantity"], color="#555555", lw=1.2,
                marker=".", ms=3, label="sales")
        ax.plot(pd.to_datetime(future["date"]), future["forecast"], color="#d2691e", lw=1.8,
                marker=".", ms=4, label="forecast")
        if {"p10", "p90"} <= set(future.columns) and future["p10"].notna().any():
            ax.fill_between(pd.to_datetime(future["date"]), future["p10"], future["p90"],
                            color="#d2691e", alpha=0.2, lw=0, label="P10-P90")
        label = product if not metrics or product not in metrics else (
            f"{product}  ({metrics[product]})")
        ax.set_title(label, fontsize=10, loc="left")
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelsize=7, rotation=30)
        ax.tick_params(axis="y", labelsize=8)
    for ax in list(axes.flat)[len(products):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
