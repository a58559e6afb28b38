"""Scheduled work: when a tenant's cron expression is due (schedules/service.py), the
service shape's periodic task on PostgreSQL (a real `ovencast worker`: fetch, retrain,
save a forecast run), and the embedded shape's `ovencast run` from cron's empty
environment."""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from conftest import cli_command, import_directory, make_settings, one_line, settings_env
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import ForecastRow, ForecastRun, Tenant, TenantSchedule, TrainingJob
from ovencast.errors import InvalidRequest
from ovencast.models.states import RunTrigger
from ovencast.schedules import service as schedules_service
from ovencast.schedules.service import check_cron, latest_due
from ovencast.tenants import service as tenants_service

WAIT_S = 180.0


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("cron", "zone", "after", "now", "due"), [
    # 03:00 Berlin is 02:00 UTC in winter.
    ("0 3 * * *", "Europe/Berlin", "2024-01-10 00:00", "2024-01-10 01:59", None),
    ("0 3 * * *", "Europe/Berlin", "2024-01-10 00:00", "2024-01-10 02:00",
     "2024-01-10 02:00"),
    # Missed for three days (workers down): run once, for the latest time.
    ("0 3 * * *", "Europe/Berlin", "2024-01-10 00:00", "2024-01-13 12:00",
     "2024-01-13 02:00"),
    # Already handled up to the latest time.
    ("0 3 * * *", "Europe/Berlin", "2024-01-13 02:00", "2024-01-13 12:00", None),
    ("*/15 * * * *", "UTC", "2024-01-10 00:00", "2024-01-10 00:31", "2024-01-10 00:30"),
    ("* * * * * */10", "UTC", "2024-01-10 00:00:05", "2024-01-10 00:00:12",
     "2024-01-10 00:00:10"),
])
def test_latest_due_time(cron: str, zone: str, after: str, now: str, due: str | None
                         ) -> None:
    found = latest_due(cron, zone, after=_utc(after), now=_utc(now))
    assert found == (None if due is None else _utc(due))


@pytest.mark.parametrize(("cron", "zone", "handled", "now", "upcoming"), [
    # 03:00 Berlin is 02:00 UTC in winter, 01:00 UTC in summer.
    ("0 3 * * *", "Europe/Berlin", "2024-01-10 00:00", "2024-01-10 01:59",
     "2024-01-10 02:00"),
    ("0 3 * * *", "Europe/Berlin", "2024-07-10 00:00", "2024-07-10 00:30",
     "2024-07-10 01:00"),
    # Missed (workers down since the 10th): due now, for the latest time it missed.
    ("0 3 * * *", "Europe/Berlin", "2024-01-10 00:00", "2024-01-13 12:00",
     "2024-01-13 02:00"),
    # Handled up to the latest time: the next one.
    ("0 3 * * *", "Europe/Berlin", "2024-01-13 02:00", "2024-01-13 12:00",
     "2024-01-14 02:00"),
    ("*/15 * * * *", "UTC", "2024-01-10 00:30", "2024-01-10 00:31", "2024-01-10 00:45"),
])
def test_next_due_time(cron: str, zone: str, handled: str, now: str, upcoming: str
                       ) -> None:
    row = TenantSchedule(cron=cron, last_due_at=_utc(handled), created_at=_utc(handled))
    assert schedules_service.next_due(row, zone, now=_utc(now)) == _utc(upcoming)
    # as the CLI and the console show it: in the tenant's zone, due now when missed
    shown = schedules_service.next_run(row, Tenant(name="t", time_zone=zone), now=_utc(now))
    assert shown.at == _utc(upcoming)
    assert shown.at.utcoffset() == ZoneInfo(zone).utcoffset(shown.at.replace(tzinfo=None))
    assert shown.due_now is (_utc(upcoming) <= _utc(now))


@pytest.mark.parametrize("cron", ["", "every day", "0 3 * *", "61 * * * *",
                                  "0 3 * * * * *", "0 3 * * " + "*" * 200])
def test_a_bad_cron_expression_is_refused(cron: str) -> None:
    with pytest.raises(InvalidRequest, match="not a cron expression"):
        check_cron(cron)


async def test_schedule_from_the_command_line(tmp_path: Path, tiny_dataset: Any,
                                              run_cli: Any) -> None:
    settings = make_settings(tmp_path / "home")  # embedded: SQLite under OVENCAST_HOME
    database = Database.open(settings)
    try:
        await database.ready()
        await import_directory(database, "t", tiny_dataset())
    finally:
        await database.close()
    shown = run_cli(["schedule", "--tenant", "t"], settings)
    assert "has no schedule" in one_line(shown.stdout)
    bad = run_cli(["schedule", "--tenant", "t", "--cron", "at dawn"], settings)
    assert bad.returncode == 1
    assert bad.stderr.startswith("error:")
    assert bad.stderr.count("error:") == 1
    assert "Traceback" not in bad.stderr
    assert "'at dawn' is not a cron expression" in one_line(bad.stderr)
    done = run_cli(["schedule", "--tenant", "t", "--cron", "0 3 * * *", "--days", "14"],
                   settings)
    assert done.returncode == 0, done.stderr
    assert "cron '0 3 * * *' in Europe/Berlin" in one_line(done.stdout)
    assert "forecast 14 days" in one_line(done.stdout)
    # the next 03:00 in the tenant's zone, not yet due
    assert re.search(r"next run \d{4}-\d\d-\d\d 03:00; last run: training job -",
                     one_line(done.stdout)), done.stdout
    cleared = run_cli(["schedule", "--tenant", "t", "--clear"], settings)
    assert "has no schedule" in one_line(cleared.stdout)


# -- the service shape: the periodic task on PostgreSQL ------------------------------------
@pytest.mark.postgres
async def test_the_periodic_task_retrains_and_saves_a_forecast_run(
        tmp_path: Path, pg_migrated_url: str, tiny_dataset: Any) -> None:
    settings = make_settings(tmp_path / "home", pg_migrated_url,
                             max_concurrent_training_jobs=1)
    database = Database.open(settings)
    log = tmp_path / "worker.log"
    worker = None
    try:
        await import_directory(database, "sched", tiny_dataset(("bread", "rolls")))
        async with unit_of_work(database.sessions) as session:
            tenant = await tenants_service.get_tenant(session, "sched")
            await schedules_service.set_schedule(session, tenant, cron="* * * * * */3",
                                                 days=7, models=["seasonal_naive"])
        env = settings_env(settings, SCHEDULE_CHECK_CRON="* * * * * *",
                           SCHEDULE_POLL_SECONDS="1", WORKER_HEARTBEAT_SECONDS="1")
        with log.open("wb") as out:
            worker = subprocess.Popen(cli_command(["worker", "--name", "scheduler"]),
                                      env=env, stdout=out, stderr=subprocess.STDOUT)
        run = await _first_scheduled_run(database, worker, log)
        async with unit_of_work(database.sessions) as session:
            job = await session.get(TrainingJob, run.training_job_id)
            schedule = await session.scalar(select(TenantSchedule))
            rows = (await session.scalars(select(ForecastRow).where(
                ForecastRow.run_id == run.id))).all()
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        await database.close()
    assert job is not None
    assert job.status == "succeeded", log.read_text()[-3000:]
    assert job.models == ["seasonal_naive"]
    assert schedule is not None
    assert schedule.last_job_id is not None
    assert run.products == ["bread", "rolls"]
    assert (run.days, run.trigger) == (7, RunTrigger.SCHEDULE)
    assert len(rows) == 14
    assert {r.version for r in rows} == {1}


async def _first_scheduled_run(database: Database, worker: subprocess.Popen[bytes],
                               log: Path) -> ForecastRun:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            pytest.fail(f"the worker exited ({worker.returncode}):\n{log.read_text()[-3000:]}")
        async with unit_of_work(database.sessions) as session:
            run = await session.scalar(select(ForecastRun).where(
                ForecastRun.trigger == RunTrigger.SCHEDULE).order_by(ForecastRun.id))
        if run is not None:
            return run
        await asyncio.sleep(0.5)
    pytest.fail(f"no scheduled forecast run in {WAIT_S} s:\n{log.read_text()[-3000:]}")


# -- the embedded shape: `ovencast run` from cron --------------------------------------------
def test_ovencast_run_works_from_crons_empty_environment(tmp_path: Path,
                                                         tiny_dataset: Any) -> None:
    """What a crontab line runs: no environment but PATH and OVENCAST_HOME, no HOME, no
    virtualenv activated, the working directory elsewhere."""
    home = tmp_path / "bakery-home"
    command = Path(sys.executable).parent / "ovencast"
    data = tiny_dataset(("bread", "rolls"), days=70)
    result = subprocess.run(
        ["env", "-i", "PATH=/usr/bin:/bin", f"OVENCAST_HOME={home}", str(command), "run",
         "--tenant", "cron", "--dir", str(data), "--days", "7", "--models",
         "seasonal_naive"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    text = one_line(result.stdout)
    assert "saved forecast run 1: 2 products, 7 days" in text
    with sqlite3.connect(home / "ovencast.db") as connection:
        runs = connection.execute("SELECT trigger, days, training_job_id FROM "
                                  "forecast_runs").fetchall()
        rows = connection.execute("SELECT count(*) FROM forecast_rows").fetchone()
    assert runs == [("schedule", 7, 1)]
    assert rows == (14,)
