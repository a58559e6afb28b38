"""`ovencast demo`: what `make demo` runs. Fresh home, bundled Kiel data, train, report,
plot. Every step goes through the same services as the individual commands."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ovencast.cli.render import TrainingView, fmt, training_result
from ovencast.datasets import service as datasets_service
from ovencast.datasets.reader import read_dataset_dir
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.forecasts import service as forecasts_service
from ovencast.forecasts.plot import plot_forecast
from ovencast.forecasts.service import TenantForecast, refusals_by_reason
from ovencast.models import repository as models_repository
from ovencast.settings import Settings
from ovencast.tenants import service as tenants_service
from ovencast.training.embedded import train_tenant

BUNDLED_KIEL = Path(__file__).resolve().parents[1] / "demo_data" / "kiel"
DEMO_TENANT = "kiel-demo"
FORECAST_DAYS = 14


def run_demo(console: Console, settings: Settings, *, dataset: Path | None,
             models: list[str] | None, plot_path: Path, preload: Sequence[str] = ()
             ) -> None:
    """`preload`: the entry point's module, for the training pool (training/pool.py)."""

    # The demo owns a sub-directory of OVENCAST_HOME and starts it empty every time.
    home = settings.ovencast_home / "demo"
    if home.exists():
        shutil.rmtree(home)
    settings = settings.model_copy(update={"ovencast_home": home, "database_url": None,
                                           "model_storage_path": None})
    source = dataset or BUNDLED_KIEL
    started = time.monotonic()
    console.rule("ovencast demo")
    console.print(f"home: {home}\ndataset: {source}")

    parsed = read_dataset_dir(source)
    summary = asyncio.run(_import(settings, parsed, str(source)))
    console.print(f"imported {summary.sales_rows} sales rows, {summary.products} products, "
                  f"{summary.first_date} to {summary.last_date}; regressors: "
                  f"{', '.join(summary.regressor_columns)}")
    with TrainingView(console) as view:
        trained = train_tenant(settings, DEMO_TENANT, models=models, observer=view,
                               preload=preload)
    training_result(console, trained.job, trained.runs)
    job = trained.job
    versions, forecast = asyncio.run(_results(settings))

    table = Table(title="Holdout accuracy: last 28 days of each product's data",
                  title_justify="left")
    for column in ("product", "class", "model", "WAPE", "MASE", "seasonal naive WAPE",
                   "better than naive"):
        table.add_column(column, justify="left" if column in ("product", "class", "model")
                         else "right")
    labels = {}
    for v in versions:
        wape, naive = v.metrics.get("wape"), v.baseline_metrics.get("wape")
        better = "-" if wape is None or naive is None else (
            f"{(1 - wape / naive) * 100:.0f} %" if naive else "-")
        # What selection chose, e.g. "ensemble(mstl_weekly+prophet_holidays)".
        model = (v.details.get("selection") or {}).get("chosen") or v.family
        table.add_row(v.product, str(v.details.get("product_class", "-")), model,
                      fmt(wape), fmt(v.metrics.get("mase")), fmt(naive), better)
        if wape is not None:
            labels[v.product] = f"typically off by {wape * 100:.0f} %"
    console.print(table)
    _say_what_was_not_forecast(console, forecast)
    plot = plot_forecast(forecast, plot_path, title=f"{DEMO_TENANT}: what to expect",
                         labels=labels)
    # soft_wrap: paths and the command stay whole for copying, however narrow the terminal.
    console.print(f"plot: {plot.resolve()}", soft_wrap=True)
    console.print(f"job {job.id}: {job.status} in {time.monotonic() - started:.0f} s. "
                  f"Try: OVENCAST_HOME={home} {_command()} models --tenant {DEMO_TENANT}",
                  soft_wrap=True)


def _command() -> str:
    """How to call ovencast from the user's shell: `ovencast` where it is on the PATH (an
    activated virtualenv), else the console script beside this interpreter
    (`.venv/bin/ovencast` after `make demo`)."""
    if shutil.which("ovencast"):
        return "ovencast"
    script = Path(sys.executable).parent / "ovencast"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


async def _import(settings: Settings, parsed: object, source: str
                  ) -> datasets_service.ImportSummary:
    database = Database.open(settings)
    try:
        await database.ready()
        async with unit_of_work(database.sessions) as session:
            tenant = await tenants_service.ensure_tenant(
                session, DEMO_TENANT, country="DE", subdivision="SH",
                time_zone="Europe/Berlin")
            return await datasets_service.import_dataset(
                session, tenant, parsed, source=source)  # type: ignore[arg-type]
    finally:
        await database.close()


async def _results(settings: Settings) -> tuple[list[Any], TenantForecast]:
    database = Database.open(settings)
    try:
        async with unit_of_work(database.sessions) as session:
            tenant = await tenants_service.get_tenant(session, DEMO_TENANT)
            versions = list(await models_repository.list_active(session, tenant.id))
            forecast = await forecasts_service.forecast_tenant(
                session, tenant, settings=settings, days=FORECAST_DAYS, with_history=True)
    finally:
        await database.close()
    return versions, forecast


def _say_what_was_not_forecast(console: Console, forecast: TenantForecast) -> None:
    """The products the plot leaves out, and the inputs it had to fill in."""
    for error, products in refusals_by_reason(forecast.results).items():
        console.print(f"[bold red]not forecast:[/] {', '.join(products)}: {error}",
                      highlight=False, soft_wrap=True)
    for note in forecast.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    first, last = forecast.dates[0].date(), forecast.dates[-1].date()
    console.print(f"forecast {first} to {last} for "
                  f"{sum(r.frame is not None for r in forecast.results)} of "
                  f"{len(forecast.results)} trained products", highlight=False)
