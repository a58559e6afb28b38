"""Request bodies limited while they stream in, not after: a pure ASGI middleware that
counts the bytes of each request as the application reads them and answers 413 as soon
as the count passes the route's limit (MAX_UPLOAD_BYTES for dataset uploads,
MAX_BODY_BYTES for anything else), or at once when `Content-Length` already says so.
Nothing past the limit is read, parsed or spooled to disk.

Hand-written: Starlette and FastAPI have no streaming body limit (uvicorn limits only the
size of headers), and a proxy's limit does not protect a service reached directly.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ovencast.api.errors import error_body
from ovencast.api.upload_gate import is_upload


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    def limit_for(self, path: str) -> int:
        return self.max_upload_bytes if is_upload(path) else self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(send, limit)
            return
        request = _Limited(receive, send, limit)
        try:
            await self.app(scope, request.receive, request.send)
        except Exception:
            if not request.exceeded:
                raise
        await request.finish()


class _Limited:
    """One request's body count. Past the limit the application is told the client went
    away: it stops reading, and whatever it answers then is replaced by a 413."""

    def __init__(self, receive: Receive, send: Send, limit: int) -> None:
        self._receive, self._send, self.limit = receive, send, limit
        self.received = 0
        self.exceeded = self.answered = False

    async def receive(self) -> Message:
        if self.exceeded:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.exceeded = True
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.exceeded:
            await self.finish()
            return
        self.answered = self.answered or message["type"] == "http.response.start"
        await self._send(message)

    async def finish(self) -> None:
        if self.exceeded and not self.answered:
            self.answered = True
            await _too_large(self._send, self.limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send, limit: int) -> None:
    import json

    body = json.dumps(error_body("payload_too_large",
                                 f"the request body is larger than {limit} bytes")).encode()
    headers: list[Any] = [(b"content-type", b"application/json"),
                          (b"content-length", str(len(body)).encode()),
                          (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
