"""Queue tasks of scheduled work (service shape), thin edges like queue/tasks.py:

check_schedules(timestamp)      a procrastinate periodic task (SCHEDULE_CHECK_CRON, every
                                minute by default): each due tenant's schedule is claimed
                                and a training job submitted (the workers train it as
                                any other: fetching the data from the upstream services
                                when they are configured), then forecast_after_training
                                is deferred
forecast_after_training(...)    once the job has ended (re-deferred every
                                SCHEDULE_POLL_SECONDS until then): save a forecast run
                                of the schedule's days, then the automatic promotion
                                policy (AUTO_PROMOTE_AFTER_WEEKS) if set

One periodic task for all tenants, not one per tenant: docs/decisions/008-model-governance.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from procrastinate import App, Blueprint, JobContext

from ovencast.db.base import utcnow
from ovencast.db.session import unit_of_work
from ovencast.errors import failure_reason
from ovencast.jobs import service as jobs_service
from ovencast.jobs.service import QUEUE
from ovencast.observability.logs import get_logger
from ovencast.schedules import repository
from ovencast.schedules import service as schedules_service
from ovencast.schedules.run import forecast_and_promote
from ovencast.settings import Settings
from ovencast.sources.service import open_data_source

log = get_logger(__name__)
blueprint = Blueprint()

CHECK_TASK = "check_schedules"
FORECAST_TASK = "ovencast:forecast_after_training"


def _runtime(context: JobContext) -> Any:
    return context.additional_context["runtime"]


@blueprint.task(name=CHECK_TASK, queue=QUEUE, pass_context=True)
async def check_schedules(context: JobContext, timestamp: int) -> None:
    runtime = _runtime(context)
    settings: Settings = runtime.settings
    now = datetime.fromtimestamp(timestamp, UTC)
    async with unit_of_work(runtime.database.sessions) as session:
        for due in await schedules_service.claim_due(session, now=now):
            schedule, tenant = due.schedule, due.tenant
            previous = (await jobs_service.get_job(session, schedule.last_job_id)
                        if schedule.last_job_id else None)
            if previous is not None and not previous.status.ended:
                schedule.last_error = (f"{due.due:%Y-%m-%d %H:%M:%S} skipped: training job "
                                       f"{previous.id} of the previous run has not ended")
                log.warning("schedule.skipped", tenant=tenant.name, job_id=previous.id)
                continue
            try:
                async with session.begin_nested(), \
                        open_data_source(session, settings=settings) as source:
                    job = await jobs_service.submit_job(
                        session, tenant, models=schedule.models,
                        activation=schedule.activation, source=source)
            except Exception as exc:  # e.g. the sales service is down: said, not raised
                schedule.last_error = failure_reason(exc)
                log.error("schedule.submit_failed", tenant=tenant.name,
                          reason=schedule.last_error)
                continue
            schedule.last_job_id = job.id
            await repository.defer_at(session, queue=QUEUE, task=FORECAST_TASK,
                                      at=utcnow(), job_id=job.id, schedule_id=schedule.id)
            log.info("schedule.started", tenant=tenant.name, due=due.due.isoformat(),
                     job_id=job.id)


@blueprint.task(name="forecast_after_training", queue=QUEUE, pass_context=True)
async def forecast_after_training(context: JobContext, job_id: int, schedule_id: int
                                  ) -> None:
    runtime = _runtime(context)
    settings: Settings = runtime.settings
    async with unit_of_work(runtime.database.sessions) as session:
        schedule = await repository.get_by_id(session, schedule_id)
        if schedule is None:  # removed meanwhile
            return
        job = await jobs_service.get_job(session, job_id)
        if not job.status.ended:
            await repository.defer_at(
                session, queue=QUEUE, task=FORECAST_TASK,
                at=utcnow() + timedelta(seconds=settings.schedule_poll_seconds),
                job_id=job_id, schedule_id=schedule_id)
            return
    async with unit_of_work(runtime.database.sessions) as session:
        schedule = await repository.get_by_id(session, schedule_id)
        if schedule is None:
            return
        try:
            async with session.begin_nested():  # a failed run leaves no half-saved rows
                outcome = await forecast_and_promote(
                    session, schedule.tenant_id, settings=settings, days=schedule.days,
                    training_job_id=job_id)
        except Exception as exc:  # recorded on the schedule, the worker goes on
            schedule.last_error = failure_reason(exc)
            schedule.last_finished_at = utcnow()
            log.error("schedule.forecast_failed", schedule_id=schedule_id,
                      reason=schedule.last_error)
            return
        schedule.last_run_id, schedule.last_error = outcome.saved.run.id, None
        schedule.last_finished_at = utcnow()


def register_periodic(app: App, settings: Settings) -> None:
    """The periodic check, at SCHEDULE_CHECK_CRON (a setting, hence registered here
    rather than with a decorator at import time)."""
    task = app.tasks[f"ovencast:{CHECK_TASK}"]
    app.periodic_registry.register_task(task=task, cron=settings.schedule_check_cron,
                                        periodic_id="", configure_kwargs={})
