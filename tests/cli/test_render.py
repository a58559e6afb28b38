"""What `ovencast forecast` prints for refused products (cli/render.forecasts)."""

from __future__ import annotations

import io
from datetime import date

from rich.console import Console

from ovencast.cli import render
from ovencast.db.tables import ModelVersion
from ovencast.forecasts.service import ProductForecast, refusals_by_reason


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=400, color_system=None), buffer


def test_products_refused_for_the_same_reason_share_one_line() -> None:
    weather = "cannot forecast: temperature_c has no value for 2 dates: 2023-11-01..2023-11-02"
    results = [
        ProductForecast(product="item_10", version=1, family="lightgbm", frame=None,
                        error=weather),
        ProductForecast(product="item_51", version=1, family="seasonal_naive", frame=None,
                        error="checksum mismatch"),
        ProductForecast(product="item_13", version=1, family="lightgbm", frame=None,
                        error=weather),
    ]
    out, out_buffer = _console()
    err, err_buffer = _console()

    render.forecasts(out, err, results, "csv")

    lines = err_buffer.getvalue().splitlines()
    assert lines == [f"error: item_10, item_13: {weather}",
                     "error: item_51: checksum mismatch"]
    assert out_buffer.getvalue() == ""


def test_the_leaderboard_line_says_why_the_global_model_was_kept() -> None:
    details = {
        "selection": {"basis": "backtest", "chosen": "lightgbm",
                      "kept_preferred": {"family": "lightgbm", "over": "croston",
                                         "over_wape": 0.201, "margin": 0.1}},
        "leaderboard": [{"family": "croston", "wape": 0.201},
                        {"family": "tsb", "wape": 0.205},
                        {"family": "seasonal_naive", "wape": 0.21},
                        {"family": "lightgbm", "wape": 0.215, "chosen": True}],
    }
    assert render.leaderboard_top(details) == (
        "croston .201, tsb .205, seasonal_naive .210, *lightgbm .215 "
        "(lightgbm kept over croston .201: not more than 10% better)")
    plain = {"selection": {"basis": "backtest", "chosen": "croston"},
             "leaderboard": [{"family": "croston", "wape": 0.1, "chosen": True},
                             {"family": "lightgbm", "wape": 0.2}]}
    assert render.leaderboard_top(plain) == "*croston .100, lightgbm .200"


def test_model_versions_keep_product_names_and_metrics_whole_on_a_narrow_terminal() -> None:
    versions = [
        ModelVersion(product=name, version=version, family=family, is_active=active,
                     params={}, metrics={"wape": wape, "mase": 0.9, "mape": 0.2,
                                         "bias": -0.05},
                     baseline_metrics={"wape": 0.3}, details={"product_class":
                                                               "medium_volume"},
                     sha256="ab" * 32, data_start=date(2013, 7, 1),
                     data_end=date(2018, 7, 31))
        for name, version, family, active, wape in [
            ("seasonal_bread", 2, "lightgbm", True, 0.203),
            ("seasonal_bread", 1, "mstl", False, 0.214),
            ("confectionery", 1, "ensemble", True, 0.198)]]
    buffer = io.StringIO()

    render.model_versions(Console(file=buffer, width=100, color_system=None), versions)

    rows = [line for line in buffer.getvalue().splitlines() if line.startswith("│")]
    assert len(rows) == 3  # nothing wrapped onto a second line
    for row, (name, version, wape) in zip(rows, [("seasonal_bread", "2 *", "0.203"),
                                                 ("seasonal_bread", "1", "0.214"),
                                                 ("confectionery", "1 *", "0.198")],
                                          strict=True):
        cells = [cell.strip() for cell in row.strip("│").split("│")]
        assert cells[:2] == [name, version]
        assert wape in cells
        assert "2018-07-31" in cells
    assert "* active version" in buffer.getvalue()


def test_refusals_are_grouped_by_reason_in_first_seen_order() -> None:
    def refused(product: str, error: str | None) -> ProductForecast:
        return ProductForecast(product=product, version=1, family="lightgbm", frame=None,
                               error=error)

    grouped = refusals_by_reason([refused("rolls", "weather ends"), refused("cake", None),
                                  refused("bread", "checksum"), refused("buns", "weather ends")])

    assert grouped == {"weather ends": ["rolls", "buns"], "checksum": ["bread"]}
    assert list(grouped) == ["weather ends", "checksum"]
