"""Operations endpoints: liveness, readiness (database reachable, schema current, model
store writable), Prometheus metrics, and the state of the upstream circuit breakers.

/health, /ready and /metrics answer without a key: probes and the Prometheus scraper have
none. /metrics tells about the service (pool use, durations), not about tenants' data;
still, do not expose it publicly (docs/SECURITY.md). The circuit breakers need a key
without tenant."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from ovencast.api.dependencies import DatabaseDep, SettingsDep, global_access
from ovencast.api.errors import (
    ACCESS_ERRORS,
    DATABASE_UNAVAILABLE,
    error_body,
    error_responses,
)
from ovencast.db import migrate
from ovencast.errors import OvencastError
from ovencast.jobs.service import PREPARE_TASK, TRAIN_TASK
from ovencast.keys.roles import Role
from ovencast.observability.logs import get_logger
from ovencast.observability.metrics import observe_db_pool
from ovencast.observability.queue_depth import observe_queue_depth
from ovencast.sources.breakers import circuit_breaker_states, process_breakers
from ovencast.store import store_for
from ovencast.store.probe import StoreCheck, StoreProbe

log = get_logger(__name__)

router = APIRouter(tags=["operations"])
api_router = APIRouter(tags=["operations"], responses=ACCESS_ERRORS)

# What a readiness probe reports as "the database is unreachable".
_UNREACHABLE: tuple[type[Exception], ...] = (*DATABASE_UNAVAILABLE, OSError)
# A readiness probe must answer quickly even when the database hangs.
READY_TIMEOUT_S = 5.0


class HealthOut(BaseModel):
    status: str


class ReadyOut(BaseModel):
    status: str
    schema_revision: str
    model_store: str = Field(description="writable: a probe object was written, read back "
                                         "and deleted (store/probe.py)")


class CircuitBreakerOut(BaseModel):
    """One upstream service's breaker (`ovencast.sources.breakers.BreakerStatus`)."""

    service: str
    state: str = Field(description="closed | open | half_open")
    consecutive_failures: int
    failures_to_open: int
    recovery_s: float
    opened_at: datetime | None = Field(description="UTC, while open or half-open")
    trial_in_s: float | None = Field(
        description="while open: seconds until a trial request is let through")


@router.get("/health", response_model=HealthOut, summary="Liveness (no database access)")
async def health() -> HealthOut:
    return HealthOut(status="ok")


@router.get("/ready", response_model=ReadyOut,
            summary="Readiness: database and schema, model store writable",
            responses=error_responses(503))
async def ready(request: Request, database: DatabaseDep) -> ReadyOut | JSONResponse:
    try:
        revision = await asyncio.wait_for(migrate.check_schema(database.engine),
                                          timeout=READY_TIMEOUT_S)
    except OvencastError as exc:  # SchemaNotReady: no revision, or behind head
        return JSONResponse(status_code=503, content=error_body("schema_not_ready",
                                                                exc.message))
    except TimeoutError:
        return JSONResponse(status_code=503, content=error_body(
            "database_unavailable", f"the database did not answer within {READY_TIMEOUT_S}s"))
    except _UNREACHABLE as exc:
        return JSONResponse(status_code=503, content=error_body(
            "database_unavailable", f"the database is unreachable: {type(exc).__name__}: "
                                    f"{exc}".splitlines()[0]))
    store = await _check_store(request)
    if not store.ok:  # where and why go to the log: the store's location is not public
        log.warning("ready.model_store_unavailable", uri=store.uri, detail=store.detail)
        return JSONResponse(status_code=503, content=error_body(
            "model_store_unavailable", "the model store is not reachable or not writable "
                                       "(the server's log says why)"))
    return ReadyOut(status="ready", schema_revision=revision, model_store=store.detail)


async def _check_store(request: Request) -> StoreCheck:
    """The app's store probe (made at the first check), off the event loop."""
    settings = request.app.state.settings
    try:
        probe = request.app.state.store_probe
    except AttributeError:
        try:
            probe = request.app.state.store_probe = StoreProbe(store_for(settings))
        except OvencastError as exc:  # e.g. s3:// without s3fs installed
            return StoreCheck(settings.resolved_model_storage_path, False, exc.message)
    try:
        result: StoreCheck = await asyncio.wait_for(asyncio.to_thread(probe.check),
                                                    timeout=READY_TIMEOUT_S)
    except TimeoutError:
        return StoreCheck(probe.store.root_uri, False,
                          f"no answer within {READY_TIMEOUT_S}s")
    return result


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}},
                             "description": "Prometheus text exposition format"}})
async def metrics(database: DatabaseDep) -> Response:
    observe_db_pool(database.engine.pool)
    await observe_queue_depth(database.engine, tasks=(PREPARE_TASK, TRAIN_TASK))
    return Response(content=generate_latest(), media_type=CONTENT_TYPE_LATEST)


@api_router.get("/circuit-breakers", response_model=list[CircuitBreakerOut],
                summary="State of each upstream service's circuit breaker (this process)",
                dependencies=[global_access(Role.READ)])
async def circuit_breakers(settings: SettingsDep) -> list[dict[str, Any]]:
    statuses = await circuit_breaker_states(process_breakers(settings))
    return [status.to_dict() for status in statuses]
