"""One training job is one trace (issue 19), on PostgreSQL with the upstream services:
the API request, the queue tasks (preparation, then one per product), the upstream
fetches and each product's fit are spans of the same trace, each under the one that
caused it. The API (a loopback uvicorn server) and a real worker (`run_worker`, the code
of `ovencast worker`) run in this process so that the SDK's in-memory exporter sees
every span; the fits still run in the worker's pool processes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from api.conftest import RunningServer, bearer, create_key, start_server
from conftest import make_settings, upstream_settings
from ovencast.api.app import create_app
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import TrainingJob
from ovencast.keys.roles import Role
from ovencast.observability import tracing
from ovencast.queue.worker import run_worker
from ovencast.settings import Settings
from ovencast.testing.upstream_server import RunningServer as UpstreamServer

pytestmark = pytest.mark.postgres

PRODUCTS = ["bread", "rolls"]
JOB_TIMEOUT_S = 180.0


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure_tracing(Settings(), component="test", exporter=exporter)
    yield exporter
    tracing.shutdown_tracing()


@pytest.fixture
def settings(tmp_path: Path, pg_migrated_url: str, data_server: UpstreamServer) -> Settings:
    upstream = upstream_settings(tmp_path / "home", data_server.url)
    return make_settings(tmp_path / "home", pg_migrated_url, **{
        name: getattr(upstream, name) for name in upstream.model_fields_set
        if name != "ovencast_home"})


@pytest.fixture
def api(settings: Settings, spans: InMemorySpanExporter) -> Iterator[RunningServer]:
    server = start_server(create_app(settings))
    yield server
    server.stop()


async def wait_for_end(settings: Settings, job_id: int) -> TrainingJob:
    database = Database.open(settings)
    try:
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while time.monotonic() < deadline:
            async with unit_of_work(database.sessions) as session:
                job = await session.get(TrainingJob, job_id)
                if job is not None and job.status.ended:
                    return job
            await asyncio.sleep(0.3)
    finally:
        await database.close()
    pytest.fail(f"job {job_id} did not end in {JOB_TIMEOUT_S} s")


def named(found: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in found if s.name == name]


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def test_one_job_is_one_trace_with_a_span_per_product_fit(
        settings: Settings, api: RunningServer, spans: InMemorySpanExporter) -> None:
    key = create_key(settings, tenant=None, role=Role.ADMIN)
    worker = asyncio.create_task(run_worker(settings, name="traced",
                                            install_signal_handlers=False))
    try:
        async with httpx.AsyncClient(base_url=api.base_url, timeout=30,
                                     headers=bearer(key)) as http:
            accepted = await http.post("/api/v1/tenants/kiel/training-jobs",
                                       json={"products": PRODUCTS,
                                             "models": ["seasonal_naive"]})
            assert accepted.status_code == 202, accepted.text
        job = await wait_for_end(settings, accepted.json()["id"])
        assert job.status == "succeeded"
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker

    found = list(spans.get_finished_spans())
    [request] = [s for s in found if s.kind is SpanKind.SERVER
                 and s.attributes.get("http.route") == "/api/v1/tenants/{tenant}/training-jobs"]
    trace_id = request.context.trace_id
    in_trace = [s for s in found if s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in in_trace}

    [prepare] = named(in_trace, "queue ovencast:prepare_training_job")
    products = named(in_trace, "queue ovencast:train_product")
    fits = named(in_trace, "fit")
    assert prepare.kind is SpanKind.CONSUMER
    assert request.name in ancestors(prepare, by_id)
    assert len(products) == len(PRODUCTS)
    assert all(ancestors(p, by_id)[0] == prepare.name for p in products)
    assert sorted(str(f.attributes["ovencast.product"]) for f in fits) == sorted(PRODUCTS)
    for fit in fits:
        assert fit.attributes["ovencast.family"] == "seasonal_naive"
        assert fit.attributes["ovencast.job_id"] == job.id
        assert ancestors(fit, by_id)[:2] == ["queue ovencast:train_product", prepare.name]
    # The upstream fetches, under the task that made them; SQL of the API and the worker.
    upstream = str(settings.sales_service_url)
    fetches = [s for s in in_trace if s.kind is SpanKind.CLIENT and str(
        s.attributes.get("url.full") or s.attributes.get("http.url")).startswith(upstream)]
    assert fetches, sorted({s.name for s in in_trace})
    # The worker's (the job's data), and the API's own (the tenant's profile, products).
    assert any(prepare.name in ancestors(f, by_id) for f in fetches)
    assert all(request.name in ancestors(f, by_id) for f in fetches)
    assert any(s.attributes.get("db.system") == "postgresql"
               or s.attributes.get("db.system.name") == "postgresql" for s in in_trace)
    # Nothing of the job in another trace (periodic tasks start traces of their own).
    job_spans = {prepare.name, "queue ovencast:train_product", "fit"}
    stray = [s.name for s in found if s.context.trace_id != trace_id and s.name in job_spans]
    assert stray == []
