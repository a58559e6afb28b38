"""What the CLI prints (cli/render.py): forecasts, refusals, model versions."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import date

import numpy as np
import pandas as pd
from rich.console import Console

from ovencast.cli import render
from ovencast.db.tables import ModelVersion
from ovencast.forecasts.service import (
    COLUMNS,
    ProductForecast,
    TenantForecast,
    refusals_by_reason,
)


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

    render.forecasts(out, err, TenantForecast(tenant="t", dates=pd.date_range(
        "2023-11-01", periods=2), results=results), "csv")

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
    # Beaten by more than the margin but in too few windows (PREFER_WINDOW_SHARE).
    details["selection"]["kept_preferred"] |= {"windows_won": [3, 7], "window_share": 0.5}
    assert render.leaderboard_top(details).endswith(
        "(lightgbm kept over croston .201: needs more than 10% better and most windows; "
        "better in 3 of 7)")
    plain = {"selection": {"basis": "backtest", "chosen": "croston"},
             "leaderboard": [{"family": "croston", "wape": 0.1, "chosen": True},
                             {"family": "lightgbm", "wape": 0.2}]}
    assert render.leaderboard_top(plain) == "*croston .100, lightgbm .200"


def test_the_leaderboard_line_says_when_a_candidate_ran_on_fewer_windows() -> None:
    # The blend partner is backtested on 3 of the 7 windows (selection.partner_windows).
    details = {"selection": {"basis": "backtest", "chosen": "ensemble(lightgbm+p)"},
               "leaderboard": [
                   {"family": "ensemble(lightgbm+p)", "wape": 0.183, "chosen": True},
                   {"family": "p", "wape": 0.189, "windows": [0.2, 0.18, 0.19]},
                   {"family": "lightgbm", "wape": 0.2, "windows": [0.2] * 7}]}
    assert render.leaderboard_top(details) == (
        "*ensemble(lightgbm+p) .183, p .189 (3 of 7 windows), lightgbm .200")


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


def test_model_versions_show_the_days_their_holdout_scored() -> None:
    """A short history's version scored fewer than 28 days; one trained before the days
    were recorded says it does not know."""
    versions = [
        ModelVersion(product=name, version=1, family="lightgbm", is_active=True, params={},
                     metrics={"wape": 0.2}, baseline_metrics={}, details=details,
                     sha256="ab" * 32, data_start=date(2024, 1, 1),
                     data_end=date(2024, 3, 30))
        for name, details in [("rolls", {"holdout": {"days": 28}}),
                              ("new_cake", {"holdout": {"days": 16}}), ("older", {})]]
    console, buffer = _console()

    render.model_versions(console, versions)

    header = next(line for line in buffer.getvalue().splitlines() if "naive" in line)
    cells = [cell.strip() for cell in header.strip("│┃").split("┃")]
    column = cells.index("held")
    held = {}
    for line in buffer.getvalue().splitlines():
        row = [cell.strip() for cell in line.strip("│").split("│")]
        if len(row) == len(cells) and row[0] in ("rolls", "new_cake", "older"):
            held[row[0]] = row[column]
    assert held == {"rolls": "28", "new_cake": "16", "older": "-"}
    assert "28, fewer for a short history" in buffer.getvalue()


def test_refusals_are_grouped_by_reason_in_first_seen_order() -> None:
    def refused(product: str, error: str | None) -> ProductForecast:
        return ProductForecast(product=product, version=1, family="lightgbm", frame=None,
                               error=error)

    grouped = refusals_by_reason([refused("rolls", "weather ends"), refused("cake", None),
                                  refused("bread", "checksum"), refused("buns", "weather ends")])

    assert grouped == {"weather ends": ["rolls", "buns"], "checksum": ["bread"]}
    assert list(grouped) == ["weather ends", "checksum"]


def _forecast(products: list[str], days: int) -> TenantForecast:
    dates = pd.date_range("2023-11-01", periods=days)
    rng = np.random.default_rng(3)
    results = []
    for index, product in enumerate(products):
        yhat = rng.uniform(0, 2000, days)
        closed = np.arange(days) % 7 == 6
        yhat[closed] = 0.0
        frame = pd.DataFrame({
            "date": dates.date, "weekday": dates.day_name(), "product": product,
            "forecast": yhat, "p10": yhat * 0.7, "p50": yhat, "p90": yhat * 1.4,
            "model": "ensemble(lightgbm+tsb)", "version": index + 1,
            "note": ["closed" if c else "fallback: temperature_c" for c in closed],
            "closed": closed, "off_season": False,
            "fallback": ["" if c else "temperature_c" for c in closed]})
        results.append(ProductForecast(product, index + 1, "ensemble", frame))
    return TenantForecast(tenant="t", dates=dates, results=results)


def test_a_forecast_table_of_24_products_cuts_no_cell_at_100_columns() -> None:
    products = [f"item_{n}" if n % 5 else f"sourdough_rye_{n}" for n in range(24)]
    forecast = _forecast(products, 14)
    out_buffer = io.StringIO()
    out = Console(file=out_buffer, width=100, color_system=None)
    err, _ = _console()

    render.forecasts(out, err, forecast, "table")

    text = out_buffer.getvalue()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    frame = forecast.forecast
    # Every product and every date is shown whole, every cell's number complete.
    for product in products:
        assert sum(line.startswith(f"│ {product} ") for line in lines) >= 2  # 2+ pages
    for day in frame["date"]:
        assert day.isoformat() in text
    for row in frame.itertuples():
        expected = "closed" if row.closed else f"{row.forecast:.0f}*"
        assert expected in text
    assert "…" not in text


def test_csv_and_json_carry_weekday_model_version_and_note() -> None:
    forecast = _forecast(["bread"], 7)
    out, _ = _console()
    err, _ = _console()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        render.forecasts(out, err, forecast, "csv")
    frame = pd.read_csv(io.StringIO(buffer.getvalue()), keep_default_na=False)
    assert list(frame.columns) == list(COLUMNS)
    assert list(frame["weekday"][:2]) == ["Wednesday", "Thursday"]
    assert list(frame["note"][5:7]) == ["fallback: temperature_c", "closed"]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        render.forecasts(out, err, forecast, "json")
    rows = json.loads(buffer.getvalue())
    assert rows[6]["note"] == "closed"
    assert rows[6]["forecast"] == 0.0
    assert rows[0]["model"] == "ensemble(lightgbm+tsb)"
    assert rows[0]["version"] == 1


def test_a_product_name_a_spreadsheet_would_run_is_written_as_text() -> None:
    forecast = _forecast(['=HYPERLINK("http://evil.example","x")', "bread"], 2)
    out, _ = _console()
    err, _ = _console()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        render.forecasts(out, err, forecast, "csv")
    frame = pd.read_csv(io.StringIO(buffer.getvalue()), keep_default_na=False)
    assert set(frame["product"]) == {"'=HYPERLINK(\"http://evil.example\",\"x\")", "bread"}
    assert not any(line.startswith(("=", ",=")) for line in buffer.getvalue().splitlines())


def test_the_global_model_line_counts_the_cutoffs_that_adopt_an_earlier_booster() -> None:
    record = {"family": "lightgbm", "products": 6, "seconds": 4.25,
              "cutoffs": ["2018-06-05", "2018-07-03"]}
    for adopted, said in ((0, "2 boosters (one per training cut-off) in 4.2 s"),
                          (1, "2 boosters (one per training cut-off; 1 more cut-off adopts "
                              "an earlier one) in 4.2 s"),
                          (3, "3 more cut-offs adopt an earlier one")):
        console, buffer = _console()
        render.global_models(console, {**record, "adopted_cutoffs": adopted})
        assert "global model: lightgbm for 6 products, " in buffer.getvalue()
        assert said in buffer.getvalue()
