"""Tracing (observability/tracing.py): off unless OTEL_EXPORTER_OTLP_ENDPOINT is set, spans
sent there over OTLP/HTTP when it is, the trace context carried by task arguments and
taken out again by the worker middleware, trace and span ids in the JSON log lines.
(One job as one trace, end to end: tests/service/test_tracing.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from procrastinate import App, JobContext
from procrastinate.jobs import Job
from procrastinate.testing import InMemoryConnector

from conftest import settings_env
from ovencast.observability import tracing
from ovencast.settings import Settings


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure_tracing(Settings(), component="test", exporter=exporter)
    yield exporter
    tracing.shutdown_tracing()


def job_context(**task_kwargs: Any) -> JobContext:
    job = Job(id=7, queue="training", lock=None, queueing_lock=None,
              task_name="ovencast:train_product", task_kwargs=task_kwargs)
    return JobContext(app=App(connector=InMemoryConnector()), job=job, start_timestamp=0.0,
                      abort_reason=lambda: None)


def test_tracing_is_off_without_an_endpoint(tmp_path: Path) -> None:
    assert not tracing.configure_tracing(Settings(ovencast_home=tmp_path), component="api")
    assert not tracing.enabled()
    with tracing.span("nothing"):
        assert tracing.carrier() == {}


def test_the_carrier_is_the_current_span_in_w3c_form(spans: InMemorySpanExporter) -> None:
    assert tracing.carrier() == {}  # no span: nothing to carry
    with tracing.span("request") as current:
        carried = tracing.carrier()
    context = current.get_span_context()
    version, trace_id, span_id, flags = carried["traceparent"].split("-")
    assert (version, trace_id, span_id) == ("00", f"{context.trace_id:032x}",
                                            f"{context.span_id:016x}")
    assert int(flags, 16) & 0x01  # sampled


async def test_the_worker_middleware_continues_the_trace_and_hides_the_context(
        spans: InMemorySpanExporter) -> None:
    with tracing.span("request") as request:
        carried = tracing.carrier()
    context = job_context(job_id=3, run_id=4, **carried)
    seen: dict[str, Any] = {}

    async def task() -> str:
        seen.update(context.job.task_kwargs)
        return "done"

    assert await tracing.trace_job(task, context, None) == "done"
    assert seen == {"job_id": 3, "run_id": 4}  # the task never sees the trace context
    [consumer] = [s for s in spans.get_finished_spans() if s.name.startswith("queue ")]
    assert consumer.name == "queue ovencast:train_product"
    assert consumer.context.trace_id == request.get_span_context().trace_id
    assert consumer.parent is not None
    assert consumer.parent.span_id == request.get_span_context().span_id
    assert consumer.attributes["ovencast.run_id"] == 4


async def test_the_worker_middleware_hides_the_context_with_tracing_off() -> None:
    """An API that traces, a worker that does not: the task still gets its own
    arguments only."""
    context = job_context(job_id=3, traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")

    async def task() -> dict[str, Any]:
        return dict(context.job.task_kwargs)

    assert await tracing.trace_job(task, context, None) == {"job_id": 3}


class OtlpReceiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, int]]] = []

    def do_POST(self) -> None:  # http.server's name for it
        body = self.rfile.read(int(self.headers["Content-Length"]))
        OtlpReceiver.received.append((self.path, self.headers["Content-Type"], len(body)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


SCRIPT = textwrap.dedent("""
    from ovencast.observability import tracing
    from ovencast.observability.logs import configure_logging, get_logger
    from ovencast.settings import Settings

    configure_logging(json_to_stderr=True)
    log = get_logger("t")
    assert tracing.configure_tracing(Settings(), component="worker")
    with tracing.span("work") as span:
        log.info("inside", span_id_seen=format(span.get_span_context().span_id, "016x"),
                 trace_id_seen=format(span.get_span_context().trace_id, "032x"))
    log.info("outside")
    tracing.shutdown_tracing()
""")


def test_spans_go_to_the_otlp_endpoint_and_ids_into_the_log_lines(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), OtlpReceiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    OtlpReceiver.received.clear()
    try:
        env = settings_env(Settings(ovencast_home=tmp_path),
                           OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{server.server_port}")
        done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                              text=True, timeout=60, check=False)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    assert [(path, kind) for path, kind, _ in OtlpReceiver.received] == [
        ("/v1/traces", "application/x-protobuf")]
    lines = {e["event"]: e for e in (json.loads(line) for line in done.stderr.splitlines()
                                     if line.startswith("{"))}
    inside = lines["inside"]
    assert inside["trace_id"] == inside["trace_id_seen"]
    assert inside["span_id"] == inside["span_id_seen"]
    assert "trace_id" not in lines["outside"]
