"""The service shape's per-heartbeat and per-product queries stay on their indexes
(migration 0011) as a chain's tables grow: every worker's reaper asks for orphaned runs
each WORKER_HEARTBEAT_SECONDS, and every finishing product asks whether its job has an
open run. At 10,000 products the reaper's join of the open runs to the queue's tasks,
without them, took over 11 s a pass (migration 0011's docstring). Real PostgreSQL; the
plans are PostgreSQL's generic plans, the ones asyncpg's cached prepared statements end
up with."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.jobs import repository as jobs_repository
from ovencast.jobs import service as jobs_service
from ovencast.jobs.service import TRAIN_TASK
from ovencast.settings import Settings
from ovencast.tenants import service as tenants_service

pytestmark = pytest.mark.postgres

RUNS = 4000
OPEN = 40  # the last runs of the job are still open


async def _generic_plan(session: Any, statement: sa.Select[Any]) -> str:
    """EXPLAIN of `statement` as a prepared statement's generic plan (its parameters
    unknown to the planner)."""
    connection = await session.connection()
    compiled = statement.compile(dialect=connection.dialect,
                                 compile_kwargs={"render_postcompile": True})
    raw = (await connection.get_raw_connection()).driver_connection
    parameters = [compiled.params[name] for name in compiled.positiontup]
    await raw.execute("SET plan_cache_mode = force_generic_plan")
    rows = await raw.fetch(f"EXPLAIN {compiled.string}", *parameters)
    return "\n".join(row[0] for row in rows)


async def test_the_reaper_and_the_fan_in_read_the_open_runs_and_their_tasks_by_index(
        pg_tenant: tuple[Settings, Database]) -> None:
    _, database = pg_tenant
    async with unit_of_work(database.sessions) as session:
        tenant = await tenants_service.get_tenant(session, "t")
        job = await jobs_service.new_job(session, tenant, models=("seasonal_naive",))
        await session.execute(sa.text(
            "INSERT INTO training_runs (job_id, product, status, created_at) "
            "SELECT :job, 'p' || g, CASE WHEN g > :ended THEN 'pending' ELSE 'trained' "
            "END, now() FROM generate_series(1, :runs) AS g"),
            {"job": job.id, "ended": RUNS - OPEN, "runs": RUNS})
        runs = await jobs_repository.runs_of(session, job.id)
        await jobs_service.defer_many(session, TRAIN_TASK,
                                      [{"job_id": job.id, "run_id": run.id} for run in runs])
        await session.execute(sa.text(
            "UPDATE procrastinate_jobs SET status = 'succeeded' "
            "WHERE (args ->> 'run_id')::integer IN "
            "(SELECT id FROM training_runs WHERE status = 'trained')"))
    async with database.engine.connect() as connection:
        await connection.execute(sa.text("ANALYZE training_runs"))
        await connection.execute(sa.text("ANALYZE procrastinate_jobs"))
        await connection.commit()

    async with unit_of_work(database.sessions) as session:
        reaper = await _generic_plan(session, jobs_repository.orphaned_runs_query(TRAIN_TASK))
        fan_in = await _generic_plan(session, jobs_repository.open_runs_query(job.id))
        # ... and what they answer: no orphan (every open run's task is queued), an
        # open run.
        assert await jobs_repository.orphaned_runs(session, TRAIN_TASK) == []
        assert await jobs_repository.has_open_runs(session, job.id)
    assert "ix_training_runs_open" in reaper, reaper
    assert "procrastinate_jobs_ovencast_run_id_idx" in reaper, reaper
    assert "Seq Scan" not in reaper, reaper
    assert "ix_training_runs_open" in fan_in, fan_in
    assert "Seq Scan" not in fan_in, fan_in
