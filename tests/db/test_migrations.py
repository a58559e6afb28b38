"""Alembic migrations: head matches the ORM models on both backends, downgrade and upgrade
round-trip, and the start-up schema check says what to do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

import ovencast.db.tables  # noqa: F401  (registers every table on the metadata)
from conftest import in_thread, make_settings, one_line, run_async
from ovencast.db import migrate
from ovencast.db.base import Base
from ovencast.db.runtime import Database
from ovencast.db.session import create_engine
from ovencast.errors import SchemaNotReady


@pytest.fixture
def empty_database_url(backend: str, request: pytest.FixtureRequest) -> str:
    """A database without any schema, on each backend in turn."""
    fixture = "pg_database_url" if backend == "postgres" else "sqlite_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
async def engine(empty_database_url: str, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(make_settings(tmp_path / "home", empty_database_url))
    yield engine
    await engine.dispose()


# Objects that migrations install but the ORM does not map: the job queue's schema
# (procrastinate, PostgreSQL only) is the library's, not ours.
FOREIGN_PREFIXES = ("procrastinate",)


def _ours(name: str | None, *_: Any) -> bool:
    return not (name or "").startswith(FOREIGN_PREFIXES)


def _schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_name": _ours})
    return list(compare_metadata(context, Base.metadata))


def _table_names(connection: Connection) -> set[str]:
    return {name for name in inspect(connection).get_table_names() if _ours(name)}


def _all_table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def _differences(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as connection:
        return await connection.run_sync(_schema_differences)


async def _tables(engine: AsyncEngine, *, foreign: bool = False) -> set[str]:
    async with engine.connect() as connection:
        return await connection.run_sync(_all_table_names if foreign else _table_names)


def _revisions() -> list[str]:
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    return [rev.revision for rev in script.walk_revisions()]  # head first


async def test_upgrade_head_matches_models_and_round_trips(
        empty_database_url: str, engine: AsyncEngine) -> None:
    model_tables = set(Base.metadata.tables)

    in_thread(migrate.upgrade, empty_database_url)
    assert await migrate.current_revision(engine) == migrate.head_revision()
    assert await _tables(engine) == model_tables | {"alembic_version"}
    assert await _differences(engine) == []

    in_thread(command.downgrade, migrate.alembic_config(empty_database_url), "base")
    assert await migrate.current_revision(engine) is None
    # Downgrading removes everything the migrations created, the job queue included.
    assert await _tables(engine, foreign=True) <= {"alembic_version"}

    in_thread(migrate.upgrade, empty_database_url)
    assert await migrate.current_revision(engine) == migrate.head_revision()
    assert await _differences(engine) == []
    assert await migrate.check_schema(engine) == migrate.head_revision()


async def test_check_schema_on_empty_database_says_how_to_initialise(
        engine: AsyncEngine) -> None:
    with pytest.raises(SchemaNotReady) as raised:
        await migrate.check_schema(engine)
    assert "ovencast db upgrade" in raised.value.message
    assert "no ovencast schema" in raised.value.message


async def test_check_schema_refuses_a_revision_it_does_not_know(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        await connection.execute(text("INSERT INTO alembic_version VALUES ('f00dfeed')"))
    with pytest.raises(SchemaNotReady) as raised:
        await migrate.check_schema(engine)
    assert "f00dfeed" in raised.value.message
    assert "does not know" in raised.value.message


async def test_check_schema_says_when_the_database_is_behind(
        empty_database_url: str, engine: AsyncEngine) -> None:
    revisions = _revisions()
    if len(revisions) < 2:
        pytest.skip("only one migration exists; no older revision to be behind at")
    older = revisions[1]
    in_thread(migrate.upgrade, empty_database_url, older)
    with pytest.raises(SchemaNotReady) as raised:
        await migrate.check_schema(engine)
    assert "behind" in raised.value.message
    assert older in raised.value.message
    assert "ovencast db upgrade" in raised.value.message


async def test_embedded_database_migrates_itself(sqlite_url: str, tmp_path: Path) -> None:
    database = Database.open(make_settings(tmp_path / "home", sqlite_url))
    try:
        assert await database.ready() == migrate.head_revision()
        assert await _differences(database.engine) == []
    finally:
        await database.close()


@pytest.mark.postgres
async def test_server_database_is_never_migrated_implicitly(pg_database_url: str,
                                                            tmp_path: Path) -> None:
    database = Database.open(make_settings(tmp_path / "home", pg_database_url))
    try:
        with pytest.raises(SchemaNotReady, match="ovencast db upgrade"):
            await database.ready()
        assert await _tables(database.engine, foreign=True) == set()
    finally:
        await database.close()


@pytest.mark.postgres
def test_db_check_cli_on_empty_postgres(pg_database_url: str, tmp_path: Path,
                                        run_cli: Any) -> None:
    settings = make_settings(tmp_path / "home", pg_database_url)

    result = run_cli(["db", "check"], settings)
    assert result.returncode != 0, result.stdout
    message = one_line(result.stderr)
    assert "no ovencast schema" in message
    assert "ovencast db upgrade" in message
    assert "Traceback" not in result.stderr

    result = run_cli(["db", "upgrade"], settings)
    assert result.returncode == 0, result.stderr
    assert migrate.head_revision() in result.stdout


    async def check() -> str:
        engine = create_engine(settings)
        try:
            return await migrate.check_schema(engine)
        finally:
            await engine.dispose()

    assert run_async(check) == migrate.head_revision()
