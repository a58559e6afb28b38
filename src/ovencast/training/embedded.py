"""The embedded shape's training flow: prepare the job (its own units of work), train
its products in the local process pool, close it. `ovencast train`, `ovencast demo`, the
benchmarks and the tests call these; the CLI only renders what they report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from ovencast.db.runtime import Database, run_with_database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import TrainingJob, TrainingRun
from ovencast.errors import failure_reason
from ovencast.events.progress import ProductEvent
from ovencast.jobs import repository as jobs_repository
from ovencast.jobs import service as jobs_service
from ovencast.jobs.states import RunStatus
from ovencast.models.states import ActivationPolicy
from ovencast.settings import Settings
from ovencast.sources.service import open_data_source, resolve_tenant
from ovencast.training import job_artifacts, pool
from ovencast.training.prepare import PreparedJob, load_job_data, plan_job, record_plan
from ovencast.training.task import ProductOutcome


class TrainingObserver(Protocol):
    """What a front end (the CLI's progress display) is told while a job trains."""

    def prepared(self, prepared: PreparedJob) -> None:
        """The job is prepared: its validation, the tenant stage, the tasks."""

    def product_event(self, event: ProductEvent) -> None:
        """A product's progress (called from a background thread)."""

    def products_done(self) -> None:
        """Every product has ended."""


@dataclass(frozen=True)
class TrainedJob:
    job: TrainingJob
    runs: list[TrainingRun]
    outcomes: list[ProductOutcome]

    @property
    def every_accepted_product_trained(self) -> bool:
        """True when some product trained and every product the data rules accepted
        did: the success a scheduled `ovencast train` checks (refused products are
        listed, not failures)."""
        statuses = {run.status for run in self.runs}
        return RunStatus.TRAINED in statuses and statuses <= {RunStatus.TRAINED,
                                                             RunStatus.REFUSED}


async def prepare_training(database: Database, tenant: str, *, until: date | None = None,
                           products: Sequence[str] | None = None,
                           models: Sequence[str] | None = None,
                           activation: ActivationPolicy = ActivationPolicy.IF_BETTER
                           ) -> PreparedJob:
    """Record the job (its row commits first, so that a job whose data cannot be had is
    still recorded, as failed with the reason), load its data (a read-only unit of
    work), plan it (the tenant stage: no transaction open meanwhile) and record the plan
    (a third unit of work). Any failure ends the job `failed` with the reason."""
    settings = database.settings
    async with unit_of_work(database.sessions) as session, \
            open_data_source(session, settings=settings) as source:
        row = await resolve_tenant(session, source, tenant)
        job = await jobs_service.new_job(session, row, products=products, until=until,
                                         models=models, source=source,
                                         activation=activation)
    try:
        async with unit_of_work(database.sessions) as session, \
                open_data_source(session, settings=settings) as source:
            loaded = await load_job_data(source, row, job, settings=settings)
        plan = await plan_job(loaded, row, job, settings=settings)
        async with unit_of_work(database.sessions) as session:
            job = await jobs_service.get_job(session, job.id)
            return await record_plan(session, row, job, plan, settings=settings)
    except Exception as exc:
        async with unit_of_work(database.sessions) as session:
            await jobs_service.fail_job(session, job.id, failure_reason(exc))
        raise


async def finish_training(database: Database, job_id: int,
                          outcomes: Sequence[ProductOutcome]) -> TrainedJob:
    """Close the job with its outcome, then delete its global-models artifact."""
    async with unit_of_work(database.sessions) as session:
        job = await jobs_service.finish_job(session, job_id, outcomes)
        runs = list(await jobs_repository.runs_of(session, job.id))
    job_artifacts.retire(job, database.settings)
    return TrainedJob(job=job, runs=runs, outcomes=list(outcomes))


def train_tenant(settings: Settings, tenant: str, *, until: date | None = None,
                 products: Sequence[str] | None = None, models: Sequence[str] | None = None,
                 observer: TrainingObserver | None = None, preload: Sequence[str] = (),
                 activation: ActivationPolicy = ActivationPolicy.IF_BETTER) -> TrainedJob:
    """prepare -> process pool -> finish. `preload`: the caller's entry-point module,
    imported once by the pool's fork server (training/pool.py); `activation`: what
    becomes of each new version (training/promotion.py)."""
    pool.start_workers_early(preload)
    prepared = run_with_database(settings, lambda database: prepare_training(
        database, tenant, until=until, products=products, models=models,
        activation=activation))
    if observer is not None:
        observer.prepared(prepared)
    try:
        outcomes = pool.run_tasks(prepared.tasks, settings=settings,
                                  on_event=observer.product_event if observer else None,
                                  preload=preload)
    finally:
        if observer is not None:
            observer.products_done()
    return run_with_database(settings, lambda database: finish_training(
        database, prepared.job_id, outcomes))
