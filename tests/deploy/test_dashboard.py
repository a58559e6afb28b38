"""deploy/grafana/ovencast.json against the code: every series its queries read is one
that ovencast exports, with the labels the queries group and filter by, and the panels
cover what an operator watches (issue 19)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

# Importing these registers every metric that the API and the workers export.
import ovencast.api.app
import ovencast.observability.http_metrics
import ovencast.observability.metrics
import ovencast.observability.queue_depth
import ovencast.queue.worker  # noqa: F401

from .manifests import REPO

DASHBOARD = REPO / "deploy" / "grafana" / "ovencast.json"
SERIES = re.compile(r"\b(ovencast_\w+)(\{[^}]*\})?")
GROUPING = re.compile(r"\bby \(([^)]*)\)")
PROMQL_LABELS = {"le"}  # a histogram's bucket bound: every _bucket series has it
SUFFIXES = {"counter": ("_total", "_created"),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
            "gauge": ("",)}


def queries(node: Any = None) -> Iterator[str]:
    node = json.loads(DASHBOARD.read_text()) if node is None else node
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr":
                yield str(value)
            else:
                yield from queries(value)
    elif isinstance(node, list):
        for value in node:
            yield from queries(value)


def exported() -> dict[str, set[str]]:
    """Every sample name ovencast's metrics export, with the metric's label names."""
    found: dict[str, set[str]] = {}
    # The registry keeps no public list of collectors; its collect() would show label
    # names only of series already observed.
    for collector in list(REGISTRY._collector_to_names):
        labels = set(getattr(collector, "_labelnames", ()))
        for family in collector.describe() if hasattr(collector, "describe") else []:
            if not family.name.startswith("ovencast_"):
                continue
            base = family.name.removesuffix("_total") if family.type == "counter" \
                else family.name
            for suffix in SUFFIXES.get(family.type, ("",)):
                found[base + suffix] = labels
    return found


EXPORTED = exported()
QUERIES = list(queries())


def test_the_dashboard_has_queries_and_the_code_exports_metrics() -> None:
    assert len(QUERIES) >= 10
    assert "ovencast_products_total" in EXPORTED
    assert "ovencast_training_job_duration_seconds_bucket" in EXPORTED


@pytest.mark.parametrize("query", QUERIES)
def test_every_series_a_query_reads_is_exported_with_its_labels(query: str) -> None:
    series = SERIES.findall(query)
    assert series, f"no ovencast series in {query!r}"
    used_labels = {label.strip() for group in GROUPING.findall(query)
                   for label in group.split(",") if label.strip()}
    known: set[str] = set()
    for name, selector in series:
        assert name in EXPORTED, f"{name} is not exported (observability/metrics.py)"
        known |= EXPORTED[name]
        for matcher in re.findall(r"(\w+)\s*[!=~]+", selector):
            assert matcher in EXPORTED[name], f"{name} has no label {matcher!r}"
    assert used_labels <= known | PROMQL_LABELS, (query, used_labels - known)


def test_the_panels_cover_what_an_operator_watches() -> None:
    text = " ".join(QUERIES)
    for name in ("ovencast_training_job_duration_seconds", "ovencast_products_total",
                 "ovencast_circuit_breaker_state", "ovencast_fit_pool_processes",
                 "ovencast_checksum_failures_total", "ovencast_lock_wait_timeouts_total",
                 "ovencast_http_request_duration_seconds", "ovencast_queue_jobs"):
        assert name in text, name
