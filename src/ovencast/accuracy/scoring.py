"""Scores of stored forecast rows against what sold: pure functions on frames.

A stored row is scored when a sales row of its product and date exists and the forecast
did not mark the day closed (closed days are forecast 0 and, as in every holdout and
backtest of ovencast, never scored). Over the scored rows:

    wape      = sum|y - forecast| / sum|y|
    bias      = sum(forecast - y) / sum(y)        (> 0: over-forecast)
    coverage  = share of rows with p10 <= y <= p90 (rows that have an interval)
    naive_wape = sum|y - baseline| / sum|y|       (the weekly seasonal naive forecast made
                                                   from the same sales, same rows)

Rows are pooled as stored: a date forecast by several runs counts once per run (each
was a forecast someone was given). Lead time counts from the run's origin (its last
sales date) and is grouped as LEAD_BUCKETS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

LEAD_BUCKETS: tuple[tuple[int, int, str], ...] = ((1, 7, "1-7"), (8, 14, "8-14"),
                                                   (15, 28, "15-28"))
BEYOND_BUCKETS = "29+"
ACTUAL = "actual"


def lead_bucket(lead_days: int) -> str:
    """"1-7", "8-14", "15-28" or "29+" (a lead below 1: a forecast of a day already
    known when it was made, e.g. `--from` in the past, counts as "1-7")."""
    for _, last, label in LEAD_BUCKETS:
        if lead_days <= last:
            return label
    return BEYOND_BUCKETS


@dataclass(frozen=True, slots=True)
class Score:
    n_days: int
    wape: float
    bias: float
    coverage: float
    naive_wape: float
    naive_days: int

    def to_dict(self) -> dict[str, Any]:
        return {"n_days": self.n_days, "wape": _json(self.wape), "bias": _json(self.bias),
                "coverage": _json(self.coverage), "naive_wape": _json(self.naive_wape),
                "naive_days": self.naive_days}


def score(rows: pd.DataFrame) -> Score:
    """The score of scored rows (columns actual, forecast, p10, p90, baseline)."""
    y = rows[ACTUAL].to_numpy(dtype=float)
    forecast = rows["forecast"].to_numpy(dtype=float)
    total = float(np.sum(np.abs(y)))
    p10 = rows["p10"].to_numpy(dtype=float)
    p90 = rows["p90"].to_numpy(dtype=float)
    has_interval = ~(np.isnan(p10) | np.isnan(p90))
    inside = (y >= p10) & (y <= p90)
    baseline = rows["baseline"].to_numpy(dtype=float)
    has_baseline = ~np.isnan(baseline)
    naive_total = float(np.sum(np.abs(y[has_baseline])))
    return Score(
        n_days=int(y.size),
        wape=float(np.sum(np.abs(y - forecast))) / total if total > 0 else math.nan,
        bias=(float(np.sum(forecast - y)) / float(np.sum(y))
              if float(np.sum(y)) != 0 else math.nan),
        coverage=(float(np.mean(inside[has_interval])) if has_interval.any()
                  else math.nan),
        naive_wape=(float(np.sum(np.abs(y[has_baseline] - baseline[has_baseline])))
                    / naive_total if naive_total > 0 else math.nan),
        naive_days=int(has_baseline.sum()))


def scored(rows: pd.DataFrame, sales: pd.DataFrame) -> pd.DataFrame:
    """The stored rows that can be scored, with their `actual`: a sales row exists for
    the product and date, and the forecast did not mark the day closed. `sales`:
    product, date, quantity (a source's sales frame)."""
    if rows.empty:
        return rows.assign(**{ACTUAL: pd.Series(dtype=float)})
    actual = sales.assign(date=pd.to_datetime(sales["date"]).dt.date).rename(
        columns={"quantity": ACTUAL})[["product", "date", ACTUAL]]
    merged = rows.merge(actual, on=["product", "date"], how="inner")
    merged = merged.loc[~merged["closed"].astype(bool)]
    for column in ("forecast", "p10", "p90", "baseline", ACTUAL):
        merged[column] = pd.to_numeric(merged[column], errors="coerce").astype(float)
    return merged.reset_index(drop=True)


def _json(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
