from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.db.tables import TrainingJob, TrainingRun


async def get_job(session: AsyncSession, job_id: int) -> TrainingJob | None:
    return await session.get(TrainingJob, job_id)


async def get_run(session: AsyncSession, run_id: int) -> TrainingRun | None:
    return await session.get(TrainingRun, run_id)


async def runs_of(session: AsyncSession, job_id: int) -> Sequence[TrainingRun]:
    return (await session.scalars(select(TrainingRun).where(TrainingRun.job_id == job_id)
                                  .order_by(TrainingRun.product))).all()


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
