"""What each console page shows, from the domain services (the same functions the API
and the CLI call; nothing here decides anything about forecasts, jobs or models). Each
function takes the session first and returns plain data for a template."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import IO, Any

import holidays
import pandas as pd
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.accuracy import service as accuracy_service
from ovencast.accuracy.service import ChallengerComparison
from ovencast.console.chart import Chart, DayMark, Forecast, Sold, build_chart
from ovencast.datasets import service as datasets_service
from ovencast.datasets.history import ImportMode
from ovencast.datasets.reader import DataLimits, ParsedDataset, parse_dataset_files
from ovencast.db.base import utcnow
from ovencast.db.tables import (
    DatasetImport,
    ModelVersion,
    Tenant,
    TenantSchedule,
    TrainingJob,
    TrainingRun,
)
from ovencast.errors import ForecastUnavailable, ModelNotFound
from ovencast.forecasting.features import ClosedDayRule
from ovencast.forecasting.frame import CLOSED, DATE, PRODUCT, YHAT
from ovencast.forecasting.validation import Issue, ProductStats, ValidationReport
from ovencast.forecasts import service as forecasts_service
from ovencast.forecasts.service import HISTORY_DAYS, NOTE, P10, P90, WEEKDAY
from ovencast.jobs import repository as jobs_repository
from ovencast.jobs import service as jobs_service
from ovencast.models import service as models_service
from ovencast.schedules import service as schedules_service
from ovencast.settings import Settings
from ovencast.sources.service import open_data_source
from ovencast.training.data import validate_tenant

FORECAST_DAYS = 14
# The model choices of the console's "train" form: automatic selection, and the fast
# baseline for a quick retrain (any other name: the API or the CLI).
MODEL_CHOICES = ("auto", "seasonal_naive")


def off_by(wape: float | None) -> str:
    """A WAPE in plain words."""
    if wape is None or math.isnan(wape):
        return "not measured yet"
    return f"typically off by {wape * 100:.0f}\N{NO-BREAK SPACE}%"  # "12 %" stays whole


def chosen_model(version: ModelVersion) -> str:
    return str((version.details.get("selection") or {}).get("chosen") or version.family)


# -- overview ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ProductSummary:
    product: str
    active: ModelVersion | None
    challengers: int
    backtest: str
    realised: str
    realised_days: int
    drift: str | None


@dataclass(frozen=True)
class Overview:
    tenant: Tenant
    products: list[ProductSummary]
    warnings: list[str]
    last_job: TrainingJob | None


async def overview(session: AsyncSession, tenant: Tenant, *, settings: Settings) -> Overview:
    versions = await models_service.list_versions(session, tenant)
    async with open_data_source(session, settings=settings) as source:
        products = await source.list_products(tenant.name)
        accuracy = await accuracy_service.realised_accuracy(session, tenant,
                                                            settings=settings, source=source)
    realised = {p.product: p for p in accuracy.products}
    summaries = []
    for name in sorted({*products, *(v.product for v in versions)}):
        active = next((v for v in versions if v.product == name and v.is_active), None)
        scored = realised.get(name)
        summaries.append(ProductSummary(
            product=name, active=active,
            challengers=sum(1 for v in versions if v.product == name and v.is_challenger),
            backtest=off_by(accuracy_service.backtest_wape(active)) if active else "no model",
            realised=off_by(scored.overall.wape if scored else None),
            realised_days=scored.overall.n_days if scored else 0,
            drift=scored.drift if scored else None))
    jobs = await jobs_repository.jobs_of(session, tenant.id, limit=1)
    return Overview(tenant=tenant, products=summaries, warnings=accuracy.warnings,
                    last_job=jobs[0] if jobs else None)


# -- product -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ForecastDay:
    day: date
    weekday: str
    forecast: float
    p10: float | None
    p90: float | None
    note: str  # closed, off-season, or the fallback inputs (forecasts/service._note)

    @property
    def short_note(self) -> str:
        """The note for the page's table: the fallback inputs are named once above it."""
        return "estimated inputs" if self.note.startswith("fallback") else self.note


@dataclass(frozen=True)
class ProductPage:
    tenant: Tenant
    product: str
    version: int
    model: str
    rows: list[ForecastDay]
    sold: list[Sold]
    marks: list[DayMark]
    chart: Chart
    notes: list[str]
    fallbacks: list[str]


def _number(value: Any) -> float | None:
    return None if value is None or math.isnan(float(value)) else float(value)


def holiday_marks(tenant: Tenant, first: date, last: date) -> list[DayMark]:
    """The tenant's public holidays between `first` and `last` (none without a country)."""
    if tenant.country is None:
        return []
    calendar = holidays.country_holidays(tenant.country, subdiv=tenant.subdivision,
                                         years=range(first.year, last.year + 1))
    return [DayMark(day, "holiday", str(name)) for day, name in sorted(calendar.items())
            if first <= day <= last]


def closed_marks(regressors: pd.DataFrame, first: date, last: date) -> list[DayMark]:
    """The days `first`..`last` the tenant's calendar says the shop was closed, by the
    rule training uses (forecasting/features.ClosedDayRule)."""
    if regressors.empty:
        return []
    days = pd.to_datetime(regressors[DATE]).dt.date
    shut = ClosedDayRule().closed(regressors).to_numpy(dtype=bool)
    return [DayMark(day, "closed", "closed")
            for day, closed in zip(days, shut, strict=True)
            if closed and first <= day <= last]


async def product_page(session: AsyncSession, tenant: Tenant, product: str, *,
                       settings: Settings) -> ProductPage:
    """The next FORECAST_DAYS days of `product` from its active model (the tenant's
    forecast window: the same dates for every product) and its sales of the HISTORY_DAYS
    before. `ModelNotFound` without an active model."""
    async with open_data_source(session, settings=settings) as source:
        forecast = await forecasts_service.forecast_tenant(
            session, tenant, settings=settings, days=FORECAST_DAYS, products=[product],
            source=source, with_history=True)
        calendar = (await source.regressors(tenant.name)).regressors
    result = forecast.results[0]
    if result.frame is None:
        raise (result.error_kind or ForecastUnavailable)(
            result.error or f"{product} could not be forecast")
    frame = result.frame
    rows = [ForecastDay(day=r[DATE], weekday=str(r[WEEKDAY]), forecast=float(r[YHAT]),
                        p10=_number(r[P10]), p90=_number(r[P90]), note=str(r[NOTE]))
            for r in frame.to_dict(orient="records")]
    history = forecast.history
    sold = [] if history is None else [
        Sold(day=_as_date(r["date"]), quantity=float(r["quantity"]))
        for r in history.loc[history[PRODUCT] == product].to_dict(orient="records")]
    first = rows[0].day - timedelta(days=HISTORY_DAYS)
    last = rows[-1].day
    closed = [*closed_marks(calendar, first, rows[0].day - timedelta(days=1)),
              *(DayMark(r[DATE], "closed", "closed")
                for r in frame.to_dict(orient="records") if bool(r[CLOSED]))]
    marks = sorted([*closed, *holiday_marks(tenant, first, last)], key=lambda m: m.day)
    chart = build_chart(sold, [Forecast(r.day, r.forecast, r.p10, r.p90) for r in rows],
                        marks, first=first, last=last)
    return ProductPage(
        tenant=tenant, product=product, version=int(result.version or 0),
        model=result.model or str(result.family), rows=rows, sold=sold, marks=marks,
        chart=chart, notes=[*result.notes, *forecast.notes],
        fallbacks=fallback_lines(forecast.fallbacks))


def fallback_lines(spans: Sequence[Mapping[str, Any]]) -> list[str]:
    """The inputs that were fallbacks (`TenantForecast.fallbacks`), one line per span of
    dates: "on 2023-11-01..2023-11-14: cloud_cover_pct (climatology), guests (...)"."""
    by_dates: dict[str, list[str]] = {}
    for span in spans:
        source = str(span["source"]).replace("_", " ")
        by_dates.setdefault(", ".join(span["dates"]), []).append(
            f"{span['regressor']} ({source})")
    return [f"on {dates}: {', '.join(columns)}" for dates, columns in by_dates.items()]


def _as_date(value: Any) -> date:
    """A history row's date (a pandas Timestamp, a datetime or a date) as a date."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def forecast_csv(page: ProductPage) -> str:
    lines = ["date,weekday,product,forecast,p10,p90,note"]
    for r in page.rows:
        lines.append(",".join([
            r.day.isoformat(), r.weekday, _csv_cell(page.product), f"{r.forecast:.2f}",
            "" if r.p10 is None else f"{r.p10:.2f}", "" if r.p90 is None else f"{r.p90:.2f}",
            _csv_cell(r.note)]))
    return "\n".join(lines) + "\n"


def _csv_cell(text: str) -> str:
    # Quoted when needed; a leading formula character is neutralised for spreadsheets.
    if text[:1] in ("=", "+", "-", "@"):
        text = "'" + text
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n') else text


# -- jobs --------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobsPage:
    tenant: Tenant
    jobs: list[TrainingJob]
    products: list[str]
    schedule: TenantSchedule | None = None
    next_run: schedules_service.NextRun | None = None


async def jobs_page(session: AsyncSession, tenant: Tenant, *, settings: Settings) -> JobsPage:
    jobs = list(await jobs_repository.jobs_of(session, tenant.id))
    async with open_data_source(session, settings=settings) as source:
        products = await source.list_products(tenant.name)
    schedule = await schedules_service.get_schedule(session, tenant)
    upcoming = (schedules_service.next_run(schedule, tenant, now=utcnow())
                if schedule is not None else None)
    return JobsPage(tenant=tenant, jobs=jobs, products=list(products), schedule=schedule,
                    next_run=upcoming)


async def start_job(session: AsyncSession, tenant: Tenant, *, settings: Settings,
                    products: Sequence[str], model: str) -> TrainingJob:
    """What `POST /tenants/{t}/training-jobs` does: a queued job for the workers."""
    async with open_data_source(session, settings=settings) as source:
        return await jobs_service.submit_job(session, tenant, products=list(products) or None,
                                             models=[model], source=source)


@dataclass(frozen=True)
class JobPage:
    tenant: Tenant
    job: TrainingJob
    runs: list[TrainingRun]
    issues: list[Issue]


async def job_page(session: AsyncSession, tenant: Tenant, job: TrainingJob) -> JobPage:
    runs = list(await jobs_repository.runs_of(session, job.id))
    report = (ValidationReport.from_dict(job.validation_report)
              if job.validation_report else None)
    return JobPage(tenant=tenant, job=job, runs=runs,
                   issues=list(report.issues) if report else [])


# -- models ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelsPage:
    tenant: Tenant
    versions: dict[str, list[ModelVersion]]
    comparisons: dict[str, list[ChallengerComparison]]


async def models_page(session: AsyncSession, tenant: Tenant, *, settings: Settings
                      ) -> ModelsPage:
    versions: dict[str, list[ModelVersion]] = {}
    for version in await models_service.list_versions(session, tenant):
        versions.setdefault(version.product, []).append(version)
    for found in versions.values():
        found.sort(key=lambda v: v.version, reverse=True)
    async with open_data_source(session, settings=settings) as source:
        compared = await accuracy_service.compare_challengers(session, tenant,
                                                              settings=settings,
                                                              source=source)
    comparisons: dict[str, list[ChallengerComparison]] = {}
    for comparison in compared:
        comparisons.setdefault(comparison.product, []).append(comparison)
    return ModelsPage(tenant=tenant, versions=dict(sorted(versions.items())),
                      comparisons=comparisons)


async def find_version(session: AsyncSession, tenant: Tenant, product: str, version: int
                       ) -> ModelVersion:
    for row in await models_service.list_versions(session, tenant, product=product):
        if row.version == version:
            return row
    raise ModelNotFound(
        f"no version {version} of product {product!r} for tenant {tenant.name!r}")


# -- data --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProductReport:
    product: str
    stats: ProductStats
    issues: list[Issue]

    @property
    def trainable(self) -> bool:
        return not any(i.level == "error" for i in self.issues)


@dataclass(frozen=True)
class DataPage:
    tenant: Tenant
    imports: list[DatasetImport]
    products: list[ProductReport]
    tenant_issues: list[Issue]
    imported: datasets_service.ImportSummary | None = None
    problems: list[Any] = field(default_factory=list)
    problems_total: int = 0


def product_reports(report: ValidationReport) -> list[ProductReport]:
    return [ProductReport(product=name, stats=stats, issues=list(report.issues_for(name)))
            for name, stats in sorted(report.products.items())]


async def data_page(session: AsyncSession, tenant: Tenant, *, settings: Settings,
                    imported: datasets_service.ImportSummary | None = None) -> DataPage:
    """The tenant's imports and the validation report of its data now (what a training
    job would find), per product."""
    imports = list(await datasets_service.list_imports(session, tenant, limit=10))
    report: ValidationReport | None = None
    if imports:
        report, _ = await validate_tenant(session, tenant, settings=settings)
    return DataPage(tenant=tenant, imports=imports,
                    products=product_reports(report) if report else [],
                    tenant_issues=list(report.issues_for(None)) if report else [],
                    imported=imported)


def parse_upload(files: Mapping[str, IO[bytes]], *, settings: Settings) -> ParsedDataset:
    """The uploaded files parsed as `ovencast import` parses a directory (raises
    `DatasetProblems` naming file, line and column)."""
    return parse_dataset_files(files, limits=DataLimits.from_settings(settings))


async def import_upload(session: AsyncSession, tenant: Tenant, dataset: ParsedDataset, *,
                        source: str, mode: ImportMode) -> datasets_service.ImportSummary:
    return await datasets_service.import_dataset(session, tenant, dataset, source=source,
                                                 mode=mode)
