"""One run of scheduled work: import (a directory, embedded) or fetch (the upstream
services, when configured: the training job loads from them), train, save a forecast
run, and apply the automatic promotion policy. `run_once` is the embedded shape
(`ovencast run`, for cron or a systemd timer); the service shape's tasks.py calls
`forecast_and_promote` once its training job has ended."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.accuracy import service as accuracy_service
from ovencast.accuracy.service import Promoted
from ovencast.datasets.reader import ParsedDataset
from ovencast.datasets.service import ImportSummary
from ovencast.db.runtime import Database, run_with_database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import Tenant
from ovencast.errors import TenantNotFound
from ovencast.forecast_runs import service as runs_service
from ovencast.forecast_runs.service import SavedRun
from ovencast.models.states import ActivationPolicy, RunTrigger
from ovencast.settings import Settings
from ovencast.sources.service import open_data_source
from ovencast.training.embedded import TrainedJob, TrainingObserver, train_tenant


@dataclass(frozen=True)
class ForecastOutcome:
    saved: SavedRun
    promoted: list[Promoted] = field(default_factory=list)


async def forecast_and_promote(session: AsyncSession, tenant_id: int, *, settings: Settings,
                               days: int, training_job_id: int | None = None,
                               products: Sequence[str] | None = None) -> ForecastOutcome:
    """Save a forecast run of `days` days (champions and challengers in shadow), then,
    with AUTO_PROMOTE_AFTER_WEEKS set, promote the challengers that have won
    significantly over that many weeks of shadow forecasts."""
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise TenantNotFound(f"tenant {tenant_id} does not exist")
    async with open_data_source(session, settings=settings) as source:
        saved = await runs_service.save_run(session, tenant, settings=settings, days=days,
                                            trigger=RunTrigger.SCHEDULE, products=products,
                                            source=source, training_job_id=training_job_id)
        promoted: list[Promoted] = []
        if settings.auto_promote_after_weeks:
            _, promoted = await accuracy_service.promote_winners(
                session, tenant, settings=settings, source=source,
                weeks=settings.auto_promote_after_weeks)
    return ForecastOutcome(saved=saved, promoted=promoted)


@dataclass(frozen=True)
class RunOnce:
    imported: ImportSummary | None
    trained: TrainedJob
    outcome: ForecastOutcome


def run_once(settings: Settings, tenant: str, *, directory: Path | None = None,
             country: str | None = None, subdivision: str | None = None, days: int = 28,
             models: Sequence[str] | None = None, products: Sequence[str] | None = None,
             until: date | None = None,
             activation: ActivationPolicy = ActivationPolicy.IF_BETTER,
             observer: TrainingObserver | None = None, preload: Sequence[str] = ()
             ) -> RunOnce:
    """Import `directory` (merge: only its rows change), train (`models`, `activation`),
    save a forecast run of `days` days, promote by policy: each step its own unit of
    work, as the commands it stands for."""
    imported = None
    if directory is not None:
        from ovencast.datasets.reader import DataLimits, read_dataset_dir

        dataset = read_dataset_dir(directory, limits=DataLimits.from_settings(settings))
        imported = run_with_database(settings, lambda database: _import(
            database, tenant, dataset, str(directory.resolve()), country, subdivision))
    trained = train_tenant(settings, tenant, models=models, products=products, until=until,
                           activation=activation, observer=observer, preload=preload)

    async def forecast(database: Database) -> ForecastOutcome:
        async with unit_of_work(database.sessions) as session:
            return await forecast_and_promote(session, trained.job.tenant_id,
                                              settings=settings, days=days,
                                              training_job_id=trained.job.id,
                                              products=products)

    return RunOnce(imported=imported, trained=trained,
                   outcome=run_with_database(settings, forecast))


async def _import(database: Database, tenant: str, dataset: ParsedDataset, source: str,
                  country: str | None, subdivision: str | None) -> ImportSummary:
    from ovencast.datasets import service as datasets_service
    from ovencast.tenants import service as tenants_service

    async with unit_of_work(database.sessions) as session:
        row = await tenants_service.ensure_tenant(session, tenant, country=country,
                                                  subdivision=subdivision)
        return await datasets_service.import_dataset(session, row, dataset, source=source)
