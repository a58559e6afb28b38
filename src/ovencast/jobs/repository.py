from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from procrastinate.jobs import Status as QueueStatus
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from ovencast.db.tables import TrainingJob, TrainingRun
from ovencast.db.tables.training_run import OPEN_RUNS_SQL
from ovencast.jobs.states import JobStatus

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


# The runs that have not ended, the values written out (not parameters): the partial
# index on them serves every plan of the statement (migration 0011).
_OPEN_RUN = sa.text(f"{TrainingRun.__tablename__}.{OPEN_RUNS_SQL}")


async def has_open_runs(session: AsyncSession, job_id: int) -> bool:
    """Whether any of the job's runs has not ended: one query on the open runs' index,
    where loading the runs costs a row per product."""
    return await session.scalar(open_runs_query(job_id)) is not None


def open_runs_query(job_id: int) -> sa.Select[int]:
    return select(TrainingRun.id).where(TrainingRun.job_id == job_id, _OPEN_RUN).limit(1)


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


def _argument(table: Any, name: str) -> sa.ColumnElement[int]:
    """A queue task's integer argument, its name written out as the expression index on
    it has it (migration 0011): as a parameter, no plan could use the index."""
    return sa.cast(table.c.args.op("->>")(sa.literal_column(f"'{name}'")), sa.Integer)


async def orphaned_runs(session: AsyncSession, task_name: str
                        ) -> Sequence[tuple[int, int, str]]:
    """(run id, job id, queue status) of runs still pending or running whose queue task
    has ended and is not queued again: nothing will ever record their outcome
    (PostgreSQL only: the queue's table)."""
    rows = await session.execute(orphaned_runs_query(task_name))
    return [(int(r), int(j), str(q)) for r, j, q in rows.all()]


def orphaned_runs_query(task_name: str) -> sa.Select[int, int, str]:
    """`orphaned_runs`' statement: for each open run (their partial index), one lookup
    of its queue tasks (the expression index on the run id), whatever the tables'
    sizes (`_task_states`)."""
    tasks = _task_states(task_name, "run_id", TrainingRun.id, _ENDED)
    return (select(TrainingRun.id, TrainingRun.job_id, tasks.c.ended)
            .join(tasks, sa.true())
            .where(_OPEN_RUN, tasks.c.ended.is_not(None), ~tasks.c.waiting))


def _task_states(task_name: str, argument: str, owner: Any, ended: Sequence[str]) -> Any:
    """For the row whose id is `owner` (a run's, a job's), over its `task_name` tasks: an
    `ended` status one of them has (`ended`: NULL when none has) and whether one is
    still `waiting` (to do, doing, aborting). A lateral aggregate, so that it is one
    index lookup per owner row: as a join or NOT EXISTS, PostgreSQL's plans hashed the
    queue's whole table (its ended tasks are never deleted) at every call."""
    status = _text(_QUEUE_JOBS.c.status)
    return (select(func.max(status).filter(status.in_(ended)).label("ended"),
                   func.bool_or(status.in_(_WAITING)).label("waiting"))
            .where(_QUEUE_JOBS.c.task_name == task_name,
                   _argument(_QUEUE_JOBS, argument) == owner)
            .lateral("tasks"))


async def orphaned_jobs(session: AsyncSession, task_name: str) -> Sequence[int]:
    """Queued jobs whose preparation task has ended unfinished (failed, cancelled,
    aborted) and is not queued again."""
    tasks = _task_states(task_name, "job_id", TrainingJob.id,
                         [s.value for s in (QueueStatus.FAILED, QueueStatus.CANCELLED,
                                            QueueStatus.ABORTED)])
    rows = await session.scalars(
        select(TrainingJob.id).join(tasks, sa.true())
        .where(TrainingJob.status == JobStatus.QUEUED, tasks.c.ended.is_not(None),
               ~tasks.c.waiting))
    return list(rows.all())
