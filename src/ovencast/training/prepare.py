"""Preparing a job: validate the tenant's data, train the tenant stage, record the
reports and one run per product, and build each trainable product's task. The service
shape stores each product's validated history (`store_snapshot`, training/snapshot.py)
and its workers rebuild one product's task from it (`product_task`): a job trains on the
data it validated, whatever is uploaded meanwhile."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.db.base import utcnow
from ovencast.db.tables import Tenant, TrainingJob, TrainingRun
from ovencast.errors import Conflict, InvalidDataset
from ovencast.forecasting.classes import ClassThresholds
from ovencast.forecasting.features import AlignmentReport
from ovencast.forecasting.frame import CLOSED, PRODUCT, Y
from ovencast.forecasting.validation import ValidationReport
from ovencast.jobs.states import JobStatus, RunStatus
from ovencast.observability.logs import get_logger
from ovencast.settings import Settings
from ovencast.sources.base import DataSource
from ovencast.sources.database import DatabaseSource
from ovencast.training import snapshot, tenant_stage
from ovencast.training.data import TenantData, load_and_validate
from ovencast.training.original import is_original, original_regressors
from ovencast.training.task import ProductTask

log = get_logger(__name__)
READ_ATTEMPTS = 3


@dataclass(frozen=True, repr=False)
class PreparedJob:
    """What `prepare_job` hands to the pool. Its repr is a summary (see ProductTask)."""

    job_id: int
    tasks: list[ProductTask]
    validation: ValidationReport
    alignment: AlignmentReport
    rejected: dict[str, str]  # product -> reason it will not train
    global_models: dict[str, Any] | None = None  # what the tenant stage trained, if any

    def __repr__(self) -> str:
        return (f"PreparedJob(job_id={self.job_id}, tasks={len(self.tasks)}, "
                f"rejected={sorted(self.rejected)})")


@dataclass(frozen=True, repr=False)
class JobData:
    """A job's data as loaded: its products' histories and reports (`data.frame` is
    empty: the long frame is split into `histories` and released, so that a chain's data
    is held once), and for the tenant stage of a job of some products only, every
    product of the tenant (`tenant_data`)."""

    selected: list[str]
    data: TenantData
    histories: dict[str, pd.DataFrame]  # product -> its rows (no product column)
    tenant_data: TenantData | None = None
    data_version: int | None = None  # the source's version of what was read

    def __repr__(self) -> str:
        return f"JobData(products={len(self.selected)})"


@dataclass(frozen=True, repr=False)
class JobPlan:
    """What preparing decided, before anything is written: each product's verdict (the
    data rules' refusal or none) and class, the trainable histories, the tenant stage's
    models (payload and record) and the job's warnings."""

    data: TenantData
    verdicts: list[tuple[str, str | None, str]]  # product, refusal, class
    histories: dict[str, pd.DataFrame]
    global_models: tuple[bytes, dict[str, Any]] | None
    warnings: list[str]
    data_version: int | None = None
    snapshots: dict[str, dict[str, str]] | None = None  # product -> stored history

    def __repr__(self) -> str:
        return f"JobPlan(products={len(self.verdicts)}, trainable={len(self.histories)})"


async def load_job_data(source: DataSource, tenant: Tenant, job: TrainingJob, *,
                        settings: Settings) -> JobData:
    """Everything preparing `job` reads (inside the caller's short read-only unit of
    work when the source is the database). Sales the source cannot deliver raise (an
    `UpstreamError`: "sales service unavailable: ...").

    The data version is read before and after: an import that commits in between (the
    unit of work reads committed data statement by statement) makes it read again, so
    the version recorded names what was read."""
    for _ in range(READ_ATTEMPTS):
        version = await source.data_version(tenant.name)
        selected = job.products or await source.list_products(tenant.name)
        data = await load_and_validate(source, tenant, settings=settings, until=job.until,
                                       products=selected,
                                       original=is_original(tuple(job.models)))
        tenant_data = await tenant_stage.load_tenant_data(source, tenant, job,
                                                          settings=settings)
        if await source.data_version(tenant.name) == version:
            # In a thread, as the frame's build: seconds for a chain (decision 023).
            histories = await asyncio.to_thread(_split, data.frame)
            # .copy(): an empty slice is a view that would keep the long frame alive.
            return JobData(selected=list(selected), histories=histories,
                           data=replace(data, frame=data.frame.iloc[0:0].copy()),
                           tenant_data=tenant_data, data_version=version)
    raise Conflict(f"the tenant's data changed each of the {READ_ATTEMPTS} times the "
                        "job read it (imports in progress); submit the job again")


async def plan_job(loaded: JobData, tenant: Tenant, job: TrainingJob, *,
                   settings: Settings) -> JobPlan:
    """The products' verdicts and the tenant stage (seconds to minutes): no database
    session is open meanwhile, so no transaction waits idle and no lock is held."""
    data = loaded.data
    verdicts, histories = await asyncio.to_thread(_verdicts, loaded, job.until)
    stage = await tenant_stage.train_global_models(
        tenant, job, histories, tuple(data.alignment.used_regressors), settings,
        loaded.tenant_data, classes={product: product_class for product, reason,
                                     product_class in verdicts if not reason})
    warnings = [*data.warnings,
                *(f"{issue.product}: {issue.message}" if issue.product else issue.message
                  for issue in data.report.warnings)]
    if isinstance(stage, str):
        warnings.append(stage)
    return JobPlan(data=data, verdicts=verdicts, histories=histories,
                   global_models=stage if isinstance(stage, tuple) else None,
                   warnings=warnings, data_version=loaded.data_version)


def _verdicts(loaded: JobData, until: date | None
              ) -> tuple[list[tuple[str, str | None, str]], dict[str, pd.DataFrame]]:
    """(product, refusal reason or None, class) of every selected product, and the
    histories of those that will train."""
    data = loaded.data
    verdicts: list[tuple[str, str | None, str]] = []
    histories: dict[str, pd.DataFrame] = {}
    nothing = data.frame.drop(columns=[PRODUCT])
    for product in loaded.selected:
        history = loaded.histories.get(product, nothing)
        reason = _rejection(product, history, data.report, data.alignment, until)
        verdicts.append((product, reason, _product_class(product, history, data.report)))
        if not reason:
            histories[product] = history
    return verdicts, histories


async def store_snapshot(plan: JobPlan, tenant: Tenant, job: TrainingJob, *,
                         settings: Settings) -> JobPlan:
    """The service shape: store each trainable product's history for the workers (no
    transaction open meanwhile); `record_plan` then records where."""
    records = await asyncio.to_thread(snapshot.save_histories, settings, tenant.name,
                                      job.id, plan.histories)
    return replace(plan, snapshots=records)


async def record_plan(session: AsyncSession, tenant: Tenant, job: TrainingJob, plan: JobPlan,
                      *, settings: Settings) -> PreparedJob:
    """Store the reports with the job (now running) and one run per product: refused by
    the data rules (with the reasons) or pending with a task."""
    report, alignment = plan.data.report, plan.data.alignment
    job.status, job.started_at = JobStatus.RUNNING, utcnow()
    job.validation_report, job.alignment_report = report.to_dict(), alignment.to_dict()
    job.warnings = [*job.warnings, *plan.warnings]
    job.data_snapshot = snapshot.record(tenant.name, job.id, plan.data_version,
                                        stored=plan.snapshots is not None)
    stored = plan.snapshots or {}
    runs = [TrainingRun(job_id=job.id, product=product, product_class=product_class,
                        status=RunStatus.REFUSED if reason else RunStatus.PENDING,
                        reason=reason, finished_at=utcnow() if reason else None,
                        data_snapshot=None if reason else stored.get(product))
            for product, reason, product_class in plan.verdicts]
    session.add_all(runs)
    if plan.global_models is not None:
        job.global_models = plan.global_models[1]
    await session.flush()
    models = None if plan.global_models is None else tenant_stage.global_models_key(job)
    tasks = [replace(_task(settings, tenant, job, run, plan.histories[run.product],
                           alignment), global_fits_key=models)
             for run in runs if run.status is RunStatus.PENDING]
    rejected = {run.product: run.reason or "" for run in runs
                if run.status is RunStatus.REFUSED}
    log.info("training.job.started", job_id=job.id, tenant=tenant.name,
             products=len(runs), trainable=len(tasks), families=list(job.models))
    return PreparedJob(job_id=job.id, tasks=tasks, validation=report, alignment=alignment,
                       rejected=rejected, global_models=job.global_models)


async def prepare_job(session: AsyncSession, tenant: Tenant, job: TrainingJob, *,
                      settings: Settings, source: DataSource | None = None,
                      store_histories: bool = False) -> PreparedJob:
    """Load, plan (`store_histories`: and store the snapshot, as the service shape does)
    and record in one session: for callers that need no split (tests, small jobs). The
    embedded flow and the queue task split the steps so that no transaction is open
    during the tenant stage."""
    loaded = await load_job_data(source or DatabaseSource(session), tenant, job,
                                 settings=settings)
    plan = await plan_job(loaded, tenant, job, settings=settings)
    if store_histories:
        plan = await store_snapshot(plan, tenant, job, settings=settings)
    return await record_plan(session, tenant, job, plan, settings=settings)


async def product_task(tenant: Tenant, job: TrainingJob, run: TrainingRun, *,
                       settings: Settings) -> ProductTask:
    """Rebuild one run's task (the service shape's worker task gets ids only) from the
    history the job stored when it validated the data (checksum verified) and the
    regressors it chose then: the same task `record_plan` built, whatever was uploaded
    since."""
    if not run.data_snapshot:
        raise InvalidDataset(
            f"the job stored no data for {run.product!r} (it was prepared by an older "
            "version of ovencast); submit the job again")
    history = await asyncio.to_thread(snapshot.load_history, settings, run.data_snapshot)
    alignment = AlignmentReport.from_dict(job.alignment_report or {})
    # The job's global models by reference: loaded, verified and parsed once per process
    # (`process_state.stored_global_fits`), not once per product (decision 023).
    return replace(_task(settings, tenant, job, run, history, alignment),
                   global_fits_key=tenant_stage.global_models_key(job))


def _split(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """product -> its rows, each a copy (no product column, index from 0), so that the
    long frame can be released."""
    return {str(product): rows.drop(columns=[PRODUCT]).reset_index(drop=True)
            for product, rows in frame.groupby(PRODUCT, sort=False)}


def _task(settings: Settings, tenant: Tenant, job: TrainingJob, run: TrainingRun,
          history: pd.DataFrame, alignment: AlignmentReport) -> ProductTask:
    return ProductTask(
        settings=settings, job_id=job.id, run_id=run.id, tenant_id=tenant.id,
        tenant_name=tenant.name, product=run.product,
        product_class=run.product_class or "", history=history,
        regressors=(original_regressors(alignment) if is_original(tuple(job.models))
                    else tuple(alignment.used_regressors)),
        families=tuple(job.models),
        country=tenant.country, subdivision=tenant.subdivision)


def _rejection(product: str, history: pd.DataFrame, report: ValidationReport,
               alignment: AlignmentReport, until: date | None) -> str | None:
    errors = report.errors_for(product)
    if errors:
        return "; ".join(issue.message for issue in errors)
    if history.empty:
        clipped = alignment.clipped.get(product)
        if clipped is not None and clipped.remaining_days == 0:
            return (f"all {clipped.n_days} days clipped: the regressors "
                    f"{', '.join(alignment.used_regressors)} are not available there")
        return f"no data up to {until}" if until else "no data"
    return None


def _product_class(product: str, history: pd.DataFrame, report: ValidationReport) -> str:
    stats = report.products.get(product)
    if stats is not None:
        return str(stats.product_class)
    return str(ClassThresholds().classify(history.loc[~history[CLOSED], Y].to_numpy()))


