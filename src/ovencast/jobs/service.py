"""Training jobs in the service shape: submit (job row + queue entry in one transaction),
cancel, fan-in (the last product to finish closes the job), snapshot for late clients."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.db.base import utcnow
from ovencast.db.tables import Tenant, TrainingJob, TrainingRun
from ovencast.errors import Conflict, NotFound
from ovencast.events.publish import notify_in_transaction
from ovencast.jobs import repository
from ovencast.observability.logs import get_logger
from ovencast.sources.base import DataSource
from ovencast.training import service as training_service

log = get_logger(__name__)

QUEUE = "training"
PREPARE_TASK = "ovencast:prepare_training_job"
TRAIN_TASK = "ovencast:train_product"
TERMINAL_RUN = frozenset({"trained", "failed", "timed_out", "cancelled"})
TERMINAL_JOB = frozenset({"succeeded", "partial", "failed", "cancelled"})

# procrastinate's own `defer` opens its own connection, which cannot share our
# transaction. Its documented SQL entry point `procrastinate_defer_jobs_v1` (the function
# its `defer_jobs` query calls, installed by migration 0002) can: calling it through our
# session makes "job row written" and "work enqueued" one atomic step. The function name
# is versioned; procrastinate is pinned to <4 in pyproject.toml.
_DEFER_SQL = text("""
    SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[
        ROW(:queue, :task, 0, :lock, NULL, CAST(:args AS jsonb), NULL)
    ]::procrastinate_job_to_defer_v1[]))
""")


async def defer(session: AsyncSession, task: str, *, lock: str | None = None,
                **kwargs: Any) -> int:
    """Enqueue `task(**kwargs)` inside the session's transaction."""
    job_id = await session.scalar(_DEFER_SQL, {"queue": QUEUE, "task": task, "lock": lock,
                                               "args": json.dumps(kwargs)})
    assert job_id is not None
    return int(job_id)


async def submit_job(session: AsyncSession, tenant: Tenant, *,
                     products: Sequence[str] | None = None, until: date | None = None,
                     models: Sequence[str] | None = None,
                     source: DataSource | None = None) -> TrainingJob:
    """Record a queued job and enqueue its preparation, atomically."""
    job = await training_service.new_job(session, tenant, products=products, until=until,
                                         models=models, source=source)
    await defer(session, PREPARE_TASK, job_id=job.id)
    log.info("training.job.submitted", job_id=job.id, tenant=tenant.name)
    return job


async def fan_out(session: AsyncSession, job: TrainingJob, runs: Sequence[TrainingRun]) -> None:
    """Enqueue one task per pending run (same transaction as the runs)."""
    for run in runs:
        if run.status == "pending":
            await defer(session, TRAIN_TASK, job_id=job.id, run_id=run.id)
            await notify_in_transaction(session, product_event(job.id, run.product, "queued"))
        else:
            await notify_in_transaction(session, product_event(
                job.id, run.product, run.status, reason=run.reason))


async def get_job(session: AsyncSession, job_id: int) -> TrainingJob:
    job = await repository.get_job(session, job_id)
    if job is None:
        raise NotFound(f"training job {job_id} does not exist")
    return job


async def cancel_job(session: AsyncSession, job_id: int) -> TrainingJob:
    """Cancel a job that has not ended: its pending runs are cancelled (queued tasks see it
    and do nothing); runs already training finish and are recorded."""
    job = await _locked_job(session, job_id)
    if job.status in TERMINAL_JOB:
        raise Conflict(f"training job {job_id} already ended ({job.status})")
    for run in await repository.runs_of(session, job_id):
        if run.status == "pending":
            run.status, run.reason, run.finished_at = "cancelled", "job cancelled", utcnow()
    job.status, job.finished_at = "cancelled", utcnow()
    job.error = "cancelled by request"
    await session.flush()
    await notify_in_transaction(session, job_event(job))
    log.info("training.job.cancelled", job_id=job_id)
    return job


async def close_job_if_done(session: AsyncSession, job_id: int) -> TrainingJob | None:
    """Fan-in. Under a row lock on the job, so that exactly one finishing task closes it:
    when every run has ended, set the job's final status and announce it. Returns the
    job when this call closed it or retired its global models (the caller then deletes
    their artifact once this commits: `training_service.retire_global_models`), else None.

    A cancelled job is already closed, but runs that were training when it was cancelled
    go on and read its global-models artifact; the task that sees the last of them end
    retires it."""
    job = await _locked_job(session, job_id)
    if job.status in TERMINAL_JOB and job.status != "cancelled":
        return None
    runs = await repository.runs_of(session, job_id)
    if any(run.status not in TERMINAL_RUN for run in runs):
        return None
    if job.status == "cancelled":
        if not training_service.mark_global_models_retired(job):
            return None
        await session.flush()
        return job
    await training_service.conclude_job(session, job, runs)
    await notify_in_transaction(session, job_event(job))
    return job


def product_event(job_id: int, product: str, event: str, **fields: Any) -> dict[str, Any]:
    return {"type": "product", "job_id": job_id, "product": product, "event": event,
            **{k: v for k, v in fields.items() if v is not None}}


def job_event(job: TrainingJob) -> dict[str, Any]:
    return {"type": "job", "job_id": job.id, "status": job.status, "error": job.error}


async def _locked_job(session: AsyncSession, job_id: int) -> TrainingJob:
    job = await session.scalar(select(TrainingJob).where(TrainingJob.id == job_id)
                               .with_for_update().execution_options(populate_existing=True))
    if job is None:
        raise NotFound(f"training job {job_id} does not exist")
    return job
