"""The key of a dataset upload is checked before its body is read.

FastAPI reads (and for a multipart upload, spools and parses) the body before any
dependency runs, so the authentication of `api/dependencies.py` would come after up to
MAX_UPLOAD_BYTES had been received. This pure ASGI middleware asks the same three
questions (keys/access.py: a valid key, reaching the path's tenant, with the `train`
role) for the upload route before passing the request on, and answers 401/404/403 with
the very bodies the dependencies give, without reading a byte of the body. The route's
dependencies then check again (and count the rate limit) as for any route. A database
that cannot be reached here is left to the route to report.

Hand-written: Starlette has no hook between the headers and the body of a request.
"""

from __future__ import annotations

import re

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from ovencast.api.errors import ovencast_error_response
from ovencast.db.session import DATABASE_ERRORS, unit_of_work
from ovencast.errors import OvencastError
from ovencast.keys import service as keys_service
from ovencast.keys.roles import Role
from ovencast.tenants import service as tenants_service

UPLOAD_PATH = re.compile(r"^/api/v1/tenants/(?P<tenant>[^/]+)/datasets/?$")


class UploadGate:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = UPLOAD_PATH.match(scope["path"]) if scope["type"] == "http" else None
        if match is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            await _check(HTTPConnection(scope), match["tenant"])
        except OvencastError as exc:
            await ovencast_error_response(exc)(scope, receive, send)
            return
        except DATABASE_ERRORS:
            pass  # the route's own check reports it (503)
        await self.app(scope, receive, send)


async def _check(connection: HTTPConnection, tenant: str) -> None:
    header = connection.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    key = presented.strip() if scheme.lower() == "bearer" else None
    async with unit_of_work(connection.app.state.database.sessions) as session:
        caller = await keys_service.authenticate(session, key or None)
    if not caller.reaches_tenant(tenant):
        raise tenants_service.tenant_not_found(tenant)
    caller.require_role(Role.TRAIN)
