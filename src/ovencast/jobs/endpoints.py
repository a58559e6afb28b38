"""HTTP endpoints of training jobs: submit (queued for the workers), list, show, cancel,
and a WebSocket that streams a job's progress.

The WebSocket subscribes to the job's events (PostgreSQL LISTEN) *before* it reads the
snapshot from the database, so nothing that happens in between is lost; a client may see
an event the snapshot already reflects, never miss one. It closes after the job's end.

Job ids count across tenants: every route here checks the job's tenant against the
caller's key (`job_access`; the WebSocket does the same checks itself) and answers
another tenant's job exactly as one that does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect, status
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.api.dependencies import (
    Session,
    SettingsDep,
    get_database,
    identify_websocket,
    job_access,
    tenant_access,
    websocket_origin_allowed,
)
from ovencast.api.errors import ACCESS_ERRORS, error_code, error_responses, status_for
from ovencast.db.session import unit_of_work
from ovencast.db.tables import TrainingJob
from ovencast.db.urls import libpq_conninfo
from ovencast.errors import OvencastError
from ovencast.events.progress import Event, JobEvent
from ovencast.jobs import repository
from ovencast.jobs import service as jobs_service
from ovencast.jobs.schemas import (
    JobId,
    JobLinks,
    TrainingJobAccepted,
    TrainingJobCreate,
    TrainingJobDetail,
    TrainingJobOut,
    TrainingRunOut,
)
from ovencast.keys.access import Caller
from ovencast.keys.roles import Role
from ovencast.models import repository as models_repository
from ovencast.observability.logs import get_logger
from ovencast.sources.service import open_data_source, resolve_tenant
from ovencast.tenants import repository as tenants_repository
from ovencast.tenants import service as tenants_service

log = get_logger(__name__)

router = APIRouter(tags=["training-jobs"], responses=ACCESS_ERRORS)

JOBS_PATH = "/api/v1/training-jobs"
# WebSocket close codes: 1000 normal (job ended); 1011 server-side error; a refusal is
# 4000 + the HTTP status of its error: 4401 no or bad key, 4403 origin not allowed,
# 4404 no such job (or another tenant's), 4429 rate limit.
CLOSE_REFUSED_BASE = 4000
CLOSE_SERVER_ERROR = 1011

EventSource = Callable[[str, int], AbstractAsyncContextManager[AsyncIterator[Event]]]


def links(job_id: int) -> JobLinks:
    return JobLinks(self=f"{JOBS_PATH}/{job_id}", events=f"{JOBS_PATH}/{job_id}/events",
                    cancel=f"{JOBS_PATH}/{job_id}/cancel")


def _job_out(job: TrainingJob, tenant: str) -> TrainingJobOut:
    return TrainingJobOut(
        id=job.id, tenant=tenant, status=job.status, products=job.products,
        models=job.models, until=job.until, activation=job.activation, error=job.error,
        warnings=job.warnings or [],
        created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
        links=links(job.id))


async def _tenant_name(session: AsyncSession, tenant_id: int) -> str:
    tenant = await tenants_repository.get_by_id(session, tenant_id)
    return tenant.name if tenant is not None else str(tenant_id)


async def job_detail(session: AsyncSession, job_id: int) -> TrainingJobDetail:
    """A job with its runs and reports, as `GET /training-jobs/{id}` and the WebSocket
    snapshot show it. `NotFound` if there is no such job."""
    job = await jobs_service.get_job(session, job_id)
    runs = await repository.runs_of(session, job_id)
    versions = {v.id: v.version for v in await models_repository.get_by_ids(
        session, [r.model_version_id for r in runs if r.model_version_id is not None])}
    out = _job_out(job, await _tenant_name(session, job.tenant_id))
    return TrainingJobDetail(
        **out.model_dump(), validation_report=job.validation_report,
        alignment_report=job.alignment_report, global_models=job.global_models,
        data_version=(job.data_snapshot or {}).get("data_version"),
        runs=[TrainingRunOut(
            product=r.product, status=r.status, reason=r.reason,
            product_class=r.product_class, started_at=r.started_at,
            finished_at=r.finished_at, duration_s=r.duration_s,
            model_version=versions.get(r.model_version_id)
            if r.model_version_id is not None else None) for r in runs])


@router.post("/tenants/{tenant}/training-jobs", status_code=status.HTTP_202_ACCEPTED,
             response_model=TrainingJobAccepted,
             summary="Queue a training job (the workers pick it up)",
             responses=error_responses(404, 422), dependencies=[tenant_access(Role.TRAIN)])
async def submit_training_job(tenant: str, body: TrainingJobCreate, session: Session,
                              settings: SettingsDep) -> TrainingJobAccepted:
    async with open_data_source(session, settings=settings) as source:
        row = await resolve_tenant(session, source, tenant)
        job = await jobs_service.submit_job(session, row, products=body.products,
                                            until=body.until, models=body.models,
                                            source=source, activation=body.activation)
    return TrainingJobAccepted(id=job.id, status=job.status, links=links(job.id))


@router.get("/tenants/{tenant}/training-jobs", response_model=list[TrainingJobOut],
            summary="A tenant's training jobs, newest first", responses=error_responses(404),
            dependencies=[tenant_access(Role.READ)])
async def list_training_jobs(tenant: str, session: Session) -> list[TrainingJobOut]:
    row = await tenants_service.get_tenant(session, tenant)
    jobs: Sequence[TrainingJob] = await repository.jobs_of(session, row.id)
    return [_job_out(job, row.name) for job in jobs]


@router.get("/training-jobs/{job_id}", response_model=TrainingJobDetail,
            summary="A job: status, timestamps, per-product outcome, reports",
            responses=error_responses(404), dependencies=[job_access(Role.READ)])
async def get_training_job(job_id: JobId, session: Session) -> TrainingJobDetail:
    return await job_detail(session, job_id)


@router.post("/training-jobs/{job_id}/cancel", response_model=TrainingJobOut,
             summary="Cancel a job that has not ended", responses=error_responses(404, 409),
             dependencies=[job_access(Role.TRAIN)])
async def cancel_training_job(job_id: JobId, session: Session) -> TrainingJobOut:
    job = await jobs_service.cancel_job(session, job_id)
    return _job_out(job, await _tenant_name(session, job.tenant_id))


def get_event_source() -> EventSource:
    """`ovencast.events.listen.job_events`: LISTEN on enter, then an async iterator of
    the job's events that ends after the job's end event."""
    from ovencast.events.listen import job_events

    return job_events


@router.websocket("/training-jobs/{job_id}/events", name="training_job_events")
async def training_job_events(websocket: WebSocket, job_id: JobId,
                              event_source: EventSource = Depends(get_event_source)) -> None:
    """Messages (JSON): first `{"type": "snapshot", "job_id", ...the job as GET shows it}`,
    then `{"type": "product", "product", "event": queued|started|backtest|trial|
    family_failed|finished|failed|timed_out, ...}` and finally `{"type": "job",
    "status"}`, after which the server closes (1000). Refused: `{"type": "error", ...}`
    and close code 4000 + its HTTP status (4403 an `Origin` not in ALLOWED_ORIGINS, 4401
    no or bad key, given as `?token=` or `Authorization: Bearer` or, from the console's
    pages, its session cookie, 4429 rate limit, 4404
    no such job, or another tenant's)."""
    database = get_database(websocket)
    await websocket.accept()
    try:
        await _check_access(websocket, job_id)
        conninfo = libpq_conninfo(database.settings.resolved_database_url)
        async with event_source(conninfo, job_id) as events:
            async with unit_of_work(database.sessions) as session:
                snapshot = await job_detail(session, job_id)
            await websocket.send_json({"type": "snapshot", "job_id": job_id,
                                       **snapshot.model_dump(mode="json", by_alias=True)})
            if snapshot.status.ended:
                await websocket.close(code=1000)
                return
            await _forward(websocket, events)
    except WebSocketDisconnect:
        return
    except OvencastError as exc:
        status = status_for(exc)
        await _close_with_error(websocket, error_code(exc), exc.message,
                                CLOSE_REFUSED_BASE + status if 400 <= status < 500
                                else CLOSE_SERVER_ERROR)
    except (OSError, ValueError) as exc:  # event stream unavailable (no PostgreSQL...)
        log.error("api.job_events.unavailable", job_id=job_id, error=str(exc))
        await _close_with_error(websocket, "events_unavailable",
                                f"job events are unavailable: {exc}", CLOSE_SERVER_ERROR)


async def _check_access(websocket: WebSocket, job_id: int) -> Caller:
    """What `job_access(Role.READ)` checks for HTTP, plus the browser's `Origin`."""
    websocket_origin_allowed(websocket)
    caller = await identify_websocket(websocket)
    async with unit_of_work(get_database(websocket).sessions) as session:
        await jobs_service.get_job(session, job_id, tenant_id=caller.tenant_id)
    caller.require_role(Role.READ)
    return caller


async def _forward(websocket: WebSocket, events: AsyncIterator[Event]) -> None:
    """Send events until the job's end event, or until the client goes away."""

    async def send_all() -> None:
        async for event in events:
            await websocket.send_json(event.model_dump(mode="json", exclude_none=True))
            if isinstance(event, JobEvent) and event.status.ended:
                return

    async def client_gone() -> None:
        # Clients have nothing to say; reading is how a disconnect is noticed.
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    sender = asyncio.create_task(send_all())
    watcher = asyncio.create_task(client_gone())
    try:
        done, _ = await asyncio.wait({sender, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, watcher):
            task.cancel()
        await asyncio.gather(sender, watcher, return_exceptions=True)
    if sender in done:
        sender.result()  # an error in the stream surfaces here
        await websocket.close(code=1000)


async def _close_with_error(websocket: WebSocket, code: str, detail: str, close_code: int
                            ) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_json({"type": "error", "error": code, "detail": detail})
        await websocket.close(code=close_code)

