"""The API's HTTP metrics: an ASGI middleware that times every request and counts it by
method, route template (`/api/v1/tenants/{tenant}/forecasts`, never the path itself, so
that tenants and ids do not become label values) and status."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ovencast.observability.metrics import HTTP_REQUEST_DURATION

UNMATCHED = "unmatched"  # no route: a 404, or refused before routing (413 from BodyLimit)


def route_template(scope: Scope) -> str:
    """The template of the route that served the request (the router puts it in the
    scope), or UNMATCHED. A route of an included router is the router's own (without the
    prefix); FastAPI keeps the route as included, prefix and all, beside it."""
    included = (scope.get("fastapi") or {}).get("effective_route_context")
    route: Any = included if included is not None else scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(template) if template else UNMATCHED


class HttpMetrics:
    """Outermost middleware: every HTTP request ends up in HTTP_REQUEST_DURATION; one
    that raised is counted as the 500 the server answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            HTTP_REQUEST_DURATION.labels(
                method=scope["method"], route=route_template(scope), status=str(status)
            ).observe(time.perf_counter() - started)
