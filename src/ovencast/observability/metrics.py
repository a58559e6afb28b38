"""Prometheus metrics named in SPEC.md "Observability". In the embedded shape they live
for one CLI process; the service shape exports them at /metrics."""

from __future__ import annotations

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
