"""A worker's own endpoints (observability/worker_server.py): /metrics with the gauges set
at scrape time, /health that fails while the event loop is stuck, and a port that cannot
be had said plainly. (A real worker's /metrics after a job: tests/service/
test_worker_metrics.py.)"""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest
from prometheus_client import Gauge

from ovencast.errors import Misconfigured
from ovencast.observability import worker_server
from ovencast.observability.worker_server import WorkerEndpoints

SCRAPES = Gauge("ovencast_test_worker_scrapes", "scrapes seen by the test's collect hook")


async def test_metrics_health_and_a_stuck_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_server, "HEALTH_TIMEOUT_S", 0.5)
    endpoints = WorkerEndpoints("127.0.0.1", 0, loop=asyncio.get_running_loop(),
                                collect=SCRAPES.inc).start()
    base = f"http://127.0.0.1:{endpoints.port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            metrics = await http.get("/metrics")
            assert metrics.status_code == 200
            assert "ovencast_test_worker_scrapes 1.0" in metrics.text
            assert metrics.headers["content-type"].startswith("text/plain")
            health = await http.get("/health")
            assert (health.status_code, health.json()) == (200, {"status": "ok"})
            assert (await http.get("/metricsx")).status_code == 404

        # The loop blocked (a sync call in a task): /health, asked from another thread,
        # says so; the metrics still answer.
        def probe() -> tuple[int, int]:
            return (httpx.get(f"{base}/health", timeout=10).status_code,
                    httpx.get(f"{base}/metrics", timeout=10).status_code)

        answer = asyncio.get_running_loop().run_in_executor(None, probe)
        time.sleep(1.5)  # blocks the event loop, on purpose
        assert await answer == (503, 200)
    finally:
        endpoints.stop()


async def test_a_port_in_use_is_misconfigured() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(Misconfigured, match=f"127.0.0.1:{port}.*WORKER_METRICS"):
            WorkerEndpoints("127.0.0.1", port, loop=asyncio.get_running_loop())
