"""OpenTelemetry tracing of the service shape: off unless OTEL_EXPORTER_OTLP_ENDPOINT is
set (spans then go to that OTLP/HTTP endpoint, batched).

One training job is one trace:

    POST .../training-jobs            the API request (FastAPI instrumentation)
      queue prepare_training_job      the worker's task (`trace_job`)
        GET sales/weather/traffic     upstream fetches (httpx instrumentation)
        SELECT/INSERT ...             SQL (SQLAlchemy instrumentation)
        queue train_product           one per product, on any worker
          fit                         the product's fit in a pool process (`span`)

How the context crosses the queue: `carrier()` gives the current span's W3C
`traceparent` (and `tracestate`), which jobs/service.defer adds to a task's arguments;
`trace_job`, a procrastinate worker middleware that every worker runs, takes them out
again before the task is called and runs the task in a span that continues the trace.
Tasks deferred inside a traced task (the fan-out of train_product) carry that task's
context, so the trace goes on. With tracing off nothing is added to a task's arguments.

The tracer provider is this process's one (as OpenTelemetry's own is); tests configure
it with an in-memory exporter (`configure_tracing(..., exporter=...)`) and shut it down.
Fits run in pool processes, which trace nothing: the fit span is the worker's, around
the wait for the pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ovencast.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from sqlalchemy.ext.asyncio import AsyncEngine

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
CARRIER_KEYS = (TRACEPARENT, TRACESTATE)
# Probes and scrapes would be most of the API's spans and tell nothing.
UNTRACED_URLS = "/health,/ready,/metrics"

_propagator = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None


def configure_tracing(settings: Settings, *, component: str,
                      exporter: SpanExporter | None = None) -> bool:
    """Turn tracing on for this process when OTEL_EXPORTER_OTLP_ENDPOINT is set (or an
    `exporter` is given: tests). `component`: api or worker. Idempotent; returns whether
    tracing is on."""
    global _provider
    if _provider is not None:
        return True
    if exporter is None and not settings.otel_exporter_otlp_endpoint:
        return False
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({
        "service.name": settings.otel_service_name, "service.namespace": "ovencast",
        "ovencast.component": component}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = str(settings.otel_exporter_otlp_endpoint).rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        trace.set_tracer_provider(provider)  # for any other library that traces
    else:  # a test's exporter sees each span as soon as it ends
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    _provider = provider
    return True


def shutdown_tracing() -> None:
    """Send the spans still buffered and turn tracing off (worker exit, tests)."""
    global _provider
    if _provider is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    HTTPXClientInstrumentor().uninstrument()
    EngineTracer.remove_all_event_listeners()  # type: ignore[no-untyped-call]
    _provider.shutdown()
    _provider = None


def enabled() -> bool:
    return _provider is not None


def tracer() -> trace.Tracer:
    """This process's tracer (a no-op one while tracing is off)."""
    if _provider is None:
        return trace.NoOpTracer()
    return _provider.get_tracer("ovencast")


def instrument_app(app: FastAPI) -> None:
    """A server span per API request (not for the probes), when tracing is on."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, tracer_provider=_provider,
                                       excluded_urls=UNTRACED_URLS,
                                       exclude_spans=["receive", "send"])


def instrument_engine(engine: AsyncEngine) -> None:
    """A span per SQL statement of `engine`, when tracing is on. (The instrumentor's own
    `instrument(engine=...)` instruments one engine per process; the API and a worker
    in one test process have two.)"""
    if _provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import NoOpMeterProvider

    usage = NoOpMeterProvider().get_meter("ovencast").create_up_down_counter(
        "db.client.connections.usage")
    EngineTracer(_provider.get_tracer(  # type: ignore[no-untyped-call]
        "opentelemetry.instrumentation.sqlalchemy"), engine.sync_engine, usage)


def carrier() -> dict[str, str]:
    """The current span's context as task arguments (`traceparent`, `tracestate`); empty
    when no span is recording (tracing off)."""
    if _provider is None or not trace.get_current_span().get_span_context().is_valid:
        return {}
    fields: dict[str, str] = {}
    _propagator.inject(fields)
    return fields


def _parent(fields: Mapping[str, Any]) -> Context:
    return _propagator.extract({k: str(v) for k, v in fields.items() if k in CARRIER_KEYS})


@contextmanager
def span(name: str, **attributes: str | int | float | bool) -> Iterator[trace.Span]:
    """A span of this process, child of the current one; exceptions recorded. Its
    attributes are named `ovencast.<name>`."""
    with tracer().start_as_current_span(name, attributes={
            f"ovencast.{key}": value for key, value in attributes.items()}) as current:
        yield current


async def trace_job(call_next: Callable[[], Awaitable[Any]], context: Any,
                    worker: Any) -> Any:
    """procrastinate worker middleware: take the trace context out of the job's arguments
    (the task never sees it) and run the task in a span that continues its trace."""
    job = context.job
    fields = {key: job.task_kwargs.pop(key) for key in CARRIER_KEYS if key in job.task_kwargs}
    if _provider is None:
        return await call_next()
    attributes = {"messaging.system": "procrastinate", "messaging.operation.type": "process",
                  "procrastinate.job_id": job.id, "procrastinate.attempts": job.attempts,
                  **{f"ovencast.{key}": value for key, value in job.task_kwargs.items()
                     if isinstance(value, int | str)}}
    with tracer().start_as_current_span(f"queue {job.task_name}", context=_parent(fields),
                                        kind=trace.SpanKind.CONSUMER,
                                        attributes=attributes):
        return await call_next()
