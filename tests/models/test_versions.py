"""Model versions: every training adds a version, the active one can be rolled back, and
with versioning disabled the version is overwritten while the store keeps a backup."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from conftest import import_directory, make_settings, one_line, train_in_process
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import ModelVersion
from ovencast.errors import Conflict, ModelNotFound
from ovencast.forecasting.families import load_model
from ovencast.models import service as models_service
from ovencast.settings import Settings
from ovencast.store import BACKUP_PREFIX, open_store, sha256_hex
from ovencast.tenants import service as tenants_service

FIRST_UNTIL = date(2024, 3, 20)  # the tiny dataset runs 2024-01-01 .. 2024-03-30


async def _versions(database: Database, product: str) -> list[ModelVersion]:
    async with unit_of_work(database.sessions) as session:
        return list((await session.scalars(select(ModelVersion).where(
            ModelVersion.product == product).order_by(ModelVersion.version))).all())


def _store(settings: Settings) -> Any:
    return open_store(settings.resolved_model_storage_path,
                      backup_enabled=settings.model_backup_enabled)


async def test_each_training_adds_a_version_and_activate_rolls_back(
        database: Database, settings: Settings, tiny_dataset: Callable[..., Path],
        run_cli: Any) -> None:
    await import_directory(database, "t1", tiny_dataset(("bread", "rolls")))
    first = await train_in_process(database, "t1", until=FIRST_UNTIL)
    second = await train_in_process(database, "t1")
    assert (first.job.status, second.job.status) == ("succeeded", "succeeded")

    versions = await _versions(database, "bread")
    assert [(v.version, v.is_active) for v in versions] == [(1, False), (2, True)]
    assert [v.data_end for v in versions] == [FIRST_UNTIL, date(2024, 3, 30)]
    assert versions[0].artifact_key != versions[1].artifact_key
    store = _store(settings)
    for version in versions:  # both artifacts are kept and verify
        assert store.load(version.artifact_key, expected_sha256=version.sha256)
    assert second.runs["bread"].model_version_id == versions[1].id

    result = run_cli(["activate", "--tenant", "t1", "--product", "bread", "--version", "1"],
                     settings)
    assert result.returncode == 0, result.stderr
    assert "version 1" in one_line(result.stdout)

    versions = await _versions(database, "bread")
    assert [(v.version, v.is_active) for v in versions] == [(1, True), (2, False)]
    # The other product is untouched.
    assert [(v.version, v.is_active) for v in await _versions(database, "rolls")] == [
        (1, False), (2, True)]

    # And forward again, in-process; an unknown version is a clean 404.
    async with unit_of_work(database.sessions) as session:
        tenant = await tenants_service.get_tenant(session, "t1")
        await models_service.activate(session, tenant, "bread", 2)
        with pytest.raises(ModelNotFound, match="no version 7"):
            await models_service.activate(session, tenant, "bread", 7)
    versions = await _versions(database, "bread")
    assert [(v.version, v.is_active) for v in versions] == [(1, False), (2, True)]


async def test_without_versioning_the_version_is_overwritten_and_backed_up(
        tmp_path: Path, database_url: str, tiny_dataset: Callable[..., Path]) -> None:
    settings = make_settings(tmp_path / "home", database_url,
                             model_versioning_enabled=False, model_backup_enabled=True)
    database = Database.open(settings)
    try:
        await database.ready()
        await import_directory(database, "t1", tiny_dataset(("bread",)))
        await train_in_process(database, "t1", until=FIRST_UNTIL)
        [before] = await _versions(database, "bread")
        second = await train_in_process(database, "t1")
        [after] = await _versions(database, "bread")
    finally:
        await database.close()

    assert second.job.status == "succeeded"
    assert after.id == before.id
    assert (after.version, after.is_active) == (1, True)
    assert after.data_end == date(2024, 3, 30) != before.data_end
    assert after.sha256 != before.sha256
    # The new artifact got a key of its own (nothing is overwritten before the database
    # points at it); the replaced one left its place for the backups.
    assert after.artifact_key != before.artifact_key
    store = _store(settings)
    assert not store.exists(before.artifact_key)
    current = store.load(after.artifact_key, expected_sha256=after.sha256)
    assert load_model(current).family == "seasonal_naive"
    # The replaced artifact is kept: exactly one backup, holding the old bytes.
    backups = store.list(f"{BACKUP_PREFIX}/")
    assert len(backups) == 1
    old = store.load(backups[0], expected_sha256=before.sha256)
    assert sha256_hex(old) == before.sha256


@pytest.mark.postgres
async def test_killed_training_without_versioning_leaves_the_active_model_loadable(
        tmp_path: Path, pg_migrated_url: str, tiny_dataset: Callable[..., Path]) -> None:
    """A training killed before its transaction commits must leave the previous active
    version untouched (training/worker.py's contract). Here the worker is held up in the
    database while it records the new version: another transaction holds the row lock of
    the active version, so the worker waits until MAX_TRAINING_TIME_MINUTES kills it."""
    settings = make_settings(tmp_path / "home", pg_migrated_url,
                             model_versioning_enabled=False, model_backup_enabled=True)
    # Only the second training runs under a short limit.
    impatient = settings.model_copy(update={"max_training_time_minutes": 0.1})
    database = Database.open(settings)
    try:
        await database.ready()
        await import_directory(database, "t1", tiny_dataset(("bread",)))
        await train_in_process(database, "t1", until=FIRST_UNTIL)
        [active] = await _versions(database, "bread")

        async with database.sessions() as blocker, blocker.begin():
            await blocker.execute(select(ModelVersion).where(
                ModelVersion.id == active.id).with_for_update())
            killed = await train_in_process(database, "t1", settings=impatient)
        assert killed.runs["bread"].status == "timed_out"
        [after] = await _versions(database, "bread")
    finally:
        await database.close()

    assert (after.sha256, after.data_end) == (active.sha256, FIRST_UNTIL)
    # The version the database calls active must still load.
    _store(settings).load(after.artifact_key, expected_sha256=after.sha256)


async def _wait_for_lock_waiter(database: Database, *, timeout_s: float = 120.0) -> int:
    """The pid of the backend that waits for a lock in this database."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        async with database.engine.connect() as connection:
            pid = await connection.scalar(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid() LIMIT 1"))
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.1)
    pytest.fail("the training never waited for the locked version row")


@pytest.mark.postgres
@pytest.mark.parametrize("backups", [True, False], ids=["backups", "no-backups"])
async def test_failed_recording_without_versioning_keeps_the_active_artifact(
        tmp_path: Path, pg_migrated_url: str, tiny_dataset: Callable[..., Path],
        backups: bool) -> None:
    """The worker overwrites the active version's artifact, then loses its database
    connection while recording the new version. The transaction rolls back, so the
    database still points at the old checksum: the old artifact must still be there."""
    settings = make_settings(tmp_path / "home", pg_migrated_url,
                             model_versioning_enabled=False, model_backup_enabled=backups)
    database = Database.open(settings)
    try:
        await database.ready()
        await import_directory(database, "t1", tiny_dataset(("bread",)))
        await train_in_process(database, "t1", until=FIRST_UNTIL)
        [active] = await _versions(database, "bread")

        async with database.sessions() as blocker, blocker.begin():
            await blocker.execute(select(ModelVersion).where(
                ModelVersion.id == active.id).with_for_update())
            training = asyncio.create_task(train_in_process(database, "t1"))
            worker_backend = await _wait_for_lock_waiter(database)
            await blocker.execute(text("SELECT pg_terminate_backend(:pid)"),
                                  {"pid": worker_backend})
        failed = await training
        [after] = await _versions(database, "bread")
    finally:
        await database.close()

    assert failed.runs["bread"].status == "failed"
    assert failed.runs["bread"].reason
    assert (after.sha256, after.data_end) == (active.sha256, FIRST_UNTIL)
    _store(settings).load(after.artifact_key, expected_sha256=after.sha256)


async def test_thirty_concurrent_activations_take_turns(
        database: Database, tiny_dataset: Callable[..., Path]) -> None:
    """Each activation either wins or is told to try again (409): never a server error
    from the one-active index, and exactly one version is active afterwards."""
    await import_directory(database, "t1", tiny_dataset(("bread",)))
    await train_in_process(database, "t1", until=FIRST_UNTIL)
    await train_in_process(database, "t1")

    async def activate(version: int) -> str:
        try:
            async with unit_of_work(database.sessions) as session:
                tenant = await tenants_service.get_tenant(session, "t1")
                await models_service.activate(session, tenant, "bread", version)
        except Conflict:
            return "conflict"
        return "activated"

    outcomes = await asyncio.gather(*(activate(1 + i % 2) for i in range(30)))

    assert set(outcomes) <= {"activated", "conflict"}
    assert outcomes.count("activated") >= 1
    versions = await _versions(database, "bread")
    assert sum(v.is_active for v in versions) == 1
