"""uvicorn's httptools protocol with the two timeouts uvicorn lacks: a request's headers
must arrive within `REQUEST_HEADER_TIMEOUT_SECONDS` of the connection (or of the request's
first byte on a kept-alive connection), and its body may not pause longer than
`REQUEST_BODY_TIMEOUT_SECONDS` between two reads (nginx's `client_header_timeout` and
`client_body_timeout`). A client that trickles bytes would otherwise hold a connection,
and a request task, for ever.

Hand-written: uvicorn has only `--timeout-keep-alive` (between requests) and
h11/httptools have no timers; a reverse proxy is the alternative (docs/SECURITY.md).
On a header timeout the client gets a 408 and the connection closes; on a body timeout
the connection closes (the application sees the client disconnect).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ovencast.observability.logs import get_logger

log = get_logger(__name__)

_408 = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"connection: close\r\ncontent-length: %d\r\n\r\n%s")


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Set `header_timeout_s` and `body_timeout_s` on the class (`guarded_protocol`)."""

    header_timeout_s: float = 15.0
    body_timeout_s: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None

    # The headers' deadline: from the connection, and from each new request's first byte.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout_s, self._header_timed_out)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._timer is None:
            self._arm(self.header_timeout_s, self._header_timed_out)

    # The body's idle limit: from the end of the headers, again after every chunk read.
    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(self.body_timeout_s, self._body_timed_out)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._arm(self.body_timeout_s, self._body_timed_out)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the WebSocket protocol has its own pings
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float, handler: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, handler)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _header_timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        log.warning("http.header_timeout", client=_client(self.client),
                    seconds=self.header_timeout_s)
        message = (f"the request's headers did not arrive within "
                   f"{self.header_timeout_s:g} s").encode("ascii")
        self.transport.write(_408 % (len(message), message))
        self.transport.close()

    def _body_timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self.flow is not None and self.flow.read_paused:
            # We stopped reading (the application is behind): not the client's delay.
            self._arm(self.body_timeout_s, self._body_timed_out)
            return
        log.warning("http.body_timeout", client=_client(self.client),
                    seconds=self.body_timeout_s)
        self.transport.close()


def _client(address: tuple[str, int] | None) -> str:
    return f"{address[0]}:{address[1]}" if address else "unknown"


def guarded_protocol(*, header_timeout_s: float, body_timeout_s: float
                     ) -> type[GuardedHttpToolsProtocol]:
    """A protocol class with these timeouts, for `uvicorn.Config(http=...)`."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,),
                {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s})
