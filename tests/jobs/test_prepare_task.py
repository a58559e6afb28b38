"""The service shape's preparation task (queue/tasks.py prepare_training_job) delivered
twice for one job: a worker taken as stalled while it prepared, its task handed to
another. Real PostgreSQL; the task's function called in this process."""

from __future__ import annotations

from typing import Any

import pytest
from procrastinate import App, JobContext
from procrastinate.jobs import Job
from procrastinate.testing import InMemoryConnector

from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.jobs import repository as jobs_repository
from ovencast.jobs import service as jobs_service
from ovencast.jobs.states import JobStatus
from ovencast.queue import tasks
from ovencast.queue.runtime import WorkerRuntime
from ovencast.settings import Settings
from ovencast.store import store_for
from ovencast.tenants import service as tenants_service
from ovencast.training import snapshot
from ovencast.training.prepare import JobPlan

pytestmark = pytest.mark.postgres


def _context(settings: Settings, database: Database, job_id: int) -> JobContext:
    # The preparation reads only the runtime's settings and database.
    runtime = WorkerRuntime(settings=settings, database=database, publisher=None,  # type: ignore[arg-type]
                            pool=None, pump=None, sinks={})  # type: ignore[arg-type]
    job = Job(id=1, queue=jobs_service.QUEUE, lock=None, queueing_lock=None,
              task_name="ovencast:prepare_training_job", task_kwargs={"job_id": job_id})
    return JobContext(app=App(connector=InMemoryConnector()), job=job, start_timestamp=0.0,
                      abort_reason=lambda: None, additional_context={"runtime": runtime})


def _stored(settings: Settings, record: dict[str, Any]) -> list[bool]:
    store = store_for(settings)
    return [store.exists(store.uri_for(key))
            for key in (record["key"], record["serving"]["key"])]


async def test_the_preparation_that_loses_deletes_what_it_stored_and_only_that(
        pg_tenant: tuple[Settings, Database], monkeypatch: pytest.MonkeyPatch) -> None:
    """The first delivery plans the job (its tenant stage stores global models and their
    serving copy), then another delivery prepares the job to the end before the first
    stores its snapshot; the first then finds the job prepared and deletes its own files
    and global models, and nothing of the winner's, whose runs read them."""
    settings, database = pg_tenant
    async with unit_of_work(database.sessions) as session:
        tenant = await tenants_service.get_tenant(session, "t")
        job = await jobs_service.new_job(session, tenant, models=("lightgbm",))
    context = _context(settings, database, job.id)
    plans: list[JobPlan] = []
    stored = tasks.store_snapshot

    async def another_delivery_first(plan: JobPlan, *args: Any, **kwargs: Any) -> JobPlan:
        plans.append(plan)
        if len(plans) == 1:  # the first delivery: the second runs to its end meanwhile
            await tasks.prepare_training_job.func(context, job.id)
        saved = await stored(plan, *args, **kwargs)
        plans.append(saved)
        return saved

    monkeypatch.setattr(tasks, "store_snapshot", another_delivery_first)
    await tasks.prepare_training_job.func(context, job.id)

    first, second, second_saved, first_saved = plans
    assert first.global_models is not None
    assert second.global_models is not None
    loser, winner = first.global_models[1], second.global_models[1]
    assert loser["key"] != winner["key"]
    async with unit_of_work(database.sessions) as session:
        found = await jobs_service.get_job(session, job.id, reports=False)
        runs = await jobs_repository.runs_of(session, job.id)
    assert found.status is JobStatus.RUNNING
    assert found.global_models is not None
    assert found.global_models["key"] == winner["key"]
    assert _stored(settings, winner) == [True, True]
    assert _stored(settings, loser) == [False, False]
    # The snapshot: the runs read the winner's files, which are all that is left.
    store = store_for(settings)
    assert second_saved.snapshots
    assert first_saved.snapshots
    kept = sorted(store.uri_for(record["key"])
                  for record in second_saved.snapshots.values())
    assert sorted(store.list(snapshot.job_data_prefix(tenant.name, job.id))) == kept
    assert {run.product for run in runs} == {"bread", "rolls"}
