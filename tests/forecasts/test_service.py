"""Forecasting the days ahead (forecasts/service.py) on a real database: one window for
the tenant, supplied future regressors used, missing ones filled in and said so."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from conftest import import_directory, train_in_process
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.errors import InvalidRequest
from ovencast.forecasts import plot
from ovencast.forecasts.service import TenantForecast, forecast_tenant
from ovencast.sources.database import DatabaseSource
from ovencast.tenants import service as tenants_service

START = date(2024, 1, 1)
DAYS = 240


def _weather_driven(directory: Path, *, ahead: list[float] | None = None) -> Path:
    """Two products whose sales follow the temperature closely; `ahead`: temperatures
    supplied for the days after the last sale."""
    rng = np.random.default_rng(5)
    days = [START + timedelta(days=i) for i in range(DAYS)]
    temperature = 12 + 10 * np.sin(np.arange(DAYS) / 9.0) + rng.normal(0, 1, DAYS)
    directory.mkdir(parents=True, exist_ok=True)
    sales = ["date,product,quantity"]
    for product, factor in (("ice_cream_bun", 6.0), ("bread", 1.0)):
        for day, temp in zip(days, temperature, strict=True):
            sales.append(f"{day},{product},{max(0.0, 20 + factor * temp + rng.normal(0, 2)):.1f}")
    (directory / "sales.csv").write_text("\n".join(sales) + "\n", encoding="utf-8")
    weather = ["date,temperature_c"] + [f"{d},{t:.2f}" for d, t in
                                        zip(days, temperature, strict=True)]
    for offset, temp in enumerate(ahead or []):
        weather.append(f"{days[-1] + timedelta(days=offset + 1)},{temp:.2f}")
    (directory / "weather.csv").write_text("\n".join(weather) + "\n", encoding="utf-8")
    return directory


async def _forecast(database: Database, tenant: str, **options: object) -> TenantForecast:
    async with unit_of_work(database.sessions) as session:
        row = await tenants_service.get_tenant(session, tenant)
        return await forecast_tenant(session, row, settings=database.settings, **options)


async def test_supplied_future_temperatures_change_a_weather_driven_forecast(
        database: Database, tmp_path: Path) -> None:
    await import_directory(database, "cold", _weather_driven(tmp_path / "cold",
                                                             ahead=[0.0] * 7))
    await import_directory(database, "warm", _weather_driven(tmp_path / "warm",
                                                             ahead=[25.0] * 7))
    for tenant in ("cold", "warm"):
        result = await train_in_process(database, tenant, models=("lightgbm",))
        assert result.job.status == "succeeded", result.job.error

    cold = await _forecast(database, "cold", days=7)
    warm = await _forecast(database, "warm", days=7)

    first = START + timedelta(days=DAYS)
    for forecast in (cold, warm):
        assert forecast.dates[0].date() == first  # the day after the last sale
        assert not forecast.refused
        assert forecast.fallbacks == []  # every value supplied
        assert (forecast.forecast["note"] == "").all()
    bun = {name: f.forecast.loc[f.forecast["product"] == "ice_cream_bun", "forecast"].mean()
           for name, f in (("cold", cold), ("warm", warm))}
    assert bun["warm"] > 1.5 * bun["cold"], bun


async def test_unsupplied_days_are_filled_in_every_product_gets_the_same_dates(
        database: Database, tmp_path: Path) -> None:
    directory = _weather_driven(tmp_path / "data", ahead=[5.0, 6.0])
    await import_directory(database, "t", directory)
    await train_in_process(database, "t", models=("lightgbm",), products=["bread"])
    # A product whose history ends earlier is forecast on the tenant's dates all the same.
    await import_directory(database, "t", _shorter(directory, "ice_cream_bun", 30))
    await train_in_process(database, "t", models=("lightgbm",), products=["ice_cream_bun"])

    forecast = await _forecast(database, "t", days=14, with_history=True)

    frame = forecast.forecast
    assert not forecast.refused
    for _, rows in frame.groupby("product"):
        assert list(rows["date"]) == [d.date() for d in forecast.dates]
    first = START + timedelta(days=DAYS)
    assert forecast.dates[0].date() == first
    bread = frame.loc[frame["product"] == "bread"]
    assert list(bread["fallback"][:2]) == ["", ""]  # the two supplied days
    assert set(bread["fallback"][2:]) == {"temperature_c"}
    assert set(bread["note"][2:]) == {"fallback: temperature_c"}
    # Less than a year of weather: no climatology yet, the recent mean stands in.
    assert forecast.fallbacks == [{"regressor": "temperature_c", "source": "recent_mean",
                                   "dates": [f"{first + timedelta(days=2)}.."
                                             f"{first + timedelta(days=13)}"]}]
    assert any("temperature_c" in note for note in forecast.notes)
    assert forecast.history is not None
    assert forecast.history["date"].max() < forecast.dates[0]

    # The plot: one panel per product, all on the same dates, y from 0.
    figure = plot.draw_forecast(forecast, title="t", labels={"bread": "typically off by 9 %"})
    try:
        panels = [ax for ax in figure.axes if ax.get_visible()]
        assert len(panels) == 2
        assert len({ax.get_xlim() for ax in panels}) == 1
        assert all(ax.get_ylim()[0] == 0 for ax in panels)
        assert panels[0].get_title(loc="left").endswith("(typically off by 9 %)")
    finally:
        plt.close(figure)


def _shorter(directory: Path, product: str, days: int) -> Path:
    """Sales of `product` without its last `days` days (a product that stopped)."""
    sales = pd.read_csv(directory / "sales.csv")
    cut = pd.to_datetime(sales["date"]).max() - pd.Timedelta(days=days)
    keep = (sales["product"] != product) | (pd.to_datetime(sales["date"]) <= cut)
    out = directory.parent / "shorter"
    out.mkdir()
    sales.loc[keep].to_csv(out / "sales.csv", index=False)
    return out


async def test_a_start_far_past_the_data_is_refused_with_a_reason(
        database: Database, tiny_dataset: Callable[..., Path]) -> None:
    await import_directory(database, "t", tiny_dataset(("bread",)))
    await train_in_process(database, "t")
    with pytest.raises(InvalidRequest, match="at most 366 days after the last sales date"):
        await _forecast(database, "t", days=7, start=date(2300, 1, 1))


@pytest.mark.parametrize("family", ["seasonal_naive", "lightgbm"])
async def test_days_inside_the_training_data_are_refused_by_every_family(
        family: str, database: Database, tiny_dataset: Callable[..., Path]) -> None:
    """Seasonal naive (or Prophet) could answer in-sample days, LightGBM cannot: the
    service holds every version to the days after its training data, with one reason."""
    await import_directory(database, "t", tiny_dataset(("bread",)))
    trained = await train_in_process(database, "t", models=(family,))
    assert trained.job.status == "succeeded", trained.job.error
    async with unit_of_work(database.sessions) as session:
        row = await tenants_service.get_tenant(session, "t")
        last = await DatabaseSource(session).last_sales_date(row.name)
    assert last is not None

    inside = await _forecast(database, "t", days=7, start=last - timedelta(days=3))
    assert [r.product for r in inside.refused] == ["bread"]
    assert inside.refused[0].error == (
        f"its model forecasts the days after its training data, which ends "
        f"{last.isoformat()}; asked from {(last - timedelta(days=3)).isoformat()}")
    after = await _forecast(database, "t", days=7, start=last + timedelta(days=1))
    assert not after.refused
    assert len(after.forecast) == 7


async def test_days_of_the_week_a_product_is_not_sold_on_are_forecast_0(
        database: Database, tmp_path: Path) -> None:
    """A shop closed on Sundays with no calendar saying so, and a cake baked for
    Saturdays only: no row on those days, so no model ever saw them, and each model
    forecast them like any other day (the cake's Saturday figure all week). Forecast 0
    there, with a band of 0 and the reason."""
    rng = np.random.default_rng(3)
    lines = ["date,product,quantity"]
    for offset in range(280):  # 40 Saturdays: over the 30 data points a product needs
        day = START + timedelta(days=offset)
        if day.weekday() != 6:
            lines.append(f"{day},bread,{30 + rng.integers(0, 10)}")
        if day.weekday() == 5:
            lines.append(f"{day},saturday_cake,{20 + rng.integers(0, 6)}")
    directory = tmp_path / "weekly"
    directory.mkdir()
    (directory / "sales.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    await import_directory(database, "t", directory)
    trained = await train_in_process(database, "t")
    assert trained.job.status == "succeeded", trained.job.error

    forecast = await _forecast(database, "t", days=14)

    assert not forecast.refused
    frame = forecast.forecast
    weekday = pd.to_datetime(frame["date"]).dt.dayofweek
    cake, bread = frame["product"] == "saturday_cake", frame["product"] == "bread"
    off = (cake & (weekday != 5)) | (bread & (weekday == 6))
    assert (frame.loc[off, ["forecast", "p10", "p90"]] == 0).all().all()
    assert set(frame.loc[off, "note"]) == {"not sold on this weekday"}
    assert frame.loc[off, "off_season"].all()
    assert (frame.loc[~off, "forecast"] > 0).all()
    assert (frame.loc[~off, "note"] == "").all()
    notes = [note for result in forecast.results for note in result.notes]
    assert "bread: forecast 0 on Sundays: not sold on them in the last 8 weeks of its " \
           "data" in notes
    assert any(note.startswith("saturday_cake: forecast 0 on Mondays, Tuesdays, "
                               "Wednesdays, Thursdays, Fridays, Sundays") for note in notes)


async def test_a_date_without_sales_every_year_is_forecast_0(
        database: Database, tmp_path: Path) -> None:
    """Closed on 25 and 26 December and on Good Friday every year, and no calendar says
    so: no model saw those days, so each forecast them like any other. Forecast 0, with
    the reason."""
    good_fridays = {date(2021, 4, 2), date(2022, 4, 15), date(2023, 4, 7)}
    lines = ["date,product,quantity"]
    for offset in range(3 * 365 + 30):
        day = date(2021, 1, 1) + timedelta(days=offset)
        if (day.month, day.day) not in ((12, 25), (12, 26)) and day not in good_fridays:
            lines.append(f"{day},bread,{30 + offset % 7}")
    directory = tmp_path / "christmas"
    directory.mkdir()
    (directory / "sales.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    await import_directory(database, "t", directory, country="DE", subdivision="SH")
    trained = await train_in_process(database, "t", models=("seasonal_naive",))
    assert trained.job.status == "succeeded", trained.job.error

    forecast = await _forecast(database, "t", days=7, start=date(2024, 12, 23))

    frame = forecast.forecast.set_index("date")
    shut = [date(2024, 12, 25), date(2024, 12, 26)]
    assert (frame.loc[shut, ["forecast", "p10", "p90"]] == 0).all().all()
    assert set(frame.loc[shut, "note"]) == {"no sales on this date in past years"}
    assert (frame.drop(index=shut)["forecast"] > 0).all()
    notes = [note for result in forecast.results for note in result.notes]
    assert "bread: forecast 0 on 2024-12-25..2024-12-26: no sales on these dates in any " \
           "of 3+ years of its data (closed every year?)" in notes

    easter = await _forecast(database, "t", days=5, start=date(2024, 3, 27))
    frame = easter.forecast.set_index("date")
    assert frame.loc[date(2024, 3, 29), "forecast"] == 0  # Good Friday 2024
    assert frame.loc[date(2024, 3, 29), "note"] == "no sales on this date in past years"
    assert (frame.drop(index=[date(2024, 3, 29)])["forecast"] > 0).all()
    assert "bread: forecast 0 on 2024-03-29: no sales on Good Friday in any of 3+ years " \
           "of its data (closed every year?)" in [n for r in easter.results for n in r.notes]


async def test_a_forecast_from_old_data_says_so(database: Database,
                                                 tiny_dataset: Callable[..., Path]) -> None:
    """A product whose rows stopped 40 days before the tenant's is still forecast (its
    recent rows may only be missing from the import), with a note saying how old its
    data is; the job's validation warned of it too."""
    directory = tiny_dataset(("bread",), days=120)
    sales = directory / "sales.csv"
    sales.write_text(sales.read_text(encoding="utf-8") + "".join(
        f"{date(2024, 1, 1) + timedelta(days=d)},old_roll,{15 + d % 7}\n" for d in range(80)),
        encoding="utf-8")
    await import_directory(database, "t", directory)
    trained = await train_in_process(database, "t")
    assert trained.job.status == "succeeded", trained.job.error
    assert any("old_roll: no sales row for 40 days" in w for w in trained.job.warnings or [])

    forecast = await _forecast(database, "t", days=7)

    notes = [note for result in forecast.results for note in result.notes]
    stale = [note for note in notes if "a forecast from old data" in note]
    assert len(stale) == 1
    assert stale[0].startswith("old_roll: its sales data ends ")
    assert " 40 days before the tenant's (2024-04-29)" in stale[0]
    assert not forecast.refused


async def test_a_product_sold_in_units_is_forecast_as_a_count(
        database: Database, tmp_path: Path) -> None:
    """A slow seller counted in units gets a count's median (decision 030) and a band of
    whole units (031): whole numbers, mostly 0 at well under one a day; turnover in EUR
    keeps the model's mean."""
    rng = np.random.default_rng(8)
    days = [START + timedelta(days=i) for i in range(DAYS)]
    rate = np.tile([0.3, 0.3, 0.4, 0.5, 0.8, 1.6, 0.2], DAYS // 7 + 1)[:DAYS]
    rows = ["date,product,quantity"]
    rows += [f"{d},pretzel,{n}" for d, n in zip(days, rng.poisson(rate), strict=True)]
    rows += [f"{d},cake,{v:.2f}" for d, v in zip(days, 40 * rate + rng.gamma(4.0, 2.0, DAYS),
                                                  strict=True)]
    directory = tmp_path / "units"
    directory.mkdir()
    (directory / "sales.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    await import_directory(database, "units", directory)
    result = await train_in_process(database, "units", models=("lightgbm",))
    assert result.job.status == "succeeded", result.job.error

    frame = (await _forecast(database, "units", days=14)).forecast
    assert (frame["forecast"] == frame["p50"]).all()
    assert (frame["p10"] <= frame["forecast"]).all()
    assert (frame["forecast"] <= frame["p90"]).all()
    pretzel = frame.loc[frame["product"] == "pretzel", "forecast"].to_numpy()
    cake = frame.loc[frame["product"] == "cake", "forecast"].to_numpy()
    assert (pretzel == np.round(pretzel)).all()
    band = frame.loc[frame["product"] == "pretzel", ["p10", "p90"]].to_numpy()
    assert (band == np.round(band)).all(), band  # whole units too (decision 031)
    assert (band[:, 1] >= 1).any(), band
    assert (pretzel == 0).sum() >= 7, pretzel  # the weekdays that sell under ln 2 a day
    assert (pretzel > 0).any(), pretzel
    assert (cake != np.round(cake)).any(), cake
