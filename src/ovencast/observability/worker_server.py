"""A worker's own HTTP endpoints, on WORKER_METRICS_HOST:WORKER_METRICS_PORT:

    GET /metrics   this worker process's Prometheus metrics (products it trained, fits,
                   locks, upstream calls, breakers, its pools)
    GET /health    200 while the worker's event loop answers within HEALTH_TIMEOUT_S,
                   503 otherwise: the liveness probe of a worker (a loop stuck in a
                   blocking call takes no jobs and sends no heartbeats)

Served by a small threaded HTTP server beside the event loop, so that a scrape never
waits for a task, and /health can tell whether the loop itself is stuck.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ovencast.errors import Misconfigured
from ovencast.observability.logs import get_logger

log = get_logger(__name__)

HEALTH_TIMEOUT_S = 5.0


async def _noop() -> None:
    return None


class WorkerEndpoints:
    """The server of one worker process; `collect` runs before each scrape (gauges set at
    scrape time: the pools)."""

    def __init__(self, host: str, port: int, *, loop: asyncio.AbstractEventLoop,
                 collect: Callable[[], None] = lambda: None) -> None:
        self.loop = loop
        self.collect = collect
        endpoints = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's name for it
                status, content_type, body = endpoints.answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # scrapes every few seconds are not worth a log line each

        try:
            self.server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise Misconfigured(f"the worker cannot serve its metrics on {host}:{port} "
                                f"(WORKER_METRICS_HOST/PORT): {exc.strerror or exc}"
                                ) from None
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        name="worker-endpoints", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def answer(self, path: str) -> tuple[int, str, bytes]:
        route = path.split("?", 1)[0]
        if route == "/metrics":
            try:
                self.collect()
            except Exception as exc:  # the rest of the metrics are still worth having
                log.warning("worker.metrics_collect_failed", error=str(exc))
            return 200, CONTENT_TYPE_LATEST, generate_latest()
        if route == "/health":
            if self.loop_answers():
                return 200, "application/json", b'{"status": "ok"}'
            detail = f"the worker's event loop did not answer within {HEALTH_TIMEOUT_S:g} s"
            return 503, "application/json", json.dumps(
                {"error": "event_loop_stuck", "detail": detail}).encode()
        return 404, "application/json", b'{"error": "not_found"}'

    def loop_answers(self) -> bool:
        try:
            asyncio.run_coroutine_threadsafe(_noop(), self.loop).result(HEALTH_TIMEOUT_S)
        except Exception:  # timed out, or the loop is closed
            return False
        return True

    def start(self) -> WorkerEndpoints:
        self._thread.start()
        host = self.server.server_address[0]
        log.info("worker.endpoints.started", address=f"{host!s}:{self.port}",
                 paths=["/metrics", "/health"])
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
