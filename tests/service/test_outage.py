"""Jobs always end: the database of a running job goes away for a while and comes back.
On a throwaway PostgreSQL cluster of the test's own (initdb, pg_ctl), so the outage
touches nothing else; the worker is the real `ovencast worker`."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import cli_command, import_directory, make_settings, settings_env
from ovencast.db import migrate
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import TrainingJob, TrainingRun
from ovencast.jobs import service as jobs_service
from ovencast.jobs.states import JobStatus, RunStatus
from ovencast.tenants import service as tenants_service

pytestmark = pytest.mark.postgres

OUTAGE_S = 15.0
JOB_TIMEOUT_S = 300.0
PRODUCTS = ["bread", "cake", "croissant", "rolls"]


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are required in CI")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    return found[-1].parent


def _as_postgres(args: list[str]) -> list[str]:
    """Run a server binary as the postgres user (initdb refuses root)."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    def __init__(self, root: Path) -> None:
        self.bin = _pg_bin()
        self.data = root / "data"
        self.port = _free_port()
        self.log = root / "postgres.log"
        root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        subprocess.run(_as_postgres([str(self.bin / "initdb"), "-D", str(self.data),
                                     "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
                       check=True, capture_output=True, timeout=120)

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(_as_postgres([
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
            "-t", "60", "-o", f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1",
            *args]), check=True, capture_output=True, timeout=120)

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"


@pytest.fixture
def cluster(pg_server_url: str) -> Iterator[Cluster]:
    # Not under pytest's tmp_path: the postgres user must be able to reach it.
    root = Path(tempfile.mkdtemp(prefix="ovencast-test-pg-"))
    root.chmod(0o755)
    created = Cluster(root)
    created.pg_ctl("start")
    try:
        yield created
    finally:
        subprocess.run(_as_postgres([str(created.bin / "pg_ctl"), "-D", str(created.data),
                                     "-m", "immediate", "stop"]),
                       capture_output=True, timeout=120, check=False)
        shutil.rmtree(root, ignore_errors=True)


async def _job(database: Database, job_id: int) -> tuple[TrainingJob, list[TrainingRun]]:
    async with unit_of_work(database.sessions) as session:
        job = await jobs_service.get_job(session, job_id)
        runs = list((await session.scalars(select(TrainingRun).where(
            TrainingRun.job_id == job_id))).all())
    return job, runs


def test_a_database_outage_mid_job_still_ends_the_job(cluster: Cluster, tmp_path: Path,
                                                      kiel_dir: Path) -> None:
    subprocess.run(_as_postgres([str(cluster.bin / "createdb"), "-h", "127.0.0.1", "-p",
                                 str(cluster.port), "-U", "postgres", "ovencast"]),
                   check=True, capture_output=True, timeout=60)
    settings = make_settings(tmp_path / "home", cluster.url("ovencast"),
                             max_concurrent_training_jobs=1)
    migrate.upgrade(settings.resolved_database_url)

    async def submit() -> int:
        database = Database.open(settings)
        try:
            await import_directory(database, "kiel", kiel_dir, country="DE",
                                   subdivision="SH")
            async with unit_of_work(database.sessions) as session:
                tenant = await tenants_service.get_tenant(session, "kiel")
                job = await jobs_service.submit_job(session, tenant, products=PRODUCTS,
                                                    models=["prophet_holidays"])
            return job.id
        finally:
            await database.close()

    job_id = asyncio.run(submit())
    env = settings_env(settings, WORKER_HEARTBEAT_SECONDS="1",
                       WORKER_STALLED_AFTER_SECONDS="5")
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(cli_command(["worker", "--name", "w"]), env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        asyncio.run(_outage_once_a_product_runs(cluster, settings, job_id))
        job, runs = asyncio.run(_wait_for_end(settings, job_id, worker))
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
    # The worker outlived the outage and still stops on SIGTERM, cleanly.
    assert worker.returncode == 0
    output = (tmp_path / "worker.log").read_text(errors="replace")[-6000:]
    assert job.status.ended, output
    assert job.finished_at is not None
    assert all(run.status.ended for run in runs), [(r.product, r.status) for r in runs]
    for run in runs:
        assert run.status is RunStatus.TRAINED or run.reason, (run.product, run.status)
    assert job.status in (JobStatus.SUCCEEDED, JobStatus.PARTIAL, JobStatus.FAILED)


async def _outage_once_a_product_runs(cluster: Cluster, settings: object, job_id: int
                                      ) -> None:
    database = Database.open(settings)  # type: ignore[arg-type]
    try:
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while time.monotonic() < deadline:
            _, runs = await _job(database, job_id)
            if any(run.status is RunStatus.RUNNING for run in runs):
                break
            await asyncio.sleep(0.2)
        else:
            pytest.fail("no product started training")
    finally:
        await database.close()
    cluster.pg_ctl("-m", "fast", "stop")
    await asyncio.sleep(OUTAGE_S)
    cluster.pg_ctl("start")


async def _wait_for_end(settings: object, job_id: int, worker: subprocess.Popen[bytes]
                        ) -> tuple[TrainingJob, list[TrainingRun]]:
    database = Database.open(settings)  # type: ignore[arg-type]
    try:
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                job, runs = await _job(database, job_id)
            except OSError:
                job, runs = None, []
            if job is not None and job.status.ended and all(r.status.ended for r in runs):
                return job, runs
            assert worker.poll() is None, "the worker died"
            await asyncio.sleep(1.0)
        return await _job(database, job_id)
    finally:
        await database.close()
