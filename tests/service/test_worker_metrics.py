"""Issue 19's "workers are observable", end to end on PostgreSQL: the real API (in this
process, on a loopback port) takes a job; two real `ovencast worker` processes, each
serving /metrics and /health on a port of its own (WORKER_METRICS_PORT), train it. Then
each worker's /metrics shows the products it trained (as the database records who
trained what), their fits and durations; the API's shows the request that submitted
the job (by route template and status) and the queue's depth."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.conftest import RunningServer, bearer, create_key, start_server
from conftest import import_directory, make_settings, write_tiny_dataset
from ovencast.api.app import create_app
from ovencast.db.runtime import Database
from ovencast.jobs.service import PREPARE_TASK
from ovencast.keys.roles import Role
from ovencast.settings import Settings

from .test_workers import Workers, runs_of, wait_for_job

pytestmark = pytest.mark.postgres

PRODUCTS = ["bread", "rolls", "cake"]
SUBMIT_ROUTE = "/api/v1/tenants/{tenant}/training-jobs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text)
            for s in family.samples]


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0: none)."""
    return sum(v for n, found, v in samples(text)
               if n == name and labels.items() <= found.items())


@pytest.fixture
def settings(tmp_path: Path, pg_migrated_url: str) -> Settings:
    return make_settings(tmp_path / "home", pg_migrated_url, max_concurrent_training_jobs=1,
                         lock_wait_timeout_seconds=300.0)


@pytest.fixture
def api(settings: Settings) -> Iterator[RunningServer]:
    server = start_server(create_app(settings))
    yield server
    server.stop()


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    (tmp_path / "logs").mkdir()
    pool = Workers(settings, tmp_path / "logs")
    yield pool
    pool.stop()


async def scrape_until(url: str, ready: Any, workers: Workers, timeout: float = 60.0) -> str:
    """GET `url` until `ready(text)` holds (a worker's endpoints come up with it)."""
    deadline = time.monotonic() + timeout
    last = ""
    async with httpx.AsyncClient(timeout=10) as http:
        while time.monotonic() < deadline:
            try:
                last = (await http.get(url)).text
                if ready(last):
                    return last
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.3)
    shown = "\n".join(line for line in last.splitlines()
                      if line.startswith(("ovencast_products", "ovencast_lock_wait_seconds_c",
                                          "ovencast_fit_duration_seconds_c")))
    pytest.fail(f"{url} never showed what was expected:\n{shown}\n{workers.logs()}")


async def test_each_worker_reports_what_it_trained_and_the_api_its_requests_and_queue(
        settings: Settings, api: RunningServer, workers: Workers, tmp_path: Path) -> None:
    database = Database.open(settings)
    try:
        await import_directory(database, "acme", write_tiny_dataset(tmp_path / "data",
                                                                    PRODUCTS, days=90))
        key = create_key(settings, tenant="acme", role=Role.TRAIN)
        async with httpx.AsyncClient(base_url=api.base_url, timeout=30,
                                     headers=bearer(key)) as http:
            # The API's registry is its process's: other tests in this process count too.
            before = (await http.get("/metrics")).text
            accepted = await http.post("/api/v1/tenants/acme/training-jobs",
                                       json={"models": ["seasonal_naive"]})
            assert accepted.status_code == 202, accepted.text
            queued = (await http.get("/metrics")).text

            ports = {"w1": free_port(), "w2": free_port()}
            processes = {}
            for name, port in ports.items():
                workers.env["WORKER_METRICS_PORT"] = str(port)
                processes[name] = workers.start(name)
            job = await wait_for_job(database, accepted.json()["id"], workers)
            assert job.status == "succeeded", workers.logs()
            after = (await http.get("/metrics")).text
        runs = await runs_of(database, job.id)
    finally:
        await database.close()

    # The API: the submission, by route template and status; the queue held the job's
    # preparation while no worker ran, and is empty now.
    submissions = {"method": "POST", "route": SUBMIT_ROUTE, "status": "202"}
    assert value(queued, "ovencast_http_request_duration_seconds_count", **submissions) - \
        value(before, "ovencast_http_request_duration_seconds_count", **submissions) == 1
    assert value(queued, "ovencast_queue_jobs", task=PREPARE_TASK, status="todo") == 1
    assert value(after, "ovencast_queue_jobs", task=PREPARE_TASK, status="todo") == 0
    assert value(after, "ovencast_queue_jobs", status="doing") == 0
    assert value(after, "ovencast_http_request_duration_seconds_count",
                 route="/metrics", status="200") >= 1

    # Each worker: the products the database says it trained, no more, no less.
    trained_by = {name: sorted(r.product for r in runs
                               if (r.details or {}).get("worker", "").endswith(
                                   f":{process.pid}"))
                  for name, process in processes.items()}
    assert sorted(p for products in trained_by.values() for p in products) == sorted(PRODUCTS)
    total_trained = 0.0
    for name, port in ports.items():
        expected = len(trained_by[name])
        text = await scrape_until(
            f"http://127.0.0.1:{port}/metrics",
            lambda t, n=expected: value(t, "ovencast_products_total", outcome="trained") == n,
            workers)
        assert value(text, "ovencast_products_total", outcome="failed") == 0
        assert value(text, "ovencast_products_total", outcome="trained",
                     family="seasonal_naive") == expected, name
        assert value(text, "ovencast_fit_duration_seconds_count") == expected, name
        assert value(text, "ovencast_product_training_duration_seconds_count") == expected
        assert value(text, "ovencast_lock_wait_seconds_count") == expected, name
        assert value(text, "ovencast_fit_pool_processes", state="size") == 1
        assert value(text, "ovencast_db_pool_connections", state="size") == 10
        total_trained += value(text, "ovencast_products_total", outcome="trained")
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/nothing", timeout=10).status_code == 404
    assert total_trained == len(PRODUCTS)
    # One of the two closed the job and observed its duration.
    job_counts = [value(httpx.get(f"http://127.0.0.1:{p}/metrics", timeout=10).text,
                        "ovencast_training_job_duration_seconds_count") for p in ports.values()]
    assert sorted(job_counts) == [0, 1]
