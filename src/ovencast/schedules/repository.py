"""SQL of tenant schedules, and the queue entries of scheduled work."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.db.tables import Tenant, TenantSchedule

# As jobs/service.py's defer, with a time: the task runs at `at` at the earliest.
_DEFER_AT_SQL = text("""
    SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[
        ROW(:queue, :task, 0, NULL, NULL, CAST(:args AS jsonb), CAST(:at AS timestamptz))
    ]::procrastinate_job_to_defer_v1[]))
""")


async def get(session: AsyncSession, tenant_id: int) -> TenantSchedule | None:
    return await session.scalar(select(TenantSchedule).where(
        TenantSchedule.tenant_id == tenant_id))


async def get_by_id(session: AsyncSession, schedule_id: int) -> TenantSchedule | None:
    return await session.get(TenantSchedule, schedule_id)


async def all_with_tenants(session: AsyncSession
                           ) -> Sequence[tuple[TenantSchedule, Tenant]]:
    found = await session.execute(select(TenantSchedule, Tenant).join(
        Tenant, Tenant.id == TenantSchedule.tenant_id).order_by(TenantSchedule.id))
    return [(schedule, tenant) for schedule, tenant in found.all()]


async def add(session: AsyncSession, schedule: TenantSchedule) -> TenantSchedule:
    session.add(schedule)
    await session.flush()
    return schedule


async def delete(session: AsyncSession, schedule: TenantSchedule) -> None:
    await session.delete(schedule)
    await session.flush()


async def claim(session: AsyncSession, schedule_id: int, due: datetime) -> bool:
    """Record `due` as handled, unless another worker did already (or a later time):
    True for the one caller that gets to run it."""
    result = await session.execute(
        update(TenantSchedule)
        .where(TenantSchedule.id == schedule_id,
               (TenantSchedule.last_due_at.is_(None)) | (TenantSchedule.last_due_at < due))
        .values(last_due_at=due))
    return bool(getattr(result, "rowcount", 0))


async def defer_at(session: AsyncSession, *, queue: str, task: str, at: datetime,
                   **kwargs: Any) -> int:
    job_id = await session.scalar(_DEFER_AT_SQL, {"queue": queue, "task": task,
                                                  "args": json.dumps(kwargs), "at": at})
    assert job_id is not None
    return int(job_id)
