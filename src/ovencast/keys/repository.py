from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.db.tables import ApiKey, Tenant


async def add(session: AsyncSession, key: ApiKey) -> ApiKey:
    session.add(key)
    await session.flush()
    return key


async def get(session: AsyncSession, key_id: int) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def get_with_tenant(session: AsyncSession, key_id: int
                          ) -> tuple[ApiKey, str | None] | None:
    """The key and its tenant's name (None for a global key)."""
    row = (await session.execute(
        select(ApiKey, Tenant.name).outerjoin(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(ApiKey.id == key_id))).first()
    return None if row is None else (row[0], row[1])


async def list_with_tenants(session: AsyncSession, *, tenant_id: int | None = None
                            ) -> Sequence[tuple[ApiKey, str | None]]:
    """Keys (of one tenant, or all) with their tenant's name, oldest first."""
    statement = (select(ApiKey, Tenant.name).outerjoin(Tenant, Tenant.id == ApiKey.tenant_id)
                 .order_by(ApiKey.id))
    if tenant_id is not None:
        statement = statement.where(ApiKey.tenant_id == tenant_id)
    return [(key, name) for key, name in (await session.execute(statement)).all()]


async def touch(session: AsyncSession, key_id: int, *, now: datetime, older_than: datetime
                ) -> None:
    """Set `last_used_at` unless it is already more recent than `older_than`: at most one
    write per key and period, however many requests it makes."""
    await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id,
               or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < older_than))
        .values(last_used_at=now))
