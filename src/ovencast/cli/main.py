"""`ovencast` commands. Each parses its options, opens a unit of work, calls a service and
renders the result; an `OvencastError` becomes one line on stderr and exit code 1.

Each command imports the services it calls when it runs, not when this module loads, so
that `--help` and the light commands start fast (docs/decisions/005-worker-start-up.md).
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from ovencast.datasets.history import ImportMode
from ovencast.errors import InvalidRequest, NotFound, OvencastError
from ovencast.keys.roles import Role
from ovencast.models.states import ActivationPolicy
from ovencast.observability.logs import configure_logging, flush_before_signal_exit
from ovencast.settings import Settings, get_settings

if TYPE_CHECKING:
    from ovencast.datasets.service import ImportSummary
    from ovencast.db.runtime import Database
    from ovencast.forecast_runs.service import SavedRun
    from ovencast.forecasts.service import TenantForecast
    from ovencast.keys.service import IssuedKey, KeyListing, Revocation

# Markdown: a docstring's first paragraph is one line in the command list (rich mode
# keeps the docstring's line breaks there).
app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode="markdown",
                  help="Train and serve bakery demand forecasts.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema (Alembic).")
app.add_typer(db_app, name="db")
keys_app = typer.Typer(no_args_is_help=True, help="API keys of the HTTP API (service "
                       "shape). The command line itself needs no key.")
app.add_typer(keys_app, name="keys")
imports_app = typer.Typer(help="Import history: what each import changed; undo one.")
app.add_typer(imports_app, name="imports")

# Wide enough for the tables when output goes to a pipe or a CI log (rich uses 80 there).
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 140)
err_console = Console(stderr=True,
                      width=None if sys.stderr.isatty() or "COLUMNS" in os.environ else 140)

P = ParamSpec("P")
R = TypeVar("R")


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def settings_for_cli() -> Settings:
    settings = get_settings()
    configure_logging(level=settings.log_level,
                      log_file=settings.ovencast_home / "logs" / "ovencast.log",
                      stderr_level="WARNING")
    return settings


def clean_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Expected failures are one clear line and exit code 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except OvencastError as exc:
            err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False)
            raise typer.Exit(code=1) from None

    return wrapper


# The module the `ovencast` command runs from: the pool's fork server imports it once
# (training/pool.py), so that its worker processes do not each import it again.
ENTRY_MODULE = __name__


def with_database(body: Callable[[Database], Awaitable[R]], settings: Settings | None = None
                  ) -> R:
    from ovencast.db.runtime import run_with_database

    return run_with_database(settings or settings_for_cli(), body)


def parse_products(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [p.strip() for p in value.split(",") if p.strip()]


# --------------------------------------------------------------------------------- db
@db_app.command("upgrade")
@clean_errors
def db_upgrade() -> None:
    """Create or migrate the schema to the newest revision."""
    from ovencast.db import migrate

    settings = settings_for_cli()
    migrate.upgrade(settings.resolved_database_url)
    console.print(f"schema at revision {migrate.head_revision()}")


@db_app.command("check")
@clean_errors
def db_check() -> None:
    """Exit 0 when the schema is at the expected revision and the model store is reachable
    and writable; otherwise say what to do."""
    from ovencast.db import migrate
    from ovencast.db.runtime import Database
    from ovencast.errors import Unavailable
    from ovencast.store import store_for
    from ovencast.store.probe import check_store

    settings = settings_for_cli()

    async def main() -> str:
        database = Database.open(settings)
        try:
            return await migrate.check_schema(database.engine)
        finally:
            await database.close()

    console.print(f"schema current at revision {asyncio.run(main())}")
    store = check_store(store_for(settings))
    if not store.ok:
        raise Unavailable(f"model store {store.uri} is not writable: {store.detail}")
    console.print(f"model store {store.uri} reachable and writable")


# ------------------------------------------------------------------------------- keys
@keys_app.command("create")
@clean_errors
def keys_create(
    role: Annotated[Role, typer.Option(help="read: GET only; train: also upload datasets, "
                                       "submit/cancel jobs, activate versions; admin: all "
                                       "that, and with --admin register tenants")],
    tenant: Annotated[str | None, typer.Option(help="the one tenant the key reaches")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="a key without tenant: reaches "
                                        "every tenant")] = False,
    name: Annotated[str | None, typer.Option(help="what the key is for (listings)")] = None,
) -> None:
    """Create an API key and print it (stdout) once: only its hash is stored."""
    from ovencast.db.session import unit_of_work
    from ovencast.keys import service as keys_service

    if bool(tenant) == admin:
        raise typer.BadParameter("give either --tenant T or --admin",
                                 param_hint="--tenant / --admin")

    async def body(database: Database) -> IssuedKey:
        async with unit_of_work(database.sessions) as session:
            return await keys_service.create_key(session, tenant=tenant, role=role,
                                                 name=name)

    issued = with_database(body)
    scope = f"tenant {issued.tenant!r}" if issued.tenant else "every tenant (global)"
    err_console.print(f"API key {issued.row.id} created: {scope}, role {issued.row.role}. "
                      "It is shown only this once and cannot be shown again: store it "
                      "now (a secret store, not a file in a repository).", highlight=False)
    typer.echo(issued.key)


@keys_app.command("list")
@clean_errors
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="only this tenant's keys")] = None,
) -> None:
    """List API keys (never their secrets), revoked ones included."""
    from ovencast.cli import render
    from ovencast.db.session import unit_of_work
    from ovencast.keys import service as keys_service

    async def body(database: Database) -> list[KeyListing]:
        async with unit_of_work(database.sessions) as session:
            return await keys_service.list_keys(session, tenant=tenant)

    render.api_keys(console, with_database(body))


@keys_app.command("revoke")
@clean_errors
def keys_revoke(
    key_id: Annotated[int, typer.Option("--id", help="the key's id (`ovencast keys list`)")],
) -> None:
    """Revoke an API key: from now on it is refused (401)."""
    from ovencast.db.session import unit_of_work
    from ovencast.keys import service as keys_service

    async def body(database: Database) -> Revocation:
        async with unit_of_work(database.sessions) as session:
            return await keys_service.revoke_key(session, key_id)

    revocation = with_database(body)
    revoked_at = f"{revocation.row.revoked_at:%Y-%m-%d %H:%M} UTC"
    console.print(f"API key {key_id} was already revoked ({revoked_at})" if revocation.already
                  else f"API key {key_id} revoked ({revoked_at})", highlight=False)


# ----------------------------------------------------------------------------- import
@app.command("import")
@clean_errors
def import_(
    directory: Annotated[Path, typer.Argument(help="dataset directory: sales.csv and "
                                              "optionally weather/traffic/calendar.csv")],
    tenant: Annotated[str, typer.Option(help="tenant name (created on first import)")],
    country: Annotated[str | None, typer.Option(help="ISO country for holidays, e.g. DE")] = None,
    subdivision: Annotated[str | None, typer.Option(help="subdivision, e.g. SH")] = None,
    time_zone: Annotated[str | None, typer.Option(help="IANA zone, default Europe/Berlin")
                         ] = None,
    mode: Annotated[ImportMode, typer.Option(
        help="merge: insert or update the file's rows, nothing else changes; replace: the "
             "history of each product (and regressor column) in the files becomes exactly "
             "the files' rows")] = ImportMode.MERGE,
) -> None:
    """Import a dataset directory. All or nothing: a bad row rejects the whole import.
    What it changes is kept in the import history (`ovencast imports`)."""
    from ovencast.datasets import service as datasets_service
    from ovencast.datasets.reader import DataLimits, read_dataset_dir
    from ovencast.db.session import unit_of_work
    from ovencast.tenants import service as tenants_service

    settings = settings_for_cli()
    dataset = read_dataset_dir(directory, limits=DataLimits.from_settings(settings))

    async def body(database: Database) -> ImportSummary:
        async with unit_of_work(database.sessions) as session:
            row = await tenants_service.ensure_tenant(
                session, tenant, country=country, subdivision=subdivision, time_zone=time_zone)
            return await datasets_service.import_dataset(session, row, dataset,
                                                         source=str(directory.resolve()),
                                                         mode=mode)

    summary = with_database(body, settings)
    console.print(f"imported {summary.sales_rows} sales rows of {summary.products} products "
                  f"({summary.first_date} to {summary.last_date}) for tenant "
                  f"{summary.tenant!r}; regressors: {', '.join(summary.regressor_columns) or '-'}"
                  f"; import {summary.import_id} ({summary.mode}): sales "
                  f"+{summary.sales.added} ~{summary.sales.changed} -{summary.sales.removed}, "
                  f"regressor values +{summary.regressors.added} ~{summary.regressors.changed} "
                  f"-{summary.regressors.removed}", highlight=False)
    for warning in summary.warnings:  # a replace removed rows a model was trained on
        err_console.print(f"warning: {warning}", highlight=False, soft_wrap=True)


@imports_app.callback(invoke_without_command=True)
@clean_errors
def imports(
    context: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="the tenant whose imports to list")
                      ] = None,
    limit: Annotated[int, typer.Option(min=1, help="how many recent imports")] = 20,
) -> None:
    """A tenant's imports, newest first: mode and the rows each added, changed and
    removed (the values before are kept: `ovencast imports restore` undoes one)."""
    if context.invoked_subcommand is not None:
        return
    if tenant is None:
        raise typer.BadParameter("--tenant is required to list imports", param_hint="--tenant")
    from ovencast.cli import render
    from ovencast.datasets import service as datasets_service
    from ovencast.db.session import unit_of_work
    from ovencast.tenants import service as tenants_service

    async def body(database: Database) -> Any:
        async with unit_of_work(database.sessions) as session:
            row = await tenants_service.get_tenant(session, tenant)
            return await datasets_service.list_imports(session, row, limit=limit)

    render.dataset_imports(console, tenant, with_database(body))


@imports_app.command("restore")
@clean_errors
def imports_restore(
    tenant: Annotated[str, typer.Option(help="the tenant of the import")],
    import_id: Annotated[int, typer.Option("--id", min=1, help="the import to undo")],
) -> None:
    """Undo an import: the rows it changed or removed get their values before back, the
    rows it added are deleted (rows changed again since are set back too). The restore
    is recorded as an import of its own, so it can be undone in turn."""
    from ovencast.datasets import service as datasets_service
    from ovencast.db.session import unit_of_work
    from ovencast.tenants import service as tenants_service

    async def body(database: Database) -> Any:
        async with unit_of_work(database.sessions) as session:
            row = await tenants_service.get_tenant(session, tenant)
            record = await datasets_service.restore_import(session, row, import_id)
            return record, await datasets_service.removal_warnings(session, row,
                                                                  record.sales_removed)

    record, warnings = with_database(body)
    console.print(f"import {import_id} undone by import {record.id}: sales "
                  f"+{record.sales_added} ~{record.sales_changed} -{record.sales_removed}, "
                  f"regressor values +{record.regressors_added} ~{record.regressors_changed} "
                  f"-{record.regressors_removed}", highlight=False)
    for warning in warnings:
        err_console.print(f"warning: {warning}", highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- validate
@app.command()
@clean_errors
def validate(
    tenant: Annotated[str, typer.Option()],
    until: Annotated[str | None, typer.Option(help="only data up to this date")] = None,
) -> None:
    """Check the tenant's data against the data rules; exit 1 if any product has errors."""
    from ovencast.cli import render
    from ovencast.db.session import unit_of_work
    from ovencast.sources.service import open_data_source, resolve_tenant
    from ovencast.training.data import validate_tenant

    until_date = _parse_date(until, "--until")

    async def body(database: Database) -> Any:
        async with unit_of_work(database.sessions) as session, \
                open_data_source(session, settings=database.settings) as source:
            row = await resolve_tenant(session, source, tenant)
            return await validate_tenant(session, row, settings=database.settings,
                                         until=until_date, source=source)

    report, alignment = with_database(body)
    render.validation(console, report, alignment)
    if report.has_errors:
        raise typer.Exit(code=1)


# ------------------------------------------------------------------------------ train
@app.command()
@clean_errors
def train(
    tenant: Annotated[str, typer.Option()],
    until: Annotated[str | None, typer.Option(help="train on data up to this date")] = None,
    products: Annotated[str | None, typer.Option(help="comma-separated products")] = None,
    models: Annotated[str | None, typer.Option(
        help="auto (default: backtest the product class's candidates), or "
             "comma-separated families to select among, e.g. mstl,auto_ets; "
             "prophet alone runs the Optuna search")] = None,
    activation: Annotated[ActivationPolicy, typer.Option(
        "--activate", help="if-better: a new version becomes active only if not worse "
        "than the active one on the same backtest windows of the new data (else it is "
        "kept as a challenger); always; never (kept as a challenger)")
                          ] = ActivationPolicy.IF_BETTER,
) -> None:
    """Train every (or the given) product of a tenant. Exit 0 when every product that
    passed the data rules trained (refused ones are listed), 1 when one of them failed or
    timed out (or none could train), 2 on a usage error."""
    from ovencast.cli import governance, render
    from ovencast.training.embedded import train_tenant

    settings = settings_for_cli()
    with render.TrainingView(console) as view:
        trained = train_tenant(settings, tenant, until=_parse_date(until, "--until"),
                               products=parse_products(products),
                               models=parse_products(models), observer=view,
                               preload=(ENTRY_MODULE,), activation=activation)
    render.training_result(console, trained.job, trained.runs)
    governance.promotions(console, trained.outcomes)
    if not trained.every_accepted_product_trained:
        raise typer.Exit(code=1)


# --------------------------------------------------------------------------- forecast
@app.command()
@clean_errors
def forecast(
    tenant: Annotated[str, typer.Option()],
    days: Annotated[int, typer.Option(min=1, help="how many days to forecast")] = 7,
    from_: Annotated[str | None, typer.Option("--from", help="first forecast date "
                     "(default: the day after the tenant's last sales date)")] = None,
    products: Annotated[str | None, typer.Option(help="comma-separated products")] = None,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
    save: Annotated[bool, typer.Option("--save", help="store the forecast (a forecast run, "
                    "with the challengers' forecasts in shadow) to score it once the "
                    "sales of its dates arrive: `ovencast accuracy`")] = False,
) -> None:
    """Forecast every product from its active model (checksum verified before loading),
    all on the same dates. Exit 0 when every trained product got its forecast, 1 when one
    was refused, 2 on a usage error."""
    from ovencast.cli import governance, render

    start = _parse_date(from_, "--from")
    if save:
        saved = _save_forecast(tenant, days=days, start=start,
                               products=parse_products(products))
        result = saved.forecast
    else:
        result = _forecast(tenant, days=days, start=start, products=parse_products(products))
    render.forecasts(console, err_console, result, output.value)
    if save:
        governance.saved_run(err_console, saved)
    if result.refused:
        raise typer.Exit(code=1)


@app.command()
@clean_errors
def plot(
    tenant: Annotated[str, typer.Option()],
    days: Annotated[int, typer.Option(min=1, help="how many days to forecast")] = 14,
    from_: Annotated[str | None, typer.Option("--from", help="first forecast date "
                     "(default: the day after the tenant's last sales date)")] = None,
    products: Annotated[str | None, typer.Option(help="comma-separated products")] = None,
    output: Annotated[Path, typer.Option(help="where to write the PNG")] = Path(
        "forecast.png"),
) -> None:
    """Draw the last 8 weeks of sales and the forecast, one panel per product, all on the
    same dates."""
    from ovencast.forecasts.plot import plot_forecast

    result = _forecast(tenant, days=days, start=_parse_date(from_, "--from"),
                       products=parse_products(products), with_history=True)
    written = plot_forecast(result, output, title=f"{tenant}: what to expect")
    for refused in result.refused:
        err_console.print(f"[bold red]not plotted:[/] {refused.product}: {refused.error}",
                          highlight=False)
    console.print(f"plot: {written.resolve()}", soft_wrap=True)
    if result.refused:
        raise typer.Exit(code=1)


def _forecast(tenant: str, *, days: int, start: date | None, products: list[str] | None,
              with_history: bool = False) -> TenantForecast:
    from ovencast.db.session import unit_of_work
    from ovencast.forecasts import service as forecasts_service
    from ovencast.sources.service import open_data_source
    from ovencast.tenants import service as tenants_service

    async def body(database: Database) -> TenantForecast:
        async with unit_of_work(database.sessions) as session, \
                open_data_source(session, settings=database.settings) as source:
            row = await tenants_service.get_tenant(session, tenant)
            return await forecasts_service.forecast_tenant(
                session, row, settings=database.settings, days=days, start=start,
                products=products, source=source, with_history=with_history)

    return with_database(body)


def _save_forecast(tenant: str, *, days: int, start: date | None,
                   products: list[str] | None) -> SavedRun:
    from ovencast.db.session import unit_of_work
    from ovencast.forecast_runs import service as runs_service
    from ovencast.models.states import RunTrigger
    from ovencast.sources.service import open_data_source
    from ovencast.tenants import service as tenants_service

    async def body(database: Database) -> SavedRun:
        async with unit_of_work(database.sessions) as session, \
                open_data_source(session, settings=database.settings) as source:
            row = await tenants_service.get_tenant(session, tenant)
            return await runs_service.save_run(
                session, row, settings=database.settings, days=days, start=start,
                products=products, source=source, trigger=RunTrigger.CLI)

    return with_database(body)


# ----------------------------------------------------------------------------- models
@app.command()
@clean_errors
def models(
    tenant: Annotated[str, typer.Option()],
    product: Annotated[str | None, typer.Option()] = None,
    all_versions: Annotated[bool, typer.Option("--all", help="include retired versions")
                            ] = False,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
) -> None:
    """List model versions with their holdout metrics: the active ones and the
    challengers, with the promotion gate's comparison (`--all`: every version)."""
    from ovencast.cli import governance
    from ovencast.db.session import unit_of_work
    from ovencast.models import service as models_service
    from ovencast.tenants import service as tenants_service

    async def body(database: Database) -> Any:
        async with unit_of_work(database.sessions) as session:
            row = await tenants_service.get_tenant(session, tenant)
            return await models_service.list_versions(session, row, product=product)

    versions = [v for v in with_database(body)
                if all_versions or v.is_active or v.is_challenger]
    governance.model_versions(console, versions, output.value)


@app.command()
@clean_errors
def jobs(
    tenant: Annotated[str, typer.Option()],
    job: Annotated[int | None, typer.Option(help="one job: its products' outcome")] = None,
    limit: Annotated[int, typer.Option(min=1, help="how many recent jobs")] = 20,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
) -> None:
    """The tenant's recent training jobs, or one job's products with their outcome and
    reason (why a product failed or timed out)."""
    from ovencast.cli import governance, render
    from ovencast.db.session import unit_of_work
    from ovencast.jobs import repository as jobs_repository
    from ovencast.jobs import service as jobs_service
    from ovencast.tenants import service as tenants_service

    async def body(database: Database) -> Any:
        async with unit_of_work(database.sessions) as session:
            row = await tenants_service.get_tenant(session, tenant)
            if job is None:
                found = await jobs_repository.jobs_of(session, row.id, limit=limit)
                return found, await jobs_repository.run_counts(session,
                                                               [j.id for j in found])
            one = await jobs_service.get_job(session, job)
            if one.tenant_id != row.id:
                raise NotFound(f"training job {job} is not tenant {tenant!r}'s")
            return one, await jobs_repository.runs_of(session, one.id)

    if job is None:
        found, counts = with_database(body)
        if output is not OutputFormat.table:
            governance.records(console, governance.job_records(found, counts),
                               output.value, title="")
            return
        render.training_jobs(console, tenant, found, counts)
        return
    one, runs = with_database(body)
    if output is not OutputFormat.table:
        governance.records(console, governance.run_records(runs), output.value, title="")
        return
    render.training_result(console, one, runs)
    if one.error:
        console.print(f"error: {one.error}", highlight=False)
    for warning in one.warnings or []:
        console.print(f"warning: {warning}", highlight=False)


@app.command()
@clean_errors
def activate(
    tenant: Annotated[str, typer.Option()],
    product: Annotated[str, typer.Option()],
    version: Annotated[int, typer.Option()],
) -> None:
    """Make a model version the active one (roll back or forward)."""
    from ovencast.db.session import unit_of_work
    from ovencast.models import service as models_service
    from ovencast.tenants import service as tenants_service

    async def body(database: Database) -> Any:
        async with unit_of_work(database.sessions) as session:
            row = await tenants_service.get_tenant(session, tenant)
            return await models_service.activate(session, row, product, version)

    row = with_database(body)
    console.print(f"{row.product}: version {row.version} ({row.family}) is now active")


# ------------------------------------------------------------------ model governance
@app.command()
@clean_errors
def accuracy(
    tenant: Annotated[str, typer.Option()],
    product: Annotated[str | None, typer.Option(help="only this product")] = None,
    since: Annotated[str | None, typer.Option(help="only forecast dates from this day")
                     ] = None,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
) -> None:
    """Realised accuracy of the saved forecasts (`forecast --save`) now that sales of their
    dates are known: WAPE, bias and P10-P90 coverage per product, model version and lead
    time (1-7, 8-14, 15-28 days), beside the seasonal naive forecast of the same days;
    a drift warning when a product's last 4 weeks are far worse than its backtest."""
    from ovencast.accuracy import service as accuracy_service
    from ovencast.cli import governance
    from ovencast.db.session import unit_of_work
    from ovencast.sources.service import open_data_source
    from ovencast.tenants import service as tenants_service

    since_date = _parse_date(since, "--since")

    async def body(database: Database) -> Any:
        async with unit_of_work(database.sessions) as session, \
                open_data_source(session, settings=database.settings) as source:
            row = await tenants_service.get_tenant(session, tenant)
            return await accuracy_service.realised_accuracy(
                session, row, settings=database.settings, product=product,
                since=since_date, source=source)

    governance.accuracy(console, err_console, with_database(body), output.value)


@app.command()
@clean_errors
def compare(
    tenant: Annotated[str, typer.Option()],
    product: Annotated[str | None, typer.Option(help="only this product")] = None,
    promote: Annotated[bool, typer.Option("--promote", help="activate, per product, the "
                       "challenger that beats the champion significantly")] = False,
    weeks: Annotated[int | None, typer.Option(min=1, help="only the last N weeks of "
                     "days both forecast (with --promote: and only if they span N weeks)")
                     ] = None,
    output: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.table,
) -> None:
    """Champion against each challenger on the days both forecast (saved runs, sales
    known): days, WAPE of each, and a paired test on the daily absolute errors
    (Diebold-Mariano) saying whether the difference is significant."""
    from ovencast.accuracy import service as accuracy_service
    from ovencast.cli import governance
    from ovencast.db.session import unit_of_work
    from ovencast.sources.service import open_data_source
    from ovencast.tenants import service as tenants_service

    async def body(database: Database) -> Any:
        async with unit_of_work(database.sessions) as session, \
                open_data_source(session, settings=database.settings) as source:
            row = await tenants_service.get_tenant(session, tenant)
            if promote:
                return await accuracy_service.promote_winners(
                    session, row, settings=database.settings, product=product,
                    weeks=weeks, source=source)
            return await accuracy_service.compare_challengers(
                session, row, settings=database.settings, product=product, weeks=weeks,
                source=source), []

    found, promoted = with_database(body)
    governance.comparisons(console, found, promoted, output.value, tenant=tenant)
    if promote and not promoted:
        err_console.print("nothing promoted: no challenger beats its champion "
                          "significantly", highlight=False)


@app.command("run")
@clean_errors
def run_scheduled(
    tenant: Annotated[str, typer.Option()],
    directory: Annotated[Path | None, typer.Option(
        "--dir", help="import this dataset directory first (merge); without it the data "
        "is what was imported, or what the upstream services have (SALES_SERVICE_URL)")
                         ] = None,
    days: Annotated[int, typer.Option(min=1, help="days to forecast and save")] = 28,
    models: Annotated[str | None, typer.Option(help="as `train --models`")] = None,
    products: Annotated[str | None, typer.Option(help="comma-separated products")] = None,
    activation: Annotated[ActivationPolicy, typer.Option("--activate", help="as `train "
                          "--activate`")] = ActivationPolicy.IF_BETTER,
    country: Annotated[str | None, typer.Option(help="with --dir, as `import`")] = None,
    subdivision: Annotated[str | None, typer.Option(help="with --dir, as `import`")
                           ] = None,
) -> None:
    """Scheduled work once (embedded shape; for cron or a systemd timer): import (or
    fetch), retrain, save a forecast run (champions, challengers in shadow), and promote
    by policy (AUTO_PROMOTE_AFTER_WEEKS). Exit 0 when every product that passed the data
    rules trained and the forecast was saved, 1 otherwise."""
    from ovencast.cli import governance, render
    from ovencast.schedules.run import run_once

    settings = settings_for_cli()
    with render.TrainingView(console) as view:
        done = run_once(settings, tenant, directory=directory, country=country,
                        subdivision=subdivision, days=days, models=parse_products(models),
                        products=parse_products(products), activation=activation,
                        observer=view, preload=(ENTRY_MODULE,))
    if done.imported is not None:
        console.print(f"imported {done.imported.sales_rows} sales rows up to "
                      f"{done.imported.last_date}", highlight=False)
    render.training_result(console, done.trained.job, done.trained.runs)
    governance.promotions(console, done.trained.outcomes)
    governance.saved_run(console, done.outcome.saved)
    for promoted in done.outcome.promoted:
        console.print(f"promoted {promoted.product}: version {promoted.version} "
                      f"({promoted.comparison.test.verdict})", highlight=False)
    if not done.trained.every_accepted_product_trained or done.outcome.saved.forecast.refused:
        raise typer.Exit(code=1)


@app.command()
@clean_errors
def schedule(
    tenant: Annotated[str, typer.Option()],
    cron: Annotated[str | None, typer.Option(help="when (service shape: the workers run "
                    "it), e.g. '0 3 * * *' for 03:00 every day in the tenant's time zone")
                    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="remove the schedule")] = False,
    days: Annotated[int, typer.Option(min=1, help="days each run forecasts")] = 28,
    models: Annotated[str | None, typer.Option(help="as `train --models`")] = None,
    activation: Annotated[ActivationPolicy, typer.Option("--activate", help="as `train "
                          "--activate`")] = ActivationPolicy.IF_BETTER,
) -> None:
    """Show, set (--cron) or remove (--clear) the tenant's scheduled work: fetch, retrain,
    save a forecast run (`ovencast worker` runs it; embedded: `ovencast run` from cron)."""
    from ovencast.cli import governance
    from ovencast.db.session import unit_of_work
    from ovencast.schedules import service as schedules_service
    from ovencast.tenants import service as tenants_service

    if cron is not None and clear:
        raise typer.BadParameter("give --cron or --clear, not both", param_hint="--cron")

    async def body(database: Database) -> Any:
        async with unit_of_work(database.sessions) as session:
            row = await tenants_service.get_tenant(session, tenant)
            if cron is None and not clear:
                return row, await schedules_service.get_schedule(session, row)
            return row, await schedules_service.set_schedule(
                session, row, cron=cron, days=days, models=parse_products(models),
                activation=activation)

    governance.schedule(console, *with_database(body))


# ------------------------------------------------------------------------------- demo
@app.command()
@clean_errors
def demo(
    dataset: Annotated[Path | None, typer.Option(help="dataset directory (default: the "
                                                 "bundled Kiel data)")] = None,
    models: Annotated[str | None, typer.Option(help="model families")] = None,
    plot: Annotated[Path, typer.Option(help="where to write the plot")] = Path("forecast.png"),
) -> None:
    """Import the bundled Kiel bakery data into a fresh OVENCAST_HOME, train, report."""
    from ovencast.cli.demo import run_demo

    run_demo(console, settings_for_cli(), dataset=dataset, models=parse_products(models),
             plot_path=plot, preload=(ENTRY_MODULE,))


# ------------------------------------------------------------------------------ serve
@app.command()
@clean_errors
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
) -> None:
    """Run the HTTP API (service shape) and the web console (at /) against DATABASE_URL.
    Refuses to start, exit 1, when the schema is missing or behind (run `ovencast db
    upgrade`)."""
    import uvicorn

    from ovencast.api.app import create_app
    from ovencast.api.server_protocol import guarded_protocol
    from ovencast.db.runtime import Database

    settings = get_settings()
    # A service process logs to stderr (the process manager collects it).
    configure_logging(level=settings.log_level, json_to_stderr=settings.log_json)
    flush_before_signal_exit()

    async def check() -> None:
        database = Database.open(settings)
        try:
            await database.ready()
        finally:
            await database.close()

    try:
        # The app checks again at start-up; checking here first gives one clear line
        # instead of the server's start-up traceback.
        asyncio.run(check())
    except OvencastError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(code=1) from None
    # log_config=None: uvicorn's loggers go through the structlog set-up above. The
    # protocol adds the header and body timeouts uvicorn lacks (api/server_protocol.py).
    protocol = guarded_protocol(header_timeout_s=settings.request_header_timeout_seconds,
                                body_timeout_s=settings.request_body_timeout_seconds)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host=host, port=port,
                                           log_config=None, http=protocol))
    server.run()
    if not server.started:
        raise typer.Exit(code=1)


# ----------------------------------------------------------------------------- worker
@app.command()
@clean_errors
def worker(
    name: Annotated[str | None, typer.Option(help="worker name in logs")] = None,
) -> None:
    """Run a service-shape worker (procrastinate) against DATABASE_URL (PostgreSQL)."""
    from ovencast.queue.worker import run_worker

    settings = get_settings()
    # A service process logs to stderr (the process manager collects it).
    configure_logging(level=settings.log_level, json_to_stderr=settings.log_json)
    flush_before_signal_exit()
    asyncio.run(run_worker(settings, name=name, preload=(ENTRY_MODULE,)))


# ------------------------------------------------------------------------ data-server
@app.command("data-server")
@clean_errors
def data_server(
    directory: Annotated[Path, typer.Argument(help="dataset directory (shared/data layout)")],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8300,
    tenant: Annotated[str | None, typer.Option(help="tenant name served (default: the "
                                               "directory's name)")] = None,
    country: Annotated[str | None, typer.Option(help="country in the tenant profile")] = None,
    subdivision: Annotated[str | None, typer.Option(help="subdivision in the profile")
                           ] = None,
    faults: Annotated[list[str] | None, typer.Option(
        "--faults", help="fault to inject, e.g. 'weather:status=503', 'sales:delay=2.5', "
        "'traffic:drop,times=2', or a .json file of them (repeatable)")] = None,
) -> None:
    """Serve a dataset directory as the sales, weather and traffic services
    (docs/UPSTREAM.md), with optional faults; runs until interrupted."""
    from ovencast.testing import upstream_server as server
    from ovencast.testing.faults import load_faults

    try:
        fault_list = load_faults(faults or [])
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    served = server.served_tenant(directory, tenant=tenant, country=country,
                                  subdivision=subdivision)
    console.print(f"serving tenant {served.name!r} from {directory} on http://{host}:{port} "
                  f"(sales, weather, traffic; admin: /_stats, /_faults)")
    server.run_data_server(served, host=host, port=port, faults=fault_list)


def _parse_date(value: str | None, option: str) -> date | None:
    """A date option; a malformed one is a usage error (exit 2)."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)",
                                 param_hint=option) from None
