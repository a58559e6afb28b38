from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest

from ovencast.forecasting.classes import ProductClass
from ovencast.forecasting.features import AlignmentReport
from ovencast.forecasting.frame import CLOSED, DATE, PRODUCT, Y
from ovencast.forecasting.validation import (
    RULE_DUPLICATE_DATES,
    RULE_IDENTICAL_SERIES,
    RULE_INVALID_QUANTITY,
    RULE_MIN_DAYS,
    RULE_NO_DATA,
    RULE_RECOMMENDED_DAYS,
    RULE_SINGLE_PRODUCT,
    RULE_STALE,
    RULE_ZERO_RATIO,
    ValidationReport,
    validate_sales,
)

MIN_DAYS, RECOMMENDED_DAYS = 30, 90


def product_rows(
    name: str,
    n_open: int,
    *,
    n_zero: int = 0,
    n_closed: int = 0,
    level: float = 20.0,
    start: str = "2024-01-01",
) -> pd.DataFrame:
    """`n_open` open days (the first `n_zero` of them zero, the others varying around
    `level`), then `n_closed` closed days, consecutive dates."""
    values = [0.0] * n_zero + [level + (i % 7) for i in range(n_open - n_zero)]
    values += [0.0] * n_closed
    return pd.DataFrame(
        {
            PRODUCT: name,
            DATE: pd.date_range(start, periods=len(values), freq="D"),
            Y: values,
            CLOSED: [False] * n_open + [True] * n_closed,
        }
    )


def tenant(*products: pd.DataFrame) -> pd.DataFrame:
    # A second, distinct product keeps tenant-level rules out of per-product cases; it
    # ends with them, so that none is stale (RULE_STALE).
    last = max((p[DATE].max() for p in products if not p.empty),
               default=pd.Timestamp("2024-04-29"))
    other = product_rows("other", 120, level=500.0,
                         start=str((last - pd.Timedelta(days=119)).date()))
    return pd.concat([*products, other], ignore_index=True)


def rules_of(report: ValidationReport, product: str | None) -> set[tuple[str, str]]:
    return {(issue.level, issue.rule) for issue in report.issues_for(product)}


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param(product_rows("p", 29), {("error", RULE_MIN_DAYS)}, id="29-days"),
        pytest.param(product_rows("p", 30), {("warning", RULE_RECOMMENDED_DAYS)}, id="30-days"),
        pytest.param(product_rows("p", 89), {("warning", RULE_RECOMMENDED_DAYS)}, id="89-days"),
        pytest.param(product_rows("p", 90), set(), id="90-days"),
        pytest.param(
            product_rows("p", 25, n_closed=10), {("error", RULE_MIN_DAYS)}, id="closed-not-counted"
        ),
        pytest.param(
            product_rows("p", 100, n_zero=91), {("error", RULE_ZERO_RATIO)}, id="zero-91%"
        ),
        pytest.param(
            product_rows("p", 100, n_zero=90), {("warning", RULE_ZERO_RATIO)}, id="zero-90%"
        ),
        pytest.param(
            product_rows("p", 100, n_zero=71), {("warning", RULE_ZERO_RATIO)}, id="zero-71%"
        ),
        pytest.param(product_rows("p", 100, n_zero=70), set(), id="zero-70%"),
        pytest.param(
            # 60 open days, 40 of them zero (67 %), and 100 closed zero days: closed days
            # do not count towards the zero ratio.
            product_rows("p", 60, n_zero=40, n_closed=100),
            {("warning", RULE_RECOMMENDED_DAYS)},
            id="closed-zeros-not-counted",
        ),
        pytest.param(
            product_rows("p", 100).assign(y=lambda f: f[Y].where(f.index != 5, -1.0)),
            {("error", RULE_INVALID_QUANTITY)},
            id="negative",
        ),
        pytest.param(
            product_rows("p", 100).assign(y=lambda f: f[Y].where(f.index != 5)),
            {("error", RULE_INVALID_QUANTITY)},
            id="nan",
        ),
        pytest.param(
            pd.concat([product_rows("p", 100), product_rows("p", 1)]),
            {("error", RULE_DUPLICATE_DATES)},
            id="duplicate-date",
        ),
    ],
)
def test_product_rules(rows: pd.DataFrame, expected: set[tuple[str, str]]) -> None:
    report = validate_sales(tenant(rows), min_days=MIN_DAYS, recommended_days=RECOMMENDED_DAYS)
    assert rules_of(report, "p") == expected
    assert rules_of(report, None) == set()
    assert ("p" in report.trainable_products) == (not any(lvl == "error" for lvl, _ in expected))


def test_thresholds_come_from_arguments() -> None:
    report = validate_sales(tenant(product_rows("p", 50)), min_days=60, recommended_days=200)
    assert rules_of(report, "p") == {("error", RULE_MIN_DAYS)}
    assert rules_of(report, "other") == {("warning", RULE_RECOMMENDED_DAYS)}


def test_messages_state_the_numbers() -> None:
    report = validate_sales(
        tenant(product_rows("p", 45), product_rows("q", 10), product_rows("z", 100, n_zero=95)),
        min_days=MIN_DAYS,
        recommended_days=RECOMMENDED_DAYS,
    )
    assert "45" in report.issues_for("p")[0].message
    assert "recommended 90+" in report.issues_for("p")[0].message
    assert "at least 30" in report.errors_for("q")[0].message
    assert "95.0%" in report.errors_for("z")[0].message


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        pytest.param([product_rows("a", 120)], {("warning", RULE_SINGLE_PRODUCT)}, id="single"),
        pytest.param([product_rows("a", 120), product_rows("b", 120, level=30)], set(), id="two"),
        pytest.param(
            [product_rows("a", 120), product_rows("b", 120), product_rows("c", 120, level=9)],
            {("warning", RULE_IDENTICAL_SERIES)},
            id="identical",
        ),
        pytest.param(
            # Same values, shifted by a day: not identical.
            [product_rows("a", 120), product_rows("b", 120, start="2024-01-02")],
            set(),
            id="shifted",
        ),
        pytest.param([product_rows("a", 0)], {("error", RULE_NO_DATA)}, id="empty"),
    ],
)
def test_tenant_rules(frames: list[pd.DataFrame], expected: set[tuple[str, str]]) -> None:
    report = validate_sales(
        pd.concat(frames, ignore_index=True), min_days=MIN_DAYS, recommended_days=RECOMMENDED_DAYS
    )
    assert rules_of(report, None) == expected


def test_a_product_whose_data_ends_weeks_before_the_tenants_is_warned_of() -> None:
    # 120 days from 2024-01-01 end 2024-04-29; 90 end 2024-03-30 (30 days before: warned),
    # 95 end 2024-04-04 (25 days: not).
    frames = [product_rows("bread", 120), product_rows("old_roll", 90, level=9),
              product_rows("rye", 95, level=30)]
    report = validate_sales(
        pd.concat(frames, ignore_index=True), min_days=MIN_DAYS, recommended_days=RECOMMENDED_DAYS
    )
    stale = [i for i in report.warnings if i.rule == RULE_STALE]
    assert [(i.product, i.message) for i in stale] == [(
        "old_roll", "no sales row for 30 days: its data ends 2024-03-30, the tenant's "
                    "2024-04-29 (no longer sold, or its recent rows missing from the "
                    "import?)")]
    assert "old_roll" in report.trainable_products


def test_identical_series_warning_names_the_products() -> None:
    frames = [
        product_rows("rye", 120),
        product_rows("spelt", 120, level=9),
        product_rows("wheat", 120),
    ]
    report = validate_sales(
        pd.concat(frames, ignore_index=True), min_days=MIN_DAYS, recommended_days=RECOMMENDED_DAYS
    )
    (warning,) = report.issues_for(None)
    assert "rye, wheat" in warning.message
    assert "spelt" not in warning.message
    assert report.trainable_products == ("rye", "spelt", "wheat")  # a warning never blocks


def test_stats() -> None:
    rows = product_rows("p", 40, n_zero=10, n_closed=5)
    rows = rows.drop(index=[3, 4, 20])  # three gaps inside the span
    report = validate_sales(tenant(rows), min_days=MIN_DAYS, recommended_days=RECOMMENDED_DAYS)
    stats = report.products["p"]
    assert stats.first_date == date(2024, 1, 1)
    assert stats.last_date == date(2024, 2, 14)  # 45 days: 40 open + 5 closed
    assert stats.n_days == 37
    assert stats.n_closed_days == 5
    assert stats.n_missing_dates == 3
    assert stats.zero_ratio == pytest.approx(8 / 37)
    open_values = rows.loc[~rows[CLOSED], Y]
    assert stats.mean == pytest.approx(open_values.mean())
    assert stats.std == pytest.approx(open_values.std())
    assert stats.product_class is ProductClass.MEDIUM_VOLUME


def test_report_helpers_and_json_round_trip() -> None:
    report = validate_sales(
        tenant(product_rows("short", 10), product_rows("warn", 50)),
        min_days=MIN_DAYS,
        recommended_days=RECOMMENDED_DAYS,
    )
    assert report.has_errors
    assert [i.rule for i in report.errors_for("short")] == [RULE_MIN_DAYS]
    assert report.errors_for("warn") == ()
    assert report.trainable_products == ("other", "warn")
    payload = json.dumps(report.to_dict(), allow_nan=False)
    assert ValidationReport.from_dict(json.loads(payload)) == report


def test_nan_stats_serialise_as_null() -> None:
    closed_only = product_rows("p", 0, n_closed=5)
    report = validate_sales(tenant(closed_only), min_days=MIN_DAYS, recommended_days=90)
    payload = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert payload["products"]["p"]["mean"] is None
    assert payload["products"]["p"]["n_days"] == 0
    assert ValidationReport.from_dict(payload).to_dict() == payload


def test_missing_column_raises() -> None:
    with pytest.raises(ValueError, match="closed"):
        validate_sales(product_rows("p", 5).drop(columns=[CLOSED]), min_days=1, recommended_days=2)


def test_kiel_all_products_trainable(kiel_tenant: tuple[pd.DataFrame, AlignmentReport]) -> None:
    report = validate_sales(kiel_tenant[0], min_days=MIN_DAYS, recommended_days=RECOMMENDED_DAYS)
    # The Christmas bread's last row is 2017-12-27, but 2018-07-31 is in its off-season:
    # out of season, as every year, so no RULE_STALE warning.
    assert report.issues == ()
    assert len(report.trainable_products) == 6
    bread = report.products["bread"]
    # 1857 calendar days, 1819 with sales, 9 clipped for a gap in the weather data.
    assert bread.n_days == 1810
    assert bread.n_missing_dates == 1857 - 1810


def test_northsea_slow_movers(northsea_tenant: tuple[pd.DataFrame, AlignmentReport]) -> None:
    report = validate_sales(
        northsea_tenant[0], min_days=MIN_DAYS, recommended_days=RECOMMENDED_DAYS
    )
    zero_errors = {i.product for i in report.errors if i.rule == RULE_ZERO_RATIO}
    zero_warnings = {i.product for i in report.warnings if i.rule == RULE_ZERO_RATIO}
    # Zero ratios on open days: 97.6 %, 97.6 %, 95.4 % -> error; 73.8 % ... 88.5 % -> warning.
    assert zero_errors == {"item_103", "item_116", "item_95"}
    assert zero_warnings == {"item_51", "item_54", "item_104", "item_133", "item_145"}
    assert report.products["item_10"].n_closed_days > 400
    assert len(report.trainable_products) == 21
