from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from procrastinate.jobs import Status as QueueStatus
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from ovencast.db.tables import TrainingJob, TrainingRun
from ovencast.jobs.states import JobStatus, RunStatus

# A job's validation report and warnings hold a line per product: megabytes of JSON for a
# chain. What a product's training reads of its job (several times per product) loads
# without them; touching them then raises instead of loading (decision 023).
WITHOUT_REPORTS = (defer(TrainingJob.validation_report, raiseload=True),
                   defer(TrainingJob.warnings, raiseload=True))


async def get_job(session: AsyncSession, job_id: int, *, reports: bool = True
                  ) -> TrainingJob | None:
    """The job; `reports=False`: without its validation report and warnings."""
    return await session.get(TrainingJob, job_id,
                             options=() if reports else WITHOUT_REPORTS)


async def get_run(session: AsyncSession, run_id: int) -> TrainingRun | None:
    return await session.get(TrainingRun, run_id)


async def runs_of(session: AsyncSession, job_id: int) -> Sequence[TrainingRun]:
    return (await session.scalars(select(TrainingRun).where(TrainingRun.job_id == job_id)
                                  .order_by(TrainingRun.product))).all()


async def has_open_runs(session: AsyncSession, job_id: int) -> bool:
    """Whether any of the job's runs has not ended: one indexed query that stops at the
    first, where loading the runs costs a row per product."""
    open_states = [status for status in RunStatus if not status.ended]
    found = await session.scalar(
        select(TrainingRun.id).where(TrainingRun.job_id == job_id,
                                     TrainingRun.status.in_(open_states)).limit(1))
    return found is not None


async def run_counts(session: AsyncSession, job_ids: Sequence[int]
                     ) -> dict[int, dict[str, int]]:
    """job id -> run status -> how many of the job's runs have it."""
    counts: dict[int, dict[str, int]] = {job_id: {} for job_id in job_ids}
    if not job_ids:
        return counts
    rows = await session.execute(
        select(TrainingRun.job_id, TrainingRun.status, func.count())
        .where(TrainingRun.job_id.in_(job_ids))
        .group_by(TrainingRun.job_id, TrainingRun.status))
    for job_id, status, count in rows:
        counts[job_id][status] = count
    return counts


async def jobs_of(session: AsyncSession, tenant_id: int, *, limit: int = 50
                  ) -> Sequence[TrainingJob]:
    return (await session.scalars(select(TrainingJob).where(TrainingJob.tenant_id == tenant_id)
                                  .order_by(TrainingJob.id.desc()).limit(limit))).all()


# procrastinate's job table (migration 0002), as much of it as the reaper reads.
_QUEUE_JOBS = sa.table("procrastinate_jobs", sa.column("id", sa.BigInteger),
                       sa.column("task_name", sa.String), sa.column("status", sa.String),
                       sa.column("args", sa.JSON))
_ENDED = [s.value for s in (QueueStatus.SUCCEEDED, QueueStatus.FAILED, QueueStatus.CANCELLED,
                            QueueStatus.ABORTED)]
_WAITING = [s.value for s in (QueueStatus.TODO, QueueStatus.DOING, QueueStatus.ABORTING)]


def _text(status: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """procrastinate's status column is an enum type of its own: compared as text."""
    return sa.cast(status, sa.Text)


async def orphaned_runs(session: AsyncSession, task_name: str
                        ) -> Sequence[tuple[int, int, str]]:
    """(run id, job id, queue status) of runs still pending or running whose queue task
    has ended and is not queued again: nothing will ever record their outcome
    (PostgreSQL only: the queue's table)."""
    run_arg = sa.cast(_QUEUE_JOBS.c.args.op("->>")("run_id"), sa.Integer)
    again = _QUEUE_JOBS.alias("again")
    waiting = select(again.c.id).where(
        again.c.task_name == task_name,
        sa.cast(again.c.args.op("->>")("run_id"), sa.Integer) == TrainingRun.id,
        _text(again.c.status).in_(_WAITING)).exists()
    rows = await session.execute(
        select(TrainingRun.id, TrainingRun.job_id, _text(_QUEUE_JOBS.c.status))
        .join(_QUEUE_JOBS, (_QUEUE_JOBS.c.task_name == task_name) & (run_arg == TrainingRun.id))
        .where(TrainingRun.status.in_([RunStatus.PENDING, RunStatus.RUNNING]),
               _text(_QUEUE_JOBS.c.status).in_(_ENDED), ~waiting))
    return [(int(r), int(j), str(q)) for r, j, q in rows.all()]


async def orphaned_jobs(session: AsyncSession, task_name: str) -> Sequence[int]:
    """Queued jobs whose preparation task has ended unfinished (failed, cancelled,
    aborted) and is not queued again."""
    job_arg = sa.cast(_QUEUE_JOBS.c.args.op("->>")("job_id"), sa.Integer)
    again = _QUEUE_JOBS.alias("again")
    waiting = select(again.c.id).where(
        again.c.task_name == task_name,
        sa.cast(again.c.args.op("->>")("job_id"), sa.Integer) == TrainingJob.id,
        _text(again.c.status).in_(_WAITING)).exists()
    ended = [s.value for s in (QueueStatus.FAILED, QueueStatus.CANCELLED,
                               QueueStatus.ABORTED)]
    rows = await session.scalars(
        select(TrainingJob.id)
        .join(_QUEUE_JOBS, (_QUEUE_JOBS.c.task_name == task_name) & (job_arg == TrainingJob.id))
        .where(TrainingJob.status == JobStatus.QUEUED, _text(_QUEUE_JOBS.c.status).in_(ended),
               ~waiting).distinct())
    return list(rows.all())
