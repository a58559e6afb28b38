"""Units of work (commit on success, roll back on error, always closed) and UTC timestamps,
on both backends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import StatementError

from ovencast.db.runtime import Database
from ovencast.db.session import is_sqlite, unit_of_work
from ovencast.db.tables import Tenant


async def _tenant_names(database: Database) -> list[str]:
    async with unit_of_work(database.sessions) as session:
        return list((await session.scalars(select(Tenant.name).order_by(Tenant.name))).all())


async def test_unit_of_work_commits_on_success(database: Database) -> None:
    async with unit_of_work(database.sessions) as session:
        session.add(Tenant(name="kept"))
    assert await _tenant_names(database) == ["kept"]


async def test_unit_of_work_rolls_back_on_error(database: Database) -> None:
    async def write_then_fail() -> None:
        async with unit_of_work(database.sessions) as session:
            session.add(Tenant(name="lost"))
            await session.flush()  # the row reached the database inside the transaction
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await write_then_fail()
    assert await _tenant_names(database) == []


async def test_timestamps_come_back_timezone_aware_in_utc(database: Database) -> None:
    berlin_noon = datetime(2024, 7, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    async with unit_of_work(database.sessions) as session:
        session.add(Tenant(name="tz", created_at=berlin_noon))
    async with unit_of_work(database.sessions) as session:
        stored = await session.scalar(select(Tenant.created_at).where(Tenant.name == "tz"))
    assert stored is not None
    assert stored.utcoffset() == timedelta(0)
    assert stored == datetime(2024, 7, 1, 10, 0, tzinfo=UTC)


async def test_naive_timestamps_are_refused(database: Database) -> None:
    async def write_naive() -> None:
        async with unit_of_work(database.sessions) as session:
            session.add(Tenant(name="naive", created_at=datetime(2024, 7, 1, 12, 0)))
            await session.flush()

    with pytest.raises(StatementError, match="naive datetime"):
        await write_naive()
    assert await _tenant_names(database) == []


async def test_no_connection_is_left_checked_out(database: Database) -> None:
    """Many concurrent units of work, some failing: afterwards the pool holds no
    checked-out connection (SQLite uses no pool: one connection per unit of work)."""

    async def work(i: int) -> None:
        async with unit_of_work(database.sessions) as session:
            await session.scalar(select(func.count()).select_from(Tenant))
            if i % 3 == 0:
                raise ValueError(i)

    results = await asyncio.gather(*(work(i) for i in range(40)), return_exceptions=True)
    assert sum(isinstance(r, ValueError) for r in results) == 14
    if not is_sqlite(database.settings.resolved_database_url):
        assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
