"""Alembic migrations: head matches the ORM models on both backends, downgrade and upgrade
round-trip, and the start-up schema check says what to do."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import IntegrityError
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


async def test_states_outside_the_enums_are_refused_by_the_database(
        empty_database_url: str, engine: AsyncEngine) -> None:
    in_thread(migrate.upgrade, empty_database_url)
    async with engine.begin() as connection:
        await connection.execute(text(
            "INSERT INTO tenants (id, name, time_zone, created_at) "
            "VALUES (1, 't', 'UTC', CURRENT_TIMESTAMP)"))
        await connection.execute(text(
            "INSERT INTO training_jobs (id, tenant_id, status, models, warnings, created_at) "
            "VALUES (1, 1, 'queued', '[]', '[]', CURRENT_TIMESTAMP)"))
    for statement in (
            "UPDATE training_jobs SET status = 'skipped' WHERE id = 1",
            "INSERT INTO training_runs (job_id, product, status, created_at) "
            "VALUES (1, 'bread', 'skipped', CURRENT_TIMESTAMP)"):
        with pytest.raises(IntegrityError, match="ck_training_"):
            async with engine.begin() as connection:
                await connection.execute(text(statement))


async def test_stored_artifact_uris_become_keys_relative_to_the_store(
        empty_database_url: str, engine: AsyncEngine) -> None:
    """Migration 0005: rows written with absolute URIs (before it) find their artifacts
    by key afterwards, wherever the store now is; downgrading keeps them loadable."""
    key = "kiel-0a1b2c3d4e/bread-5f6a7b8c9d/lightgbm/v000001-0123456789ab.json"
    job_key = "kiel-0a1b2c3d4e/global-models-1a2b3c4d5e/lightgbm/v000001-ba9876543210.json"
    in_thread(migrate.upgrade, empty_database_url, "0004")
    async with engine.begin() as connection:
        await connection.execute(text(
            "INSERT INTO tenants (id, name, time_zone, created_at) "
            "VALUES (1, 't', 'UTC', CURRENT_TIMESTAMP)"))
        await connection.execute(text(
            "INSERT INTO training_jobs (id, tenant_id, status, models, warnings, "
            "global_models, created_at) VALUES (1, 1, 'succeeded', '[]', '[]', :record, "
            "CURRENT_TIMESTAMP)"),
            {"record": json.dumps({"uri": f"file:///old/home/models/{job_key}",
                                   "sha256": "0" * 64, "retired": True})})
        await connection.execute(text(
            "INSERT INTO model_versions (tenant_id, product, version, family, params, "
            "metrics, baseline_metrics, details, regressors, artifact_uri, sha256, "
            "size_bytes, data_start, data_end, library_versions, is_active, created_at) "
            "VALUES (1, 'bread', 1, 'lightgbm', '{}', '{}', '{}', '{}', '[]', :uri, :sha, "
            "10, '2020-01-01', '2020-12-31', '{}', true, CURRENT_TIMESTAMP)"),
            {"uri": f"file:///old/home/models/{key}", "sha": "0" * 64})

    in_thread(migrate.upgrade, empty_database_url)
    async with engine.connect() as connection:
        assert (await connection.execute(text(
            "SELECT artifact_key FROM model_versions"))).scalar_one() == key
        record = (await connection.execute(text(
            "SELECT global_models FROM training_jobs"))).scalar_one()
    record = json.loads(record) if isinstance(record, str) else record
    assert record == {"key": job_key, "sha256": "0" * 64, "retired": True}

    in_thread(command.downgrade, migrate.alembic_config(empty_database_url), "0004")
    async with engine.connect() as connection:
        assert (await connection.execute(text(
            "SELECT artifact_uri FROM model_versions"))).scalar_one() == key
