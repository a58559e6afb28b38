"""Prometheus metrics named in SPEC.md "Observability", and those an operator of the
service needs besides (issue 19). In the embedded shape they live for one CLI process; in
the service shape the API exports its own at /metrics, each worker its own at
WORKER_METRICS_PORT (observability/worker_server.py).

Where each is counted, so that it is counted in the process that exports it (a fit runs
in a pool process, whose registry nobody scrapes: the worker counts the outcome it gets
back):

| metric | counted in |
| --- | --- |
| training job duration | jobs/service.py, by the process that closes the job |
| products by outcome and family, product duration | training/worker.train_one (a second |
| | delivery of a task that already ended is not counted again); queue/tasks.py |
| | (a product whose data could not be prepared) |
| fit duration | queue/runtime.WorkerRuntime.fit, around the pool process's fit |
| lock waits, contentions, timeouts | training/advisory_lock.py, training/locks.py |
| checksum failures | models/service.load_verified, training/tenant_stage.load_stored_models |
| breaker states | sources/breakers.py |
| upstream request latency, retries | sources/client.py, sources/retry.py |
| HTTP requests | observability/http_metrics.py (API middleware) |
| queue depth | observability/queue_depth.py, read from the database at each API scrape |
| DB pool, fit pool | set at each scrape (api/health.py, queue/worker.py) |
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

TRAINING_JOB_DURATION = Histogram(
    "ovencast_training_job_duration_seconds", "Wall time of a training job",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200))
PRODUCT_TRAINING_DURATION = Histogram(
    "ovencast_product_training_duration_seconds", "Wall time of one product's training",
    ["family"], buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 1800))
CHECKSUM_FAILURES = Counter(
    "ovencast_checksum_failures_total", "Artifacts refused because their SHA-256 differed")
LOCK_WAIT_TIMEOUTS = Counter(
    "ovencast_lock_wait_timeouts_total", "(tenant, product) locks not acquired in time")
LOCK_CONTENTIONS = Counter(
    "ovencast_lock_contentions_total", "(tenant, product) locks found held by another process")
DB_POOL_CONNECTIONS = Gauge(
    "ovencast_db_pool_connections",
    "Database pool of this process: size, connections checked out, overflow in use",
    ["state"])
CIRCUIT_BREAKER_STATE = Gauge(
    "ovencast_circuit_breaker_state",
    "State of an upstream service's circuit breaker: 0 closed, 1 half-open, 2 open",
    ["service"])

# -- service workers ----------------------------------------------------------------
PRODUCTS_ENDED = Counter(
    "ovencast_products",
    "Products whose training ended in this process, by outcome (trained, failed, timed_out) "
    "and family (the family chosen when trained, else the families asked for)",
    ["outcome", "family"])
FIT_DURATION = Histogram(
    "ovencast_fit_duration_seconds",
    "Wall time of one product's fit in a pool process, by the family chosen",
    ["family"], buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 1800))
FIT_POOL_PROCESSES = Gauge(
    "ovencast_fit_pool_processes",
    "The worker's fit pool: size (MAX_CONCURRENT_TRAINING_JOBS) and busy (fits running)",
    ["state"])
LOCK_WAIT_SECONDS = Histogram(
    "ovencast_lock_wait_seconds", "Time waited for a (tenant, product) training lock",
    buckets=(0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900))
UPSTREAM_REQUEST_DURATION = Histogram(
    "ovencast_upstream_request_duration_seconds",
    "One attempt of a GET to an upstream service, through its circuit breaker, by outcome "
    "(ok or the error's class)",
    ["service", "outcome"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
UPSTREAM_RETRIES = Counter(
    "ovencast_upstream_retries", "Upstream GETs retried after a failed attempt", ["service"])

# -- API ------------------------------------------------------------------------------
HTTP_REQUEST_DURATION = Histogram(
    "ovencast_http_request_duration_seconds",
    "API requests by method, route template (unmatched: no route) and status",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
QUEUE_JOBS = Gauge(
    "ovencast_queue_jobs",
    "Entries of the training queue waiting (todo) or running (doing), by task; read from "
    "the database at each scrape of the API",
    ["task", "status"])


@contextmanager
def observe_upstream(service: str) -> Iterator[None]:
    """Time one attempt of an upstream call; its outcome is ok or the error's class."""
    started = time.perf_counter()
    outcome = "ok"
    try:
        yield
    except BaseException as exc:
        outcome = type(exc).__name__
        raise
    finally:
        UPSTREAM_REQUEST_DURATION.labels(service=service, outcome=outcome).observe(
            time.perf_counter() - started)


def product_ended(outcome: str, *, family: str | None, asked: tuple[str, ...]) -> None:
    """Count a product whose training ended: labelled with the family chosen, or (when
    none was: failed, timed out) the families the job asked for."""
    PRODUCTS_ENDED.labels(outcome=str(outcome), family=family or "+".join(asked)).inc()


def observe_db_pool(pool: Any) -> None:
    """Set `DB_POOL_CONNECTIONS` from a SQLAlchemy pool (called on each /metrics scrape).
    Pools without a size (SQLite's NullPool) report nothing."""
    try:
        size, checked_out, overflow = pool.size(), pool.checkedout(), pool.overflow()
    except AttributeError:
        return
    DB_POOL_CONNECTIONS.labels(state="size").set(size)
    DB_POOL_CONNECTIONS.labels(state="checked_out").set(checked_out)
    # QueuePool counts overflow from -pool_size up; only connections beyond the pool count.
    DB_POOL_CONNECTIONS.labels(state="overflow").set(max(0, overflow))
