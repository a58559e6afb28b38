"""A job trains on the data it validated (issue #15): the service shape's preparation
stores each product's validated history, a worker rebuilds its task from that (checksum
verified) whatever was uploaded since, the job records the data version it read, and the
snapshot is deleted once the job has ended."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from conftest import import_directory
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import Tenant, TrainingJob, TrainingRun
from ovencast.errors import ChecksumMismatch, Conflict, InvalidDataset
from ovencast.jobs import service as jobs_service
from ovencast.jobs.endpoints import job_detail
from ovencast.settings import Settings
from ovencast.sources.database import DatabaseSource
from ovencast.store import store_for
from ovencast.tenants import service as tenants_service
from ovencast.training import job_artifacts, snapshot
from ovencast.training.prepare import load_job_data, prepare_job, product_task
from ovencast.training.task import ProductTask

PRODUCTS = ["bread", "rolls"]
DAYS = 120
MODELS = ("seasonal_naive",)  # no tenant stage: the snapshot is all these tests need


async def prepare(database: Database, settings: Settings) -> tuple[int, list[ProductTask]]:
    async with unit_of_work(database.sessions) as session:
        tenant = await tenants_service.get_tenant(session, "t1")
        job = await jobs_service.new_job(session, tenant, models=MODELS)
        prepared = await prepare_job(session, tenant, job, settings=settings,
                                     store_histories=True)
    return prepared.job_id, prepared.tasks


async def rebuild(database: Database, settings: Settings, job_id: int, product: str
                  ) -> ProductTask:
    """What the service shape's `train_product` task does first."""
    async with unit_of_work(database.sessions) as session:
        tenant = await tenants_service.get_tenant(session, "t1")
        job = await jobs_service.get_job(session, job_id)
        run = await run_of(session, job_id, product)
        return await product_task(tenant, job, run, settings=settings)


async def run_of(session: AsyncSession, job_id: int, product: str) -> TrainingRun:
    found = await session.scalars(select(TrainingRun).where(
        TrainingRun.job_id == job_id, TrainingRun.product == product))
    run: TrainingRun = found.one()
    return run


async def test_a_worker_trains_on_the_data_the_job_validated_not_on_a_later_upload(
        database: Database, settings: Settings, tiny_dataset: Callable[..., Path]) -> None:
    first = await import_directory(database, "t1", tiny_dataset(PRODUCTS, days=DAYS))
    job_id, tasks = await prepare(database, settings)
    prepared = {task.product: task for task in tasks}
    # Another upload while the job runs: every value of bread and rolls changes.
    later = await import_directory(database, "t1", tiny_dataset(
        PRODUCTS, days=DAYS, seed=99, name="later"))
    assert later.sales.changed > 0

    for product in PRODUCTS:
        task = await rebuild(database, settings, job_id, product)
        pd.testing.assert_frame_equal(task.history, prepared[product].history)
        assert task.regressors == prepared[product].regressors
    async with unit_of_work(database.sessions) as session:
        job = await jobs_service.get_job(session, job_id)
        assert job.data_snapshot is not None
        assert job.data_snapshot["data_version"] == first.import_id != later.import_id
        assert (await job_detail(session, job_id)).data_version == first.import_id
    # A job prepared now reads the new data (so the comparison above could fail).
    _, now = await prepare(database, settings)
    assert not now[0].history.equals(prepared[now[0].product].history)


async def test_a_tampered_snapshot_is_refused(
        database: Database, settings: Settings, tiny_dataset: Callable[..., Path]) -> None:
    await import_directory(database, "t1", tiny_dataset(PRODUCTS, days=DAYS))
    job_id, _ = await prepare(database, settings)
    async with unit_of_work(database.sessions) as session:
        run = await run_of(session, job_id, "bread")
        assert run.data_snapshot is not None
        key = run.data_snapshot["key"]
    path = Path(settings.resolved_model_storage_path) / key
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ChecksumMismatch, match="failed its checksum"):
        await rebuild(database, settings, job_id, "bread")


async def test_a_run_without_a_snapshot_is_refused_with_the_reason(
        database: Database, settings: Settings, tiny_dataset: Callable[..., Path]) -> None:
    await import_directory(database, "t1", tiny_dataset(PRODUCTS, days=DAYS))
    job_id, _ = await prepare(database, settings)
    async with unit_of_work(database.sessions) as session:
        (await run_of(session, job_id, "bread")).data_snapshot = None  # an older version's
    with pytest.raises(InvalidDataset, match="submit the job again"):
        await rebuild(database, settings, job_id, "bread")


async def test_the_snapshot_is_deleted_once_the_job_has_ended(
        database: Database, settings: Settings, tiny_dataset: Callable[..., Path]) -> None:
    await import_directory(database, "t1", tiny_dataset(PRODUCTS, days=DAYS))
    job_id, _ = await prepare(database, settings)
    store = store_for(settings)
    async with unit_of_work(database.sessions) as session:
        job = await jobs_service.get_job(session, job_id)
        assert job.data_snapshot is not None
        prefix = job.data_snapshot["prefix"]
        assert len(store.list(prefix)) == len(PRODUCTS)
        job_artifacts.retire(job, settings)  # not retired yet: nothing deleted
        assert len(store.list(prefix)) == len(PRODUCTS)
        assert jobs_service.mark_job_artifacts_retired(job, runs=[])
    job_artifacts.retire(job, settings)
    assert store.list(prefix) == []
    job_artifacts.retire(job, settings)  # idempotent


async def test_the_embedded_shape_records_the_version_and_stores_nothing(
        database: Database, settings: Settings, tiny_dataset: Callable[..., Path]) -> None:
    first = await import_directory(database, "t1", tiny_dataset(PRODUCTS, days=DAYS))
    async with unit_of_work(database.sessions) as session:
        tenant = await tenants_service.get_tenant(session, "t1")
        job = await jobs_service.new_job(session, tenant, models=MODELS)
        prepared = await prepare_job(session, tenant, job, settings=settings)
        job = await jobs_service.get_job(session, prepared.job_id)
        assert job.data_snapshot == {"data_version": first.import_id}
    assert prepared.tasks
    assert all(not task.history.empty for task in prepared.tasks)


class _ImportingMeanwhile(DatabaseSource):
    """The real database source, with an import committing between each two reads of
    the data version (what a concurrent upload does)."""

    def __init__(self, session: AsyncSession, *, changes: int) -> None:
        super().__init__(session)
        self.changes, self.calls = changes, 0

    async def data_version(self, tenant_name: str) -> int | None:
        self.calls += 1
        real = await super().data_version(tenant_name)
        assert real is not None
        return real + min(self.calls // 2, self.changes)


@pytest.mark.parametrize("changes", [1, 3])
async def test_a_job_reads_again_when_an_import_commits_while_it_reads(
        database: Database, settings: Settings, tiny_dataset: Callable[..., Path],
        changes: int) -> None:
    first = await import_directory(database, "t1", tiny_dataset(PRODUCTS, days=DAYS))
    async with unit_of_work(database.sessions) as session:
        tenant = (await session.scalars(select(Tenant))).one()
        job = TrainingJob(tenant_id=tenant.id, models=list(MODELS))
        source = _ImportingMeanwhile(session, changes=changes)
        if changes < 3:
            loaded = await load_job_data(source, tenant, job, settings=settings)
            assert source.calls == 4  # read twice
            assert loaded.data_version == first.import_id + 1  # what the second read saw
        else:
            with pytest.raises(Conflict, match="changed each of the 3 times"):
                await load_job_data(source, tenant, job, settings=settings)


def test_two_preparations_of_one_job_keep_each_others_files(settings: Settings) -> None:
    """A preparation taken as stalled while it ran is delivered again: each delivery's
    files have keys of their own under the job's prefix, and the one that loses (it finds
    the job prepared) deletes only its own; a failed job's prefix goes whole."""
    history = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=3),
                            "y": [1.0, 2.0, 3.0], "closed": False})
    first = snapshot.save_histories(settings, "t1", 7, {"bread": history})
    second = snapshot.save_histories(settings, "t1", 7, {"bread": history.copy()})
    assert first["bread"]["key"] != second["bread"]["key"]
    snapshot.discard_saved(settings, second, 7)
    pd.testing.assert_frame_equal(snapshot.load_history(settings, first["bread"]), history)
    store = store_for(settings)
    assert store.list(snapshot.job_data_prefix("t1", 7)) == [store.uri_for(first["bread"]["key"])]
    snapshot.discard(settings, "t1", 7)
    assert store.list(snapshot.job_data_prefix("t1", 7)) == []
