"""Request dependencies: the settings and database of the app, `Session`, the unit of
work of one request (commit when the endpoint returns normally, roll back when it raises,
always closed), and the access checks. Endpoints take `Session` and never commit
themselves.

Access: every route of the API (all but the probes /health, /ready and /metrics) declares
what it needs with one of `tenant_access(role)` (a route about the path's `{tenant}`),
`job_access(role)` (about the path's `{job_id}`) or `global_access(role)` (about no
tenant), e.g. `dependencies=[tenant_access(Role.TRAIN)]`. Each authenticates the caller
(`Authorization: Bearer <key>`, 401), counts the request against the caller's rate limit
(429), refuses a query parameter the route does not declare (422,
`api/query_params.py`), answers another tenant's tenant or job exactly as one that does
not exist (404), and checks the role (403): `ovencast.keys.access` says why in this order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from ovencast.api.query_params import refuse_unknown_query
from ovencast.api.rate_limit import TenantRateLimiter
from ovencast.console import session as console_session
from ovencast.console.session import same_origin
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.errors import Forbidden
from ovencast.jobs import service as jobs_service
from ovencast.jobs.schemas import JobId
from ovencast.keys import service as keys_service
from ovencast.keys.access import Caller
from ovencast.keys.roles import Role
from ovencast.settings import Settings
from ovencast.tenants import service as tenants_service


def get_settings(connection: HTTPConnection) -> Settings:
    settings: Settings = connection.app.state.settings
    return settings


def get_database(connection: HTTPConnection) -> Database:
    database: Database = connection.app.state.database
    return database


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with unit_of_work(get_database(request).sessions) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
# scope="function": the commit runs when the endpoint returns, *before* the response is
# sent, so a client never sees a success whose commit then failed; an exception raised by
# the endpoint rolls back and then reaches the error handler.
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]


# ------------------------------------------------------------------------------ access
# auto_error=False: a missing or malformed header is our 401 (error body, WWW-Authenticate),
# not FastAPI's 403. In OpenAPI this is the scheme behind /docs' Authorize button.
bearer = HTTPBearer(auto_error=False, description="An API key (`ovencast keys create`): "
                    "`Authorization: Bearer ovk_...`")


def get_rate_limiter(connection: HTTPConnection) -> TenantRateLimiter:
    limiter: TenantRateLimiter = connection.app.state.rate_limiter
    return limiter


async def identify(connection: HTTPConnection, presented: str | None) -> Caller:
    """Authenticate a presented key in a unit of work of its own (short, committed at
    once: it may record `last_used_at`; the request's own unit of work may run long),
    then count the request against the caller's rate limit."""
    async with unit_of_work(get_database(connection).sessions) as session:
        caller = await keys_service.authenticate(session, presented)
    await get_rate_limiter(connection).hit(caller.rate_limit_bucket)
    return caller


async def get_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    caller = await identify(request, credentials.credentials if credentials else None)
    # After the key (an unauthenticated request is a 401 whatever it asks for).
    refuse_unknown_query(request)
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


def tenant_access(role: Role) -> Any:  # fastapi.Depends(...) is typed Any
    """A route about the tenant named in its path (`{tenant}`)."""

    async def check_tenant_access(caller: CallerDep, tenant: str) -> Caller:
        if not caller.reaches_tenant(tenant):
            raise tenants_service.tenant_not_found(tenant)
        caller.require_role(role)
        return caller

    return Depends(check_tenant_access)


def job_access(role: Role) -> Any:  # fastapi.Depends(...) is typed Any
    """A route about the training job whose id is in its path (`{job_id}`). Job ids are
    one sequence across tenants: the job's tenant is looked up and checked."""

    async def check_job_access(caller: CallerDep, job_id: JobId, session: Session) -> Caller:
        await jobs_service.get_job(session, job_id, tenant_id=caller.tenant_id)
        caller.require_role(role)
        return caller

    return Depends(check_job_access)


def global_access(role: Role) -> Any:  # fastapi.Depends(...) is typed Any
    """A route about no one tenant (registering and listing tenants, the circuit
    breakers): a key without tenant."""

    async def check_global_access(caller: CallerDep) -> Caller:
        caller.require_global(role)
        return caller

    return Depends(check_global_access)


def websocket_origin_allowed(connection: HTTPConnection) -> None:
    """A browser sends `Origin` with every WebSocket handshake (and CORS does not apply to
    WebSockets): one that is neither this server's own (the console's pages) nor in
    ALLOWED_ORIGINS is `Forbidden`. No `Origin`: not a browser, nothing to check."""
    origin = connection.headers.get("origin")
    if origin is not None and origin.rstrip("/") not in (
            get_settings(connection).allowed_origin_list) and not same_origin(
            connection, origin):
        raise Forbidden(f"origin {origin!r} is not allowed (ALLOWED_ORIGINS)")


async def identify_websocket(connection: HTTPConnection) -> Caller:
    """The caller of a WebSocket: its key (`websocket_key`), else the console session
    whose page opened it (the cookie; its `Origin` was checked to be ours or allowed)."""
    key = websocket_key(connection)
    if key is not None or console_session.COOKIE not in connection.cookies:
        return await identify(connection, key)
    caller, _ = await console_session.session_caller(connection, get_database(connection))
    await get_rate_limiter(connection).hit(caller.rate_limit_bucket)
    return caller


def websocket_key(connection: HTTPConnection) -> str | None:
    """The key of a WebSocket: `?token=` (browsers cannot set headers on a WebSocket) or
    `Authorization: Bearer`."""
    token = connection.query_params.get("token")
    if token:
        return token
    scheme, _, credentials = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None
