"""Queue tasks: thin edges that open units of work and call services.

prepare_training_job(job_id)   validate, store the products' validated histories (the
                               job's data snapshot), record runs, fan out one
                               train_product per run
train_product(job_id, run_id)  read the product's history from the snapshot, advisory
                               lock, fit in a child process, store, record, and
                               fan in: the last run to end closes the job
Both are idempotent, so a task retried after its worker died, or after a database
error, does the right thing. Every other failure ends the job or run `failed` with the
reason.
"""

from __future__ import annotations

from typing import Any

from procrastinate import Blueprint, JobContext, RetryStrategy

from ovencast.db.base import utcnow
from ovencast.db.session import DATABASE_ERRORS, unit_of_work
from ovencast.db.tables import Tenant
from ovencast.errors import failure_reason
from ovencast.events.progress import Failed
from ovencast.events.publish import notify_in_transaction
from ovencast.jobs import repository as jobs_repository
from ovencast.jobs import service as jobs_service
from ovencast.jobs.service import QUEUE
from ovencast.jobs.states import JobStatus, RunStatus
from ovencast.observability.logs import get_logger
from ovencast.observability.metrics import product_ended
from ovencast.queue.runtime import WorkerRuntime
from ovencast.settings import Settings
from ovencast.sources.service import open_data_source
from ovencast.training import job_artifacts, snapshot, tenant_stage
from ovencast.training.advisory_lock import advisory_lock
from ovencast.training.prepare import (
    load_job_data,
    plan_job,
    product_task,
    record_plan,
    store_snapshot,
)
from ovencast.training.worker import train_one

log = get_logger(__name__)
blueprint = Blueprint()


def _runtime(context: JobContext) -> WorkerRuntime:
    runtime = context.additional_context["runtime"]
    assert isinstance(runtime, WorkerRuntime)
    return runtime


# Database errors (an outage, a restart, a lost connection) are retried with backoff:
# the tasks are idempotent. Whatever still fails is failed by the task itself when it
# can write, else by the reaper once the database is back (queue/worker.py).
DATABASE_RETRY = RetryStrategy(max_attempts=6, exponential_wait=2,
                               retry_exceptions=set(DATABASE_ERRORS))


def _is_database_error(exc: BaseException) -> bool:
    return isinstance(exc, DATABASE_ERRORS)


@blueprint.task(name="prepare_training_job", queue=QUEUE, pass_context=True,
                retry=DATABASE_RETRY)
async def prepare_training_job(context: JobContext, job_id: int) -> None:
    runtime = _runtime(context)
    settings, sessions = runtime.settings, runtime.database.sessions
    tenant: Tenant | None = None
    saved: dict[str, dict[str, str]] = {}  # this preparation's snapshot files
    stage: dict[str, Any] | None = None  # ... and its stored global models
    try:
        async with unit_of_work(sessions) as session, \
                open_data_source(session, settings=settings) as source:
            job = await jobs_service.get_job(session, job_id)
            if job.status is not JobStatus.QUEUED:  # cancelled, or a retried fan-out
                return
            tenant = await session.get(Tenant, job.tenant_id)
            assert tenant is not None
            loaded = await load_job_data(source, tenant, job, settings=settings)
        # The tenant stage and the snapshot's writes run with no transaction open.
        plan = await plan_job(loaded, tenant, job, settings=settings)
        stage = None if plan.global_models is None else plan.global_models[1]
        plan = await store_snapshot(plan, tenant, job, settings=settings)
        saved = plan.snapshots or {}
        async with unit_of_work(sessions) as session:
            job = await jobs_service.lock_job(session, job_id)
            # Cancelled while it was planned, or prepared meanwhile by another delivery of
            # this task (its runs read that one's files): only this one's files go.
            if job.status is not JobStatus.QUEUED:
                _discard(settings, job_id, saved, stage)
                return
            prepared = await record_plan(session, tenant, job, plan, settings=settings)
            runs = await jobs_repository.runs_of(session, job.id)
            await jobs_service.fan_out(session, job, runs)
            if not prepared.tasks:
                await jobs_service.close_job_if_done(session, job.id)
    except Exception as exc:
        if _is_database_error(exc):
            raise  # retried; the reaper fails the job if it never gets through
        log.error("training.job.prepare_failed", job_id=job_id, exc_info=exc)
        async with unit_of_work(sessions) as session:
            job = await jobs_service.lock_job(session, job_id)
            if job.status not in (JobStatus.QUEUED, JobStatus.CANCELLED):
                # Prepared (or failed) by another delivery of this task: its runs read
                # its files.
                _discard(settings, job_id, saved, stage)
                return
            if tenant is not None:  # no run reads any preparation's files
                snapshot.discard(settings, tenant.name, job_id)
            tenant_stage.discard(stage, settings, job_id=job_id)
            job = await jobs_service.fail_job(session, job_id, failure_reason(exc))
            await notify_in_transaction(session, jobs_service.job_event(job))


def _discard(settings: Settings, job_id: int, saved: dict[str, dict[str, str]],
             stage: dict[str, Any] | None) -> None:
    """What one preparation stored that the job does not record: its snapshot files and
    its stage's global models (a database error's retry keeps them: the commit may have
    gone through)."""
    snapshot.discard_saved(settings, saved, job_id)
    tenant_stage.discard(stage, settings, job_id=job_id)


@blueprint.task(name="train_product", queue=QUEUE, pass_context=True, retry=DATABASE_RETRY)
async def train_product(context: JobContext, job_id: int, run_id: int) -> None:
    runtime = _runtime(context)
    settings, sessions = runtime.settings, runtime.database.sessions
    task = None
    async with unit_of_work(sessions) as session:
        job = await jobs_service.get_job(session, job_id, reports=False)
        run = await jobs_repository.get_run(session, run_id)
        # Nothing to train when the job was cancelled, or when this is a retry of a run
        # that was recorded before its worker died; the fan-in below still runs (the
        # dead worker may not have closed the job, a cancelled job's artifact may wait).
        if not (run is None or job.status.ended or run.status.ended):
            tenant = await session.get(Tenant, job.tenant_id)
            assert tenant is not None
            try:
                task = await product_task(tenant, job, run, settings=settings)
            except Exception as exc:
                if _is_database_error(exc):
                    raise
                log.error("training.product.prepare_failed", job_id=job_id,
                          product=run.product, exc_info=exc)
                run.status, run.reason = RunStatus.FAILED, failure_reason(exc)
                run.finished_at = utcnow()
                product_ended(run.status, family=None, asked=tuple(job.models))
                await notify_in_transaction(session, Failed(
                    job_id=job_id, product=run.product, reason=run.reason))
    if task is not None:

        def lock(tenant_id: int, product: str) -> Any:
            return advisory_lock(runtime.database.engine, tenant_id, product,
                                 timeout_s=settings.lock_wait_timeout_seconds)

        await train_one(task, sessions, runtime.publisher.publish, lock=lock,
                        fit=runtime.fit)
    async with unit_of_work(sessions) as session:
        closed = await jobs_service.close_job_if_done(session, job_id)
    if closed is not None:
        job_artifacts.retire(closed, settings)
