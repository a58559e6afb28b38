"""The key of a dataset upload is checked before its body is read.

FastAPI reads (and for a multipart upload, spools and parses) the body before any
dependency runs, so the authentication of `api/dependencies.py` would come after up to
MAX_UPLOAD_BYTES had been received. This pure ASGI middleware asks the same three
questions (keys/access.py: a valid key, reaching the path's tenant, with the `train`
role) for the upload route before passing the request on, and answers 401/404/403 with
the very bodies the dependencies give, without reading a byte of the body. The route's
dependencies then check again (and count the rate limit) as for any route. The web
console's upload form gets the same check with its session cookie (console/session.py);
not signed in, it is sent to the sign-in page. A database
that cannot be reached here is left to the route to report.

Hand-written: Starlette has no hook between the headers and the body of a request.
"""

from __future__ import annotations

import re

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ovencast.api.errors import ovencast_error_response
from ovencast.console import endpoints as console_endpoints
from ovencast.console.session import session_caller
from ovencast.db.session import DATABASE_ERRORS, unit_of_work
from ovencast.errors import OvencastError, Unauthenticated
from ovencast.keys import service as keys_service
from ovencast.keys.roles import Role
from ovencast.tenants import service as tenants_service

UPLOAD_PATH = re.compile(r"^/api/v1/tenants/(?P<tenant>[^/]+)/datasets/?$")
# The web console's upload form (console/endpoints.py): its session cookie instead of a key.
CONSOLE_UPLOAD_PATH = re.compile(r"^/tenants/(?P<tenant>[^/]+)/data/?$")


def is_upload(path: str) -> bool:
    return bool(UPLOAD_PATH.match(path) or CONSOLE_UPLOAD_PATH.match(path))


class UploadGate:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        api, console = UPLOAD_PATH.match(scope["path"]), CONSOLE_UPLOAD_PATH.match(
            scope["path"])
        match = api or console
        if match is None:
            await self.app(scope, receive, send)
            return
        try:
            await _check(HTTPConnection(scope), match["tenant"], console=console is not None)
        except OvencastError as exc:
            await _refusal(scope, exc, console=console is not None)(scope, receive, send)
            return
        except DATABASE_ERRORS:
            pass  # the route's own check reports it (503)
        await self.app(scope, receive, send)


def _refusal(scope: Scope, exc: OvencastError, *, console: bool) -> Response:
    """The API's error answer; the console's page (or, not signed in, its sign-in)."""
    if not console:
        return ovencast_error_response(exc)
    if isinstance(exc, Unauthenticated):
        return console_endpoints.to_sign_in()
    return console_endpoints.error_page(Request(scope), exc)


async def _check(connection: HTTPConnection, tenant: str, *, console: bool) -> None:
    database = connection.app.state.database
    if console:
        caller, _ = await session_caller(connection, database)
    else:
        header = connection.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        key = presented.strip() if scheme.lower() == "bearer" else None
        async with unit_of_work(database.sessions) as session:
            caller = await keys_service.authenticate(session, key or None)
    if not caller.reaches_tenant(tenant):
        raise tenants_service.tenant_not_found(tenant)
    caller.require_role(Role.TRAIN)
