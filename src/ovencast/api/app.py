"""`create_app(settings)`: the FastAPI application of the service shape.

Start-up opens the process's `Database` and checks the schema: a PostgreSQL database with
no revision, or one behind the code's head, raises `SchemaNotReady` (saying to run
`ovencast db upgrade`) and the server refuses to start. It is never migrated implicitly.

Every route but the probes (/health, /ready, /metrics) needs an API key and checks its
tenant and role (api/dependencies.py, docs/SECURITY.md); each tenant's requests are rate
limited (api/rate_limit.py). CORS answers only the origins in ALLOWED_ORIGINS (none by
default: no CORS headers at all).

Every request is timed and counted by route template and status (observability/
http_metrics.py); with OTEL_EXPORTER_OTLP_ENDPOINT set, every request but the probes is
traced (observability/tracing.py).

Run it with `ovencast serve`, or `uvicorn --factory ovencast.api.app:create_app`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from ovencast import __version__
from ovencast.accuracy import endpoints as accuracy_endpoints
from ovencast.api import health
from ovencast.api.body_limit import BodyLimit
from ovencast.api.errors import install_error_handlers
from ovencast.api.openapi import install_openapi
from ovencast.api.rate_limit import TenantRateLimiter
from ovencast.api.upload_gate import UploadGate
from ovencast.console import endpoints as console_endpoints
from ovencast.console.session import SessionCookies
from ovencast.datasets import endpoints as datasets_endpoints
from ovencast.db.runtime import Database
from ovencast.errors import OvencastError
from ovencast.forecast_runs import endpoints as forecast_runs_endpoints
from ovencast.forecasts import endpoints as forecasts_endpoints
from ovencast.jobs import endpoints as jobs_endpoints
from ovencast.models import endpoints as models_endpoints
from ovencast.observability import tracing
from ovencast.observability.http_metrics import HttpMetrics
from ovencast.observability.logs import get_logger
from ovencast.schedules import endpoints as schedules_endpoints
from ovencast.settings import Settings, get_settings
from ovencast.tenants import endpoints as tenants_endpoints

log = get_logger(__name__)

API_PREFIX = "/api/v1"
CONSOLE_STATIC = "/static"

OPENAPI_TAGS = [
    {"name": "tenants", "description": "Bakery businesses and their locale."},
    {"name": "datasets", "description": "Upload sales, weather, traffic and calendar CSVs."},
    {"name": "training-jobs", "description": "Queue, follow and cancel training."},
    {"name": "models", "description": "Model versions, metrics, activation and roll-back."},
    {"name": "forecasts", "description": "Forecasts from the active, checksum-verified models."},
    {"name": "forecast-runs", "description": "Saved forecasts (champions, challengers in "
                                             "shadow), to be scored later."},
    {"name": "accuracy", "description": "Realised accuracy of saved forecasts; champion "
                                        "against challenger."},
    {"name": "schedules", "description": "A tenant's scheduled fetch, retrain and forecast."},
    {"name": "operations", "description": "Liveness, readiness, metrics, circuit breakers."},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database.open(settings)
        tracing.instrument_engine(database.engine)
        try:
            revision = await database.ready()
        except OvencastError as exc:
            log.error("api.startup.refused", error=exc.message)
            await database.close()
            raise
        except BaseException:
            await database.close()
            raise
        try:
            rate_limiter = TenantRateLimiter.from_settings(settings)
        except BaseException:
            await database.close()
            raise
        app.state.settings = settings
        app.state.database = database
        app.state.rate_limiter = rate_limiter
        log.info("api.started", schema_revision=revision,
                 database=database.engine.url.render_as_string(hide_password=True),
                 rate_limit_per_minute=settings.rate_limit_per_minute,
                 rate_limit_storage=rate_limiter.storage,
                 allowed_origins=settings.allowed_origin_list)
        try:
            yield
        finally:
            await rate_limiter.close()
            await database.close()
            log.info("api.stopped")

    app = FastAPI(
        title="ovencast",
        version=__version__,
        summary="Training service for bakery demand forecasting.",
        openapi_tags=OPENAPI_TAGS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    install_openapi(app)
    if settings.allowed_origin_list:
        # Keys travel in the Authorization header, never in cookies: no credentials mode.
        app.add_middleware(CORSMiddleware, allow_origins=settings.allowed_origin_list,
                           allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"],
                           expose_headers=["Retry-After"], max_age=600)
    # An upload's key is checked before its body is read; outermost, a body over its
    # limit is refused before anything else reads it.
    app.add_middleware(UploadGate)
    app.add_middleware(BodyLimit, max_body_bytes=settings.max_body_bytes,
                       max_upload_bytes=settings.max_upload_bytes)
    # Outermost of ours: every request is counted, those refused by the others too.
    app.add_middleware(HttpMetrics)
    tracing.configure_tracing(settings, component="api")
    tracing.instrument_app(app)
    app.include_router(health.router)
    app.include_router(health.api_router, prefix=API_PREFIX)
    for router in (tenants_endpoints.router, datasets_endpoints.router,
                   jobs_endpoints.router, models_endpoints.router,
                   forecasts_endpoints.router):
        app.include_router(router, prefix=API_PREFIX)
    # Model governance (docs/decisions/008-model-governance.md).
    for router in (forecast_runs_endpoints.router, accuracy_endpoints.router,
                   schedules_endpoints.router):
        app.include_router(router, prefix=API_PREFIX)
    # The web console at / (docs/decisions/011-web-console.md): HTML pages, not in the
    # API's schema; its stylesheet and script ship in the package.
    app.state.console_sessions = SessionCookies.from_settings(settings)
    app.include_router(console_endpoints.router)
    app.mount(CONSOLE_STATIC, StaticFiles(packages=[("ovencast.console", "static")]),
              name="console-static")
    return app
