"""Scores of stored forecast rows against what sold (accuracy/scoring.py)."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest

from ovencast.accuracy.scoring import lead_bucket, score, scored
from ovencast.accuracy.service import backtest_wape
from ovencast.db.tables import ModelVersion


@pytest.mark.parametrize(("lead", "bucket"), [
    (0, "1-7"), (1, "1-7"), (7, "1-7"), (8, "8-14"), (14, "8-14"), (15, "15-28"),
    (28, "15-28"), (29, "29+"), (200, "29+")])
def test_lead_buckets(lead: int, bucket: str) -> None:
    assert lead_bucket(lead) == bucket


def _rows(**columns: list[object]) -> pd.DataFrame:
    base: dict[str, list[object]] = {
        "product": ["a"] * 4, "date": [date(2024, 1, d) for d in (1, 2, 3, 4)],
        "forecast": [10.0, 20.0, 30.0, 0.0], "p10": [5.0, 15.0, None, 0.0],
        "p90": [15.0, 25.0, None, 0.0], "baseline": [12.0, 18.0, 33.0, 0.0],
        "closed": [False, False, False, True]}
    base.update(columns)
    return pd.DataFrame(base)


def test_only_days_with_sales_and_open_are_scored() -> None:
    sales = pd.DataFrame({"product": ["a", "a", "a", "a", "b"],
                          "date": pd.to_datetime(["2024-01-01", "2024-01-02",
                                                  "2024-01-04", "2024-01-05",
                                                  "2024-01-01"]),
                          "quantity": [12.0, 26.0, 0.0, 9.0, 1.0]})
    found = scored(_rows(), sales)
    # Jan 3 has no sales row yet; Jan 4 was forecast closed; Jan 5 was not forecast.
    assert list(found["date"]) == [date(2024, 1, 1), date(2024, 1, 2)]
    result = score(found)
    assert result.n_days == 2
    assert result.wape == pytest.approx((2 + 6) / 38)
    assert result.bias == pytest.approx((30 - 38) / 38)
    assert result.coverage == pytest.approx(0.5)  # 12 in 5..15; 26 not in 15..25
    assert result.naive_wape == pytest.approx((0 + 8) / 38)


def test_coverage_counts_only_days_with_an_interval_and_nothing_sold_is_nan() -> None:
    rows = _rows(closed=[False] * 4).assign(actual=[10.0, 30.0, 30.0, 0.0])
    result = score(rows)
    assert result.coverage == pytest.approx(2 / 3)  # Jan 3 has no interval
    zero = score(rows.assign(actual=0.0))
    assert math.isnan(zero.wape)
    assert math.isnan(zero.bias)
    assert zero.to_dict()["wape"] is None


@pytest.mark.parametrize(("selection", "metrics", "expected"), [
    ({"basis": "backtest", "wape": 0.62, "served_wape": 0.55}, {"wape": 0.7}, 0.55),
    ({"basis": "backtest", "wape": 0.31}, {"wape": 0.4}, 0.31),  # turnover, or older
    ({"basis": "none", "chosen": "lightgbm"}, {"wape": 0.4}, 0.4),
])
def test_drift_compares_with_the_backtest_wape_of_what_is_served(
        selection: dict[str, object], metrics: dict[str, float], expected: float) -> None:
    version = ModelVersion(details={"selection": selection}, metrics=metrics)
    assert backtest_wape(version) == expected
    assert backtest_wape(None) is None
