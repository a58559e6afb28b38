"""Service shape end to end: real PostgreSQL, real `ovencast worker` processes.

Covers issue #4's must-shows: a job fans out to two workers and completes; a worker killed
with SIGKILL mid-product loses nothing (the product is retried elsewhere, trained once,
one active version); two jobs for the same products never train one product in two
processes at once; the event stream carries every product's events in order.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from conftest import cli_command, import_directory, make_settings, settings_env
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import ModelVersion, TrainingJob, TrainingRun
from ovencast.db.urls import libpq_conninfo
from ovencast.events.listen import job_events
from ovencast.forecasting.families.lightgbm_global import LightGBMModel
from ovencast.jobs import service as jobs_service
from ovencast.models.service import load_verified
from ovencast.settings import Settings
from ovencast.store import store_for
from ovencast.tenants import service as tenants_service

pytestmark = pytest.mark.postgres

KIEL_PRODUCTS = ["bread", "cake", "croissant", "rolls"]
JOB_TIMEOUT_S = 240.0


class Workers:
    """`ovencast worker` subprocesses, stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.env = settings_env(settings, WORKER_HEARTBEAT_SECONDS="1",
                                WORKER_STALLED_AFTER_SECONDS="4")
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> subprocess.Popen[bytes]:
        # The child gets its own copy of the file descriptor.
        with (self.log_dir / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(cli_command(["worker", "--name", name]),
                                       env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.processes[name] = process
        return process

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(self.log_dir.glob("*.log")))


@pytest.fixture
def service_settings(tmp_path: Path, pg_migrated_url: str) -> Settings:
    return make_settings(tmp_path / "home", pg_migrated_url, max_concurrent_training_jobs=1,
                         lock_wait_timeout_seconds=300.0)


@pytest.fixture
def workers(service_settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    (tmp_path / "logs").mkdir()
    pool = Workers(service_settings, tmp_path / "logs")
    yield pool
    pool.stop()


@pytest.fixture
async def database(service_settings: Settings, kiel_dir: Path) -> Any:
    database = Database.open(service_settings)
    await import_directory(database, "kiel", kiel_dir, country="DE", subdivision="SH")
    try:
        yield database
    finally:
        await database.close()


async def submit(database: Database, *, products: list[str], models: list[str]) -> int:
    async with unit_of_work(database.sessions) as session:
        tenant = await tenants_service.get_tenant(session, "kiel")
        job = await jobs_service.submit_job(session, tenant, products=products, models=models)
        return job.id


async def wait_for_job(database: Database, job_id: int, workers: Workers,
                       timeout: float = JOB_TIMEOUT_S) -> TrainingJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with unit_of_work(database.sessions) as session:
            job = await session.get(TrainingJob, job_id)
            assert job is not None
            if job.status.ended:
                return job
        await asyncio.sleep(0.5)
    pytest.fail(f"job {job_id} did not end in {timeout} s\n{workers.logs()}")


async def wait_for_running(database: Database, job_id: int, workers: Workers
                           ) -> list[TrainingRun]:
    """The job's runs in status "running", as soon as there is one."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        running = [r for r in await runs_of(database, job_id) if r.status == "running"]
        if running:
            return running
        await asyncio.sleep(0.1)
    pytest.fail(f"no run of job {job_id} started in {JOB_TIMEOUT_S} s\n{workers.logs()}")


async def runs_of(database: Database, job_id: int) -> list[TrainingRun]:
    async with unit_of_work(database.sessions) as session:
        return list((await session.scalars(select(TrainingRun).where(
            TrainingRun.job_id == job_id).order_by(TrainingRun.product))).all())


async def test_job_fans_out_to_two_workers_and_streams_events_in_order(
        database: Database, workers: Workers, service_settings: Settings) -> None:
    conninfo = libpq_conninfo(service_settings.resolved_database_url)
    job_id = await submit(database, products=KIEL_PRODUCTS, models=["seasonal_naive"])
    events: list[dict[str, Any]] = []
    async with job_events(conninfo, job_id) as stream:
        workers.start("w1")
        workers.start("w2")

        async def collect() -> None:
            async for event in stream:
                events.append(event.model_dump(mode="json"))

        await asyncio.wait_for(collect(), timeout=JOB_TIMEOUT_S)
    job = await wait_for_job(database, job_id, workers)
    assert job.status == "succeeded", workers.logs()
    runs = await runs_of(database, job_id)
    assert {r.product: r.status for r in runs} == dict.fromkeys(KIEL_PRODUCTS, "trained")
    assert len({(r.details or {})["worker"] for r in runs}) == 2, "both workers took products"
    assert events[-1] == {"type": "job", "job_id": job_id, "status": "succeeded",
                          "error": None}
    for product in KIEL_PRODUCTS:
        sequence = [e["event"] for e in events if e.get("product") == product]
        lifecycle = [e for e in sequence if e in ("queued", "started", "finished", "failed")]
        assert lifecycle == ["queued", "started", "finished"], (product, sequence)
        # Progress events (trials, backtests) come only between started and finished.
        start, end = sequence.index("started"), sequence.index("finished")
        assert all(e in ("queued", "started", "finished") for e in sequence[:start + 1]
                   + sequence[end:]), (product, sequence)


async def test_global_model_is_trained_once_and_adopted_on_every_worker(
        database: Database, workers: Workers, service_settings: Settings) -> None:
    """Issue #6 in the service shape: prepare_training_job trains the tenant's LightGBM
    boosters once and stores them with the job; each train_product task, on either
    worker, reloads them (checksum verified) and its model adopts them; once the job has
    ended the job's copy is deleted (the product artifacts hold their boosters)."""
    job_id = await submit(database, products=KIEL_PRODUCTS, models=["lightgbm"])
    workers.start("w1")
    workers.start("w2")
    job = await wait_for_job(database, job_id, workers)
    assert job.status == "succeeded", workers.logs()
    record = job.global_models
    assert record is not None, workers.logs()
    # Trained on all six Kiel products, though the job retrains four of them.
    assert record["products"] == 6
    assert record["retired"] is True
    store = store_for(service_settings)
    assert not store.exists(record["key"])
    async with unit_of_work(database.sessions) as session:
        versions = (await session.scalars(select(ModelVersion).where(
            ModelVersion.training_job_id == job_id))).all()
    assert sorted(v.product for v in versions) == sorted(KIEL_PRODUCTS)
    for version in versions:
        model = load_verified(store, version)
        assert isinstance(model, LightGBMModel), version.product
        assert model.adopted, version.product


async def test_cancelled_job_deletes_its_global_models_once_no_run_trains(
        database: Database, workers: Workers, service_settings: Settings) -> None:
    """Cancelled while a product trains: that product finishes and is recorded (it read
    the job's global models), the pending ones are cancelled, and the job's artifact is
    deleted once the last training run has ended, not before."""
    # Prophet candidates make each product take seconds: time to cancel mid-job.
    job_id = await submit(database, products=KIEL_PRODUCTS,
                          models=["lightgbm", "prophet_holidays"])
    workers.start("w1")
    running = await wait_for_running(database, job_id, workers)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    async with unit_of_work(database.sessions) as session:
        cancelled = await jobs_service.cancel_job(session, job_id)
        record = dict(cancelled.global_models or {})
    assert record.get("key"), record
    assert not record.get("retired"), record
    store = store_for(service_settings)
    assert store.exists(record["key"])  # the running product still reads it

    while time.monotonic() < deadline:
        async with unit_of_work(database.sessions) as session:
            job = await session.get(TrainingJob, job_id)
            assert job is not None
            retired = bool((job.global_models or {}).get("retired"))
        if retired:
            break
        await asyncio.sleep(0.2)
    assert retired, workers.logs()
    assert job.status == "cancelled"
    runs = {r.product: r.status for r in await runs_of(database, job_id)}
    assert runs[running[0].product] == "trained", workers.logs()
    assert "cancelled" in runs.values()
    assert set(runs.values()) <= {"trained", "cancelled"}
    assert not store.exists(record["key"])


async def test_killed_worker_product_is_retried_and_trained_once(
        database: Database, workers: Workers) -> None:
    products = ["bread", "cake"]
    # Prophet with its Optuna search takes seconds per product: long enough to kill a
    # worker in the middle of one.
    job_id = await submit(database, products=products, models=["prophet"])
    victim = workers.start("victim")
    await wait_for_running(database, job_id, workers)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    workers.start("survivor")
    job = await wait_for_job(database, job_id, workers)
    assert job.status == "succeeded", workers.logs()
    runs = await runs_of(database, job_id)
    assert {r.status for r in runs} == {"trained"}
    assert {(r.details or {})["worker"] for r in runs} != {None}
    async with unit_of_work(database.sessions) as session:
        counts = dict((await session.execute(
            select(ModelVersion.product, func.count()).group_by(ModelVersion.product))).all())
        active = dict((await session.execute(
            select(ModelVersion.product, func.count()).where(ModelVersion.is_active.is_(True))
            .group_by(ModelVersion.product))).all())
        retried = await session.scalar(text(
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'ovencast:train_product'"
            " AND attempts > 1"))
    assert counts == dict.fromkeys(products, 1), "every product trained once"
    assert active == dict.fromkeys(products, 1), "one active version each"
    assert retried is not None, "the killed product went back to the queue"
    assert retried >= 1, "the killed product went back to the queue"
    # The survivor received fitted Prophet models from its fit processes (unpickling one
    # imports prophet) without prophet's import noise.
    survivor_log = (workers.log_dir / "survivor.log").read_text(errors="replace")
    assert "Importing plotly failed" not in survivor_log


async def test_two_jobs_never_train_one_product_in_two_processes_at_once(
        database: Database, workers: Workers) -> None:
    first = await submit(database, products=KIEL_PRODUCTS, models=["seasonal_naive"])
    second = await submit(database, products=KIEL_PRODUCTS, models=["seasonal_naive"])
    workers.start("w1")
    workers.start("w2")
    for job_id in (first, second):
        job = await wait_for_job(database, job_id, workers)
        assert job.status == "succeeded", workers.logs()
    runs = await runs_of(database, first) + await runs_of(database, second)
    for product in KIEL_PRODUCTS:
        spans = sorted((r.started_at, r.finished_at) for r in runs if r.product == product)
        assert len(spans) == 2
        assert all(s and e for s, e in spans)
        (_, end_a), (start_b, _) = spans
        assert end_a is not None
        assert start_b is not None
        assert end_a <= start_b, f"{product} trained twice at once: {spans}"
    async with unit_of_work(database.sessions) as session:
        versions = (await session.execute(select(ModelVersion.product, ModelVersion.version,
                                                 ModelVersion.is_active))).all()
    for product in KIEL_PRODUCTS:
        mine = sorted((v, a) for p, v, a in versions if p == product)
        assert mine == [(1, False), (2, True)], (product, mine)


def test_worker_refuses_an_empty_database(pg_database_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", pg_database_url)
    done = subprocess.run(cli_command(["worker"]), env=settings_env(settings),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert "ovencast db upgrade" in done.stderr + done.stdout
