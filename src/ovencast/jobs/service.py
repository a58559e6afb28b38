"""Training jobs as records: create (checking the request), fail, cancel, close with their
outcome; the service shape's queue entries (submit, fan-out, fan-in). What a job *does*
(validate, train the tenant stage, fit each product) is in `ovencast.training`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.db.base import utcnow
from ovencast.db.batches import batches
from ovencast.db.tables import Tenant, TrainingJob, TrainingRun
from ovencast.errors import Conflict, InvalidDataset, InvalidRequest, NotFound
from ovencast.events.progress import JobEvent, Queued, run_ended
from ovencast.events.publish import notify_in_transaction
from ovencast.forecasting.selection import AUTO, resolve_candidate
from ovencast.jobs import repository
from ovencast.jobs.states import JobStatus, RunStatus
from ovencast.models.states import ActivationPolicy
from ovencast.observability import tracing
from ovencast.observability.logs import get_logger
from ovencast.observability.metrics import TRAINING_JOB_DURATION
from ovencast.sources.base import DataSource
from ovencast.sources.database import DatabaseSource
from ovencast.training.task import ProductOutcome

log = get_logger(__name__)

QUEUE = "training"
PREPARE_TASK = "ovencast:prepare_training_job"
TRAIN_TASK = "ovencast:train_product"
# Automatic selection among the product class's candidates by a rolling-origin backtest
# (forecasting/selection.py); `--models prophet` is the original system's model.
DEFAULT_FAMILIES = (AUTO,)

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
# Many tasks of one name in one statement: their arguments travel as one array parameter.
_DEFER_MANY_SQL = text("""
    SELECT unnest(procrastinate_defer_jobs_v1(ARRAY(
        SELECT ROW(:queue, :task, 0, NULL, NULL, CAST(args AS jsonb),
                   NULL)::procrastinate_job_to_defer_v1
        FROM unnest(CAST(:args AS text[])) AS args)))
""")
DEFERRED_PER_STATEMENT = 5_000


def parse_families(models: Sequence[str] | None) -> tuple[str, ...]:
    """The model choice of a job: ("auto",) (the default), or the named candidates (a
    family or a variant such as "mstl_weekly") to select among. "auto" does not combine
    with names."""
    families = tuple(dict.fromkeys(m.strip() for m in (models or DEFAULT_FAMILIES) if m.strip()))
    if AUTO in families and len(families) > 1:
        raise InvalidRequest(f"'{AUTO}' selects among the product class's candidates; it "
                             "cannot be combined with named families")
    for family in families:
        if family == AUTO:
            continue
        try:
            resolve_candidate(family)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
    return families or DEFAULT_FAMILIES


async def new_job(session: AsyncSession, tenant: Tenant, *,
                  products: Sequence[str] | None = None, until: date | None = None,
                  models: Sequence[str] | None = None, source: DataSource | None = None,
                  activation: ActivationPolicy = ActivationPolicy.IF_BETTER) -> TrainingJob:
    """Check the request (families, products) and record a queued job. `source`: where
    the data comes from (default: imported data; see sources.service.open_data_source);
    `activation`: what becomes of each new version (training/promotion.py)."""
    families = parse_families(models)
    known = await (source or DatabaseSource(session)).list_products(tenant.name)
    if not known:
        raise InvalidDataset(f"tenant {tenant.name!r} has no sales data; import a dataset")
    selected = list(dict.fromkeys(products)) if products else None
    unknown = [p for p in selected or () if p not in known]
    if unknown:
        raise InvalidDataset(f"unknown product(s) {unknown} for tenant {tenant.name!r}; "
                             f"known: {', '.join(known)}")
    job = TrainingJob(tenant_id=tenant.id, status=JobStatus.QUEUED, products=selected,
                      models=list(families), until=until, warnings=[],
                      activation=activation)
    session.add(job)
    await session.flush()
    return job


async def get_job(session: AsyncSession, job_id: int, *, tenant_id: int | None = None,
                  reports: bool = True) -> TrainingJob:
    """The job, or `NotFound`. With `tenant_id`, a job of another tenant is `NotFound` in
    the very same words: job ids count across tenants, and a caller must not learn that
    another tenant's job exists. `reports=False`: without its validation report and
    warnings (`repository.WITHOUT_REPORTS`)."""
    job = await repository.get_job(session, job_id, reports=reports)
    if job is None or (tenant_id is not None and job.tenant_id != tenant_id):
        raise NotFound(f"training job {job_id} does not exist")
    return job


async def fail_job(session: AsyncSession, job_id: int, reason: str) -> TrainingJob:
    """A job that could not even start (its data could not be had): failed, with why."""
    job = await get_job(session, job_id)
    job.status, job.error, job.finished_at = JobStatus.FAILED, reason, utcnow()
    await session.flush()
    log.warning("training.job.failed", job_id=job_id, reason=reason)
    return job


async def finish_job(session: AsyncSession, job_id: int, outcomes: Sequence[ProductOutcome]
                     ) -> TrainingJob:
    """Record the outcome of runs the workers could not record themselves (timed out,
    killed) and close the job (`conclude_job`)."""
    job = await get_job(session, job_id)
    by_run = {o.run_id: o for o in outcomes}
    runs = await repository.runs_of(session, job_id)
    for run in runs:
        if run.status.ended:
            continue
        outcome = by_run.get(run.id)
        if outcome is not None and outcome.status is not RunStatus.TRAINED:
            run.status, run.reason = outcome.status, outcome.reason
            run.finished_at, run.duration_s = utcnow(), outcome.duration_s
        else:
            run.status = RunStatus.FAILED
            run.reason = "the worker ended without reporting an outcome"
            run.finished_at = utcnow()
    await conclude_job(session, job, runs)
    return job


async def conclude_job(session: AsyncSession, job: TrainingJob, runs: Sequence[TrainingRun]
                       ) -> None:
    """Every run has ended: succeeded (all trained), partial, or failed (none)."""
    trained = sum(1 for run in runs if run.status is RunStatus.TRAINED)
    mark_job_artifacts_retired(job, runs)
    job.status = (JobStatus.SUCCEEDED if trained == len(runs)
                  else JobStatus.PARTIAL if trained else JobStatus.FAILED)
    if not trained:
        job.error = "no product could be trained"
    job.finished_at = utcnow()
    if job.started_at is not None:
        TRAINING_JOB_DURATION.observe((job.finished_at - job.started_at).total_seconds())
    await session.flush()
    log.info("training.job.finished", job_id=job.id, status=job.status, trained=trained,
             products=len(runs))


def mark_job_artifacts_retired(job: TrainingJob, runs: Sequence[TrainingRun]) -> bool:
    """Record that the job's global-models artifact and its data snapshot are no longer
    read (the records stay), and its serving boosters too when none of `runs` (all
    ended) trained: no version refers to them; `training.job_artifacts.retire` deletes
    them once this has committed. False when the job has none or they were already
    retired."""
    changed = False
    models = job.global_models or {}
    if models.get("key") and not models.get("retired"):
        retired = {**models, "retired": True}
        serving = models.get("serving")
        if serving and not any(run.status is RunStatus.TRAINED for run in runs):
            retired["serving"] = {**serving, "retired": True}
        job.global_models, changed = retired, True
    snapshot = job.data_snapshot or {}
    if snapshot.get("prefix") and not snapshot.get("retired"):
        job.data_snapshot, changed = {**snapshot, "retired": True}, True
    return changed


async def cancel_job(session: AsyncSession, job_id: int) -> TrainingJob:
    """Cancel a job that has not ended: its pending runs are cancelled (queued tasks see it
    and do nothing); runs already training finish and are recorded."""
    job = await _locked_job(session, job_id)
    if job.status.ended:
        raise Conflict(f"training job {job_id} already ended ({job.status})")
    for run in await repository.runs_of(session, job_id):
        if run.status is RunStatus.PENDING:
            run.status, run.reason, run.finished_at = (RunStatus.CANCELLED, "job cancelled",
                                                       utcnow())
    job.status, job.finished_at = JobStatus.CANCELLED, utcnow()
    job.error = "cancelled by request"
    await session.flush()
    await notify_in_transaction(session, job_event(job))
    log.info("training.job.cancelled", job_id=job_id)
    return job


# -- the service shape's queue ---------------------------------------------------------------
async def defer(session: AsyncSession, task: str, *, lock: str | None = None,
                **kwargs: Any) -> int:
    """Enqueue `task(**kwargs)` inside the session's transaction. The current trace
    context (tracing on) travels with it: observability/tracing.py."""
    job_id = await session.scalar(_DEFER_SQL, {"queue": QUEUE, "task": task, "lock": lock,
                                               "args": json.dumps({**kwargs,
                                                                   **tracing.carrier()})})
    assert job_id is not None
    return int(job_id)


async def submit_job(session: AsyncSession, tenant: Tenant, *,
                     products: Sequence[str] | None = None, until: date | None = None,
                     models: Sequence[str] | None = None,
                     source: DataSource | None = None,
                     activation: ActivationPolicy = ActivationPolicy.IF_BETTER
                     ) -> TrainingJob:
    """Record a queued job and enqueue its preparation, atomically."""
    job = await new_job(session, tenant, products=products, until=until, models=models,
                        source=source, activation=activation)
    await defer(session, PREPARE_TASK, job_id=job.id)
    log.info("training.job.submitted", job_id=job.id, tenant=tenant.name)
    return job


async def defer_many(session: AsyncSession, task: str, arguments: Sequence[dict[str, Any]]
                     ) -> None:
    """Enqueue `task` once per set of `arguments`, inside the session's transaction, a few
    thousand per statement (a job of 100,000 products is 20 statements, not 100,000)."""
    trace_context = tracing.carrier()
    for batch in batches(arguments, DEFERRED_PER_STATEMENT):
        await session.execute(_DEFER_MANY_SQL, {"queue": QUEUE, "task": task,
                                                "args": [json.dumps({**a, **trace_context})
                                                         for a in batch]})


async def fan_out(session: AsyncSession, job: TrainingJob, runs: Sequence[TrainingRun]) -> None:
    """Enqueue one task per pending run (same transaction as the runs)."""
    await defer_many(session, TRAIN_TASK, [{"job_id": job.id, "run_id": run.id}
                                           for run in runs if run.status is RunStatus.PENDING])
    for run in runs:
        if run.status is RunStatus.PENDING:
            await notify_in_transaction(session, Queued(job_id=job.id, product=run.product))
        else:
            await notify_in_transaction(session, run_ended(job.id, run.product, run.status,
                                                           run.reason))


async def close_job_if_done(session: AsyncSession, job_id: int) -> TrainingJob | None:
    """Fan-in. Under a row lock on the job, so that exactly one finishing task closes it:
    when every run has ended, set the job's final status and announce it. Returns the
    job when this call closed it or retired its global models (the caller then deletes
    their artifacts once this commits: `training.job_artifacts.retire`), else None.

    A cancelled job is already closed, but runs that were training when it was cancelled
    go on and read its global-models artifact and data snapshot; the task that sees
    the last of them end retires them.

    Every finishing product calls this: while runs are open (all calls but the last) it
    answers from one query that stops at the first open run instead of loading the job's
    runs, which made a chain's fan-in cost grow with the square of its product count
    (decision 023). The query runs under the row lock, so it sees the runs that the
    lock's previous holders ended in their transactions."""
    job = await _locked_job(session, job_id, reports=False)
    if job.status.ended and job.status is not JobStatus.CANCELLED:
        return None
    if await repository.has_open_runs(session, job_id):
        return None
    runs = await repository.runs_of(session, job_id)
    if any(not run.status.ended for run in runs):
        return None
    if job.status is JobStatus.CANCELLED:
        if not mark_job_artifacts_retired(job, runs):
            return None
        await session.flush()
        return job
    await conclude_job(session, job, runs)
    await notify_in_transaction(session, job_event(job))
    return job


async def reap_orphans(session: AsyncSession) -> list[TrainingJob]:
    """End what nothing will end any more (service shape): a run whose queue task gave up
    (its retries spent on a database outage, say) is failed with the reason, and the
    fan-in runs for its job; a queued job whose preparation task gave up is failed.
    Returns the jobs closed (their global models are retired after the commit)."""
    closed: list[TrainingJob] = []
    for run_id, job_id, queue_status in await repository.orphaned_runs(session, TRAIN_TASK):
        run = await repository.get_run(session, run_id)
        assert run is not None
        run.status, run.finished_at = RunStatus.FAILED, utcnow()
        run.reason = (f"its training task ended ({queue_status}) without recording an "
                      "outcome; see the worker's log")
        await notify_in_transaction(session, run_ended(job_id, run.product, run.status,
                                                       run.reason))
        log.warning("training.run.reaped", job_id=job_id, run_id=run_id,
                    queue_status=queue_status)
        job = await close_job_if_done(session, job_id)
        if job is not None:
            closed.append(job)
    for job_id in await repository.orphaned_jobs(session, PREPARE_TASK):
        job = await fail_job(session, job_id, "its preparation task ended without "
                                              "preparing it; see the worker's log")
        await notify_in_transaction(session, job_event(job))
    return closed


def job_event(job: TrainingJob) -> JobEvent:
    return JobEvent(job_id=job.id, status=job.status, error=job.error)


async def lock_job(session: AsyncSession, job_id: int) -> TrainingJob:
    """The job, its row locked until the transaction ends (PostgreSQL; SQLite serialises
    writers anyway): its status cannot change under the caller."""
    return await _locked_job(session, job_id)


async def _locked_job(session: AsyncSession, job_id: int, *, reports: bool = True
                      ) -> TrainingJob:
    query = select(TrainingJob).where(TrainingJob.id == job_id)
    if not reports:
        query = query.options(*repository.WITHOUT_REPORTS)
    job = await session.scalar(query.with_for_update()
                               .execution_options(populate_existing=True))
    if job is None:
        raise NotFound(f"training job {job_id} does not exist")
    return job
