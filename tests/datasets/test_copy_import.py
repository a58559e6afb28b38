"""Large imports into PostgreSQL go through COPY (datasets/repository.py, COPY_MIN_ROWS):
they store exactly the rows and history the executemany batches store, and a failure
later in the unit of work leaves nothing behind. SQLite keeps executemany batches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from conftest import PG_HOST, PG_PORT, PG_USER, make_settings
from ovencast.datasets import repository
from ovencast.datasets import service as datasets_service
from ovencast.datasets.history import ChangeCounts, ImportMode, SeriesKind, Target
from ovencast.datasets.reader import parse_dataset
from ovencast.db.runtime import Database
from ovencast.db.session import DATABASE_ERRORS, unit_of_work
from ovencast.db.tables import (
    DatasetImport,
    DatasetImportChange,
    RegressorObservation,
    SalesObservation,
)
from ovencast.tenants import service as tenants_service

START = date(2020, 1, 1)
# 3 products x 2,000 days: the service upserts in chunks of KEYS_PER_QUERY (4,000), and
# each chunk, and the 2,000-day weather column, is over COPY_MIN_ROWS.
PRODUCTS, DAYS = 3, 2_000
STAGING = "ovencast_staging_sales_observations"


class _Failure(Exception):
    """Raised inside a unit of work after an import's COPY."""


@pytest.fixture
def backend() -> str:
    """PostgreSQL only (conftest's `database` on this backend): fails under CI=true when
    the server is down, as every PostgreSQL test."""
    return "postgres"


def _sales(products: range, days: range, shift: int) -> str:
    return "date,product,quantity\n" + "".join(
        f"{START + timedelta(days=d)},p{p},{(d * 7 + p + shift) % 53}\n"
        for p in products for d in days)


def _weather(days: range, shift: int) -> str:
    """temperature_c, with an empty cell every 7th day (a NULL value)."""
    return "date,temperature_c\n" + "".join(
        f"{START + timedelta(days=d)},{'' if d % 7 == 0 else (d + shift) % 31}\n"
        for d in days)


async def _import(database: Database, tenant: str, texts: dict[str, str],
                  mode: ImportMode = ImportMode.MERGE
                  ) -> tuple[datasets_service.ImportSummary, bool]:
    """The import's summary, and whether its transaction made the COPY staging table."""
    async with unit_of_work(database.sessions) as session:
        row = await tenants_service.ensure_tenant(session, tenant)
        summary = await datasets_service.import_dataset(
            session, row, parse_dataset(texts), source="test", mode=mode)
        return summary, await _staging_exists(session)


async def _staging_exists(session: Any) -> bool:
    found = await session.scalar(text(f"SELECT to_regclass('pg_temp.{STAGING}') IS NOT NULL"))
    return bool(found)


async def _restore(database: Database, tenant: str, import_id: int) -> DatasetImport:
    async with unit_of_work(database.sessions) as session:
        row = await tenants_service.get_tenant(session, tenant)
        return await datasets_service.restore_import(session, row, import_id)


async def _stored(database: Database, tenant: str) -> dict[str, list[tuple[Any, ...]]]:
    """The tenant's sales, regressor values and history (each import by its position
    among the tenant's imports, its rows in id order), without ids."""
    async with unit_of_work(database.sessions) as session:
        row = await tenants_service.get_tenant(session, tenant)
        sales = (await session.execute(
            select(SalesObservation.product, SalesObservation.date, SalesObservation.quantity)
            .where(SalesObservation.tenant_id == row.id)
            .order_by(SalesObservation.product, SalesObservation.date))).all()
        regressors = (await session.execute(
            select(RegressorObservation.name, RegressorObservation.source,
                   RegressorObservation.date, RegressorObservation.value)
            .where(RegressorObservation.tenant_id == row.id)
            .order_by(RegressorObservation.name, RegressorObservation.date))).all()
        change = DatasetImportChange
        history = (await session.execute(
            select(change.import_id, change.series, change.name, change.source, change.date,
                   change.change, change.previous)
            .join(DatasetImport, DatasetImport.id == change.import_id)
            .where(DatasetImport.tenant_id == row.id)
            .order_by(change.import_id, change.id))).all()
    positions = {import_id: n for n, import_id in enumerate(sorted({h[0] for h in history}))}
    return {"sales": [tuple(r) for r in sales], "regressors": [tuple(r) for r in regressors],
            "history": [(positions[h[0]], *h[1:]) for h in history]}


async def _scenario(database: Database, tenant: str) -> list[tuple[Any, ...]]:
    """First import, a merge that changes and adds values, a replace that removes rows,
    and restores of both: what each did, and whether it went through COPY."""
    done: list[tuple[Any, ...]] = []
    first, copied = await _import(database, tenant, {
        "sales.csv": _sales(range(PRODUCTS), range(DAYS), 0),
        "weather.csv": _weather(range(DAYS), 0)})
    done.append((first.sales, first.regressors, copied))
    merged, copied = await _import(database, tenant, {
        "sales.csv": _sales(range(PRODUCTS), range(DAYS // 2, DAYS + 500), 1),
        "weather.csv": _weather(range(DAYS // 2, DAYS + 500), 1)})
    done.append((merged.sales, merged.regressors, copied))
    replaced, copied = await _import(database, tenant, {
        "sales.csv": _sales(range(2), range(0, DAYS, 2), 0),
        "weather.csv": _weather(range(0, DAYS, 3), 0)}, ImportMode.REPLACE)
    done.append((replaced.sales, replaced.regressors, copied))
    for undone in (replaced, merged):
        restore = await _restore(database, tenant, undone.import_id)
        done.append((ChangeCounts(restore.sales_added, restore.sales_changed,
                                  restore.sales_removed),
                     ChangeCounts(restore.regressors_added, restore.regressors_changed,
                                  restore.regressors_removed)))
    return done


async def test_copy_stores_the_rows_and_history_executemany_batches_store(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    copy_min_rows = repository.COPY_MIN_ROWS
    by_copy = await _scenario(database, "copy")
    monkeypatch.setattr(repository, "COPY_MIN_ROWS", 10**9)  # every write executemany
    by_batches = await _scenario(database, "batches")

    # The same counts; only the COPY tenant's imports made the staging table.
    assert [d[:2] for d in by_copy] == [d[:2] for d in by_batches]
    assert [d[2] for d in by_copy[:3]] == [True, True, True]
    assert [d[2] for d in by_batches[:3]] == [False, False, False]
    first, merged, replaced, undo_replace, _ = by_copy
    assert first[:2] == (ChangeCounts(added=PRODUCTS * DAYS), ChangeCounts(added=DAYS))
    assert merged[0].changed >= copy_min_rows
    assert merged[0].added == PRODUCTS * 500
    assert replaced[0].removed >= copy_min_rows
    assert replaced[1].removed >= copy_min_rows
    assert undo_replace[0].added == replaced[0].removed

    copy, batches = await _stored(database, "copy"), await _stored(database, "batches")
    assert copy == batches
    # The restore of the merge brought back the first import's rows.
    assert len(copy["sales"]) == PRODUCTS * DAYS
    assert {source for _, source, _, _ in copy["regressors"]} == {"weather"}
    assert any(value is None for *_, value in copy["regressors"])
    assert len(copy["history"]) == sum(c.added + c.changed + c.removed
                                       for counts in by_copy for c in counts[:2])


async def test_a_failure_after_the_copy_leaves_the_tenants_rows_and_history_untouched(
        database: Database) -> None:
    texts = {"sales.csv": _sales(range(PRODUCTS), range(DAYS), 0),
             "weather.csv": _weather(range(DAYS), 0)}
    await _import(database, "t1", texts)
    before = await _stored(database, "t1")
    changed = {"sales.csv": _sales(range(PRODUCTS), range(DAYS // 2, DAYS + 500), 1),
               "weather.csv": _weather(range(DAYS // 2, DAYS + 500), 1)}

    async def import_then_fail() -> None:
        async with unit_of_work(database.sessions) as session:
            tenant = await tenants_service.get_tenant(session, "t1")
            await datasets_service.import_dataset(session, tenant, parse_dataset(changed),
                                                  source="test")
            assert await _staging_exists(session)
            raise _Failure("after the COPY, before the commit")

    with pytest.raises(_Failure):
        await import_then_fail()

    assert await _stored(database, "t1") == before
    async with unit_of_work(database.sessions) as session:
        assert not await _staging_exists(session)
        imports = await datasets_service.list_imports(
            session, await tenants_service.get_tenant(session, "t1"))
    assert len(imports) == 1
    # The next import on the pool's connections starts from a clean slate.
    again, copied = await _import(database, "t1", changed)
    assert copied
    # (shift 1 changes every quantity of the days both files have)
    assert again.sales == ChangeCounts(added=PRODUCTS * 500,
                                       changed=PRODUCTS * (DAYS - DAYS // 2))



@pytest.mark.parametrize("path", ["copy", "executemany"])
async def test_a_connection_lost_before_a_write_is_a_database_outage(
        database: Database, monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """The server ends the session's connection (as a restart would): the write raises
    what callers retry as an outage (DATABASE_ERRORS), and the rollback does not fail."""
    if path == "executemany":
        monkeypatch.setattr(repository, "COPY_MIN_ROWS", 10**9)
    targets = [Target("bread", START + timedelta(days=d), 1.0) for d in range(DAYS)]

    async def write_after_the_server_ended_the_connection() -> None:
        async with unit_of_work(database.sessions) as session:
            tenant = await tenants_service.ensure_tenant(session, "t1")
            pid = await session.scalar(text("SELECT pg_backend_pid()"))
            admin = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER,
                                          database="postgres")
            try:
                await admin.execute("SELECT pg_terminate_backend($1)", pid)
            finally:
                await admin.close()
            # Until the client has seen the connection close (racing it, asyncpg says
            # "another operation is in progress", on either path).
            raw = await (await session.connection()).get_raw_connection()
            for _ in range(500):
                if raw.driver_connection.is_closed():
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the client did not see its connection closed within 5 s")
            await repository.upsert_rows(session, tenant.id, SeriesKind.SALES, targets)

    with pytest.raises(DATABASE_ERRORS) as failed:
        await write_after_the_server_ended_the_connection()
    assert isinstance(failed.value, sa_exc.InterfaceError)
    assert "connection is closed" in str(failed.value)
    # The write's own error, not one of the rollback on the closed connection.
    assert failed.value.statement is not None
    assert failed.value.statement.startswith(
        "CREATE TEMP TABLE" if path == "copy" else "INSERT INTO sales_observations")
    # The pool hands out a working connection next.
    await _import(database, "t1", {"sales.csv": _sales(range(1), range(10), 0)})


# ------------------------------------------------------------------------------ SQLite
@pytest.fixture
async def sqlite_database(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Database]:
    database = Database.open(make_settings(tmp_path / "home", sqlite_url))
    await database.ready()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def inserts(sqlite_database: Database) -> Iterator[list[tuple[str, bool, int]]]:
    """(table, executemany, rows) of every INSERT the engine runs."""
    seen: list[tuple[str, bool, int]] = []

    def record(conn: Connection, cursor: Any, statement: str, parameters: Any,
               context: Any, executemany: bool) -> None:
        if statement.startswith("INSERT INTO"):
            seen.append((statement.split()[2], executemany,
                         len(parameters) if executemany else 1))

    engine: Engine = sqlite_database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


async def test_sqlite_writes_rows_and_history_in_executemany_batches(
        sqlite_database: Database, inserts: list[tuple[str, bool, int]]) -> None:
    async with unit_of_work(sqlite_database.sessions) as session:
        row = await tenants_service.ensure_tenant(session, "lite")
        summary = await datasets_service.import_dataset(session, row, parse_dataset({
            "sales.csv": _sales(range(PRODUCTS), range(DAYS), 0),
            "weather.csv": _weather(range(DAYS), 0)}), source="test")
    assert summary.sales == ChangeCounts(added=PRODUCTS * DAYS)
    for table in ("sales_observations", "regressor_observations", "dataset_import_changes"):
        batches = [(many, rows) for name, many, rows in inserts if name == table]
        assert batches, table
        assert all(many for many, _ in batches), (table, batches)
        assert max(rows for _, rows in batches) <= repository.BATCH_ROWS
    written = sum(rows for name, _, rows in inserts if name == "sales_observations")
    assert written == PRODUCTS * DAYS

