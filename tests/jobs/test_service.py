"""The model choice of a training job (`jobs.service.parse_families`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from procrastinate.jobs import Status as QueueStatus
from sqlalchemy import text

from conftest import import_directory, make_settings
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import TrainingRun
from ovencast.errors import InvalidRequest
from ovencast.jobs import repository as jobs_repository
from ovencast.jobs import service as jobs_service
from ovencast.jobs.service import DEFAULT_FAMILIES, parse_families
from ovencast.jobs.states import JobStatus, RunStatus
from ovencast.settings import Settings
from ovencast.tenants import service as tenants_service


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        (None, ("auto",)),
        ([], ("auto",)),
        (["auto"], ("auto",)),
        (["prophet"], ("prophet",)),
        ([" mstl", "auto_ets ", "mstl"], ("mstl", "auto_ets")),
        (["mstl_weekly", "seasonal_naive"], ("mstl_weekly", "seasonal_naive")),
    ],
)
def test_model_choice(models: list[str] | None, expected: tuple[str, ...]) -> None:
    assert parse_families(models) == expected


def test_auto_is_the_default() -> None:
    assert DEFAULT_FAMILIES == ("auto",)


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (["crystal_ball"], "crystal_ball"),
        (["ensemble"], "built by selection"),
        (["auto", "prophet"], "cannot be combined"),
    ],
)
def test_refused_model_choice(models: list[str], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_families(models)


@pytest.mark.postgres
async def test_the_reaper_ends_runs_and_jobs_whose_queue_task_gave_up(
        pg_tenant: tuple[Settings, Database]) -> None:
    _, database = pg_tenant
    async with unit_of_work(database.sessions) as session:
        tenant = await tenants_service.get_tenant(session, "t")
        running = await jobs_service.submit_job(session, tenant, models=["seasonal_naive"])
        never_prepared = await jobs_service.submit_job(session, tenant)
        for product, status in (("bread", RunStatus.RUNNING), ("rolls", RunStatus.TRAINED)):
            session.add(TrainingRun(job_id=running.id, product=product, status=status))
        running.status = JobStatus.RUNNING
        await session.flush()
        bread = (await jobs_repository.runs_of(session, running.id))[0]
        await jobs_service.defer(session, jobs_service.TRAIN_TASK, job_id=running.id,
                                 run_id=bread.id)
        # Both tasks spent their retries (a database outage that lasted too long).
        await session.execute(text(
            "UPDATE procrastinate_jobs SET status = :failed WHERE "
            "(args->>'run_id')::int = :run OR (args->>'job_id')::int = :job"),
            {"failed": QueueStatus.FAILED.value, "run": bread.id,
             "job": never_prepared.id})
    async with unit_of_work(database.sessions) as session:
        closed = await jobs_service.reap_orphans(session)
    async with unit_of_work(database.sessions) as session:
        first = await jobs_service.get_job(session, running.id)
        second = await jobs_service.get_job(session, never_prepared.id)
        runs = {r.product: r for r in await jobs_repository.runs_of(session, running.id)}
    assert [job.id for job in closed] == [running.id]
    assert runs["bread"].status is RunStatus.FAILED
    assert runs["bread"].reason is not None
    assert "ended (failed) without recording an outcome" in runs["bread"].reason
    assert first.status is JobStatus.PARTIAL
    assert second.status is JobStatus.FAILED
    assert second.error is not None
    assert "preparation task ended" in second.error


@pytest.mark.postgres
async def test_the_fan_in_closes_the_job_once_its_last_run_has_ended(
        pg_migrated_url: str, tmp_path: Path, tiny_dataset: Callable[..., Path]) -> None:
    """Every finishing product asks whether the job is done (service shape): not while a
    run is pending or running (the job stays running), and once the last has ended the
    job is closed with the outcome of all its runs."""
    database = Database.open(make_settings(tmp_path / "home", pg_migrated_url))
    try:
        await _fan_in(database, tiny_dataset)
    finally:
        await database.close()


async def _fan_in(database: Database, tiny_dataset: Callable[..., Path]) -> None:
    await import_directory(database, "t", tiny_dataset(("bread", "rolls", "buns")))
    async with unit_of_work(database.sessions) as session:
        tenant = await tenants_service.get_tenant(session, "t")
        job = await jobs_service.new_job(session, tenant, models=("seasonal_naive",))
        for product, status in (("bread", RunStatus.PENDING), ("rolls", RunStatus.RUNNING),
                                ("buns", RunStatus.REFUSED)):
            session.add(TrainingRun(job_id=job.id, product=product, status=status))
        job.status = JobStatus.RUNNING

    async def finish(product: str, status: RunStatus) -> tuple[bool, JobStatus]:
        async with unit_of_work(database.sessions) as session:
            runs = {r.product: r for r in await jobs_repository.runs_of(session, job.id)}
            runs[product].status = status
        async with unit_of_work(database.sessions) as session:
            closed = await jobs_service.close_job_if_done(session, job.id)
        async with unit_of_work(database.sessions) as session:
            found = await jobs_service.get_job(session, job.id)
        return closed is not None, found.status

    async with unit_of_work(database.sessions) as session:
        assert await jobs_repository.has_open_runs(session, job.id)
        assert await jobs_service.close_job_if_done(session, job.id) is None
    assert await finish("bread", RunStatus.TRAINED) == (False, JobStatus.RUNNING)
    assert await finish("rolls", RunStatus.TRAINED) == (True, JobStatus.PARTIAL)
    async with unit_of_work(database.sessions) as session:
        assert not await jobs_repository.has_open_runs(session, job.id)
        # The job has ended: a late call (a retried task) closes nothing again.
        assert await jobs_service.close_job_if_done(session, job.id) is None
