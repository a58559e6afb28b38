"""Queue tasks: thin edges that open units of work and call services.

prepare_training_job(job_id)   validate, record runs, fan out one train_product per run
train_product(job_id, run_id)  advisory lock, fit in a child process, store, record, and
                               fan in: the last run to end closes the job
Both are idempotent, so a task retried after its worker died does the right thing.
"""

from __future__ import annotations

from typing import Any

from procrastinate import Blueprint, JobContext

from ovencast.db.base import utcnow
from ovencast.db.session import unit_of_work
from ovencast.db.tables import Tenant
from ovencast.errors import OvencastError
from ovencast.events.progress import Failed
from ovencast.events.publish import notify_in_transaction
from ovencast.jobs import repository as jobs_repository
from ovencast.jobs import service as jobs_service
from ovencast.jobs.service import QUEUE
from ovencast.jobs.states import JobStatus, RunStatus
from ovencast.observability.logs import get_logger
from ovencast.queue.runtime import WorkerRuntime
from ovencast.sources.service import open_data_source
from ovencast.training import tenant_stage
from ovencast.training.advisory_lock import advisory_lock
from ovencast.training.prepare import prepare_job, product_task
from ovencast.training.worker import train_one

log = get_logger(__name__)
blueprint = Blueprint()


def _runtime(context: JobContext) -> WorkerRuntime:
    runtime = context.additional_context["runtime"]
    assert isinstance(runtime, WorkerRuntime)
    return runtime


@blueprint.task(name="prepare_training_job", queue=QUEUE, pass_context=True)
async def prepare_training_job(context: JobContext, job_id: int) -> None:
    runtime = _runtime(context)
    sessions = runtime.database.sessions
    try:
        async with unit_of_work(sessions) as session:
            job = await jobs_service.get_job(session, job_id)
            if job.status is not JobStatus.QUEUED:  # cancelled, or a retried fan-out
                return
            tenant = await session.get(Tenant, job.tenant_id)
            assert tenant is not None
            async with open_data_source(session, settings=runtime.settings) as source:
                prepared = await prepare_job(session, tenant, job,
                                             settings=runtime.settings, source=source)
            runs = await jobs_repository.runs_of(session, job.id)
            await jobs_service.fan_out(session, job, runs)
            if not prepared.tasks:
                await jobs_service.close_job_if_done(session, job.id)
    except OvencastError as exc:
        async with unit_of_work(sessions) as session:
            job = await jobs_service.fail_job(session, job_id, exc.message)
            await notify_in_transaction(session, jobs_service.job_event(job))


@blueprint.task(name="train_product", queue=QUEUE, pass_context=True)
async def train_product(context: JobContext, job_id: int, run_id: int) -> None:
    runtime = _runtime(context)
    settings, sessions = runtime.settings, runtime.database.sessions
    task = None
    async with unit_of_work(sessions) as session:
        job = await jobs_service.get_job(session, job_id)
        run = await jobs_repository.get_run(session, run_id)
        # Nothing to train when the job was cancelled, or when this is a retry of a run
        # that was recorded before its worker died; the fan-in below still runs (the
        # dead worker may not have closed the job, a cancelled job's artifact may wait).
        if not (run is None or job.status.ended or run.status.ended):
            tenant = await session.get(Tenant, job.tenant_id)
            assert tenant is not None
            try:
                async with open_data_source(session, settings=settings) as source:
                    task = await product_task(session, tenant, job, run,
                                              settings=settings, source=source)
            except OvencastError as exc:
                run.status, run.reason = RunStatus.FAILED, exc.message
                run.finished_at = utcnow()
                await notify_in_transaction(session, Failed(
                    job_id=job_id, product=run.product, reason=exc.message))
    if task is not None:

        def lock(tenant_id: int, product: str) -> Any:
            return advisory_lock(runtime.database.engine, tenant_id, product,
                                 timeout_s=settings.lock_wait_timeout_seconds)

        await train_one(task, sessions, runtime.publisher.publish, lock=lock,
                        fit=runtime.fit)
    async with unit_of_work(sessions) as session:
        closed = await jobs_service.close_job_if_done(session, job_id)
    if closed is not None:
        tenant_stage.retire(closed, settings)
