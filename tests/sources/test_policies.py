"""The value objects: fault specs, the fault table, the retry policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ovencast.sources.contract import service_of_path
from ovencast.sources.errors import (
    CircuitOpen,
    UpstreamBadResponse,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)
from ovencast.sources.retry import RetryPolicy
from ovencast.testing.faults import Fault, FaultTable, load_faults


@pytest.mark.parametrize(("spec", "expected"), [
    ("weather:status=503", Fault("weather", status=503)),
    ("sales:delay=2.5", Fault("sales", delay=2.5)),
    ("traffic:drop,times=2", Fault("traffic", drop=True, times=2)),
    ("*:malformed", Fault("*", malformed=True)),
    ("/tenants/*/calendar:status=500,delay=0.1", Fault("/tenants/*/calendar", status=500,
                                                       delay=0.1)),
])
def test_fault_specs_parse(spec: str, expected: Fault) -> None:
    assert Fault.parse(spec) == expected


@pytest.mark.parametrize(("spec", "message"), [
    ("weather", "expected TARGET:ACTION"),
    ("rain:status=503", "fault target 'rain'"),
    ("sales:status=abc", "is not a number"),
    ("sales:status=700", "expected 100-599"),
    ("sales:delay=-1", "must be >= 0"),
    ("sales:times=0", "must be >= 1"),
    ("sales:explode", "unknown action 'explode'"),
    ("sales:times=2", "does nothing"),
    ("sales:status=503,drop", "at most one of"),
])
def test_bad_fault_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Fault.parse(spec)


def test_faults_from_a_json_file(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    path.write_text(json.dumps(["sales:status=503", {"target": "weather", "delay": 1}]))
    assert load_faults([str(path), "traffic:drop"]) == [
        Fault("sales", status=503), Fault("weather", delay=1.0), Fault("traffic", drop=True)]


@pytest.mark.parametrize(("target", "service", "path", "matches"), [
    ("sales", "sales", "/tenants/a/sales", True),
    ("sales", "sales", "/tenants/a/calendar", True),
    ("sales", "weather", "/tenants/a/weather", False),
    ("*", "traffic", "/tenants/a/traffic", True),
    ("*", None, "/health", False),
    ("/tenants/*/calendar", "sales", "/tenants/a/calendar", True),
    ("/tenants/*/calendar", "sales", "/tenants/a/sales", False),
])
def test_fault_matching(target: str, service: str | None, path: str, matches: bool) -> None:
    assert Fault(target, status=500).matches(service, path) is matches


def test_fault_table_answers_with_one_fault_per_request_in_order() -> None:
    table = FaultTable()
    table.replace([Fault("sales", status=503, times=1), Fault("sales", drop=True, times=1),
                   Fault("sales", delay=0.5)])
    assert table.take("sales", "/tenants/a/sales") == [Fault("sales", status=503, times=1),
                                                       Fault("sales", delay=0.5)]
    assert table.take("sales", "/tenants/a/sales") == [Fault("sales", drop=True, times=1),
                                                       Fault("sales", delay=0.5)]
    assert table.take("sales", "/tenants/a/sales") == [Fault("sales", delay=0.5)]
    assert table.take("weather", "/tenants/a/weather") == []


@pytest.mark.parametrize(("path", "service"), [
    ("/tenants/kiel", "sales"), ("/tenants/kiel/sales", "sales"),
    ("/tenants/kiel/calendar", "sales"), ("/tenants/kiel/weather", "weather"),
    ("/tenants/kiel/traffic", "traffic"), ("/tenants/kiel/other", None),
    ("/_stats", None), ("/", None),
])
def test_service_of_path(path: str, service: str | None) -> None:
    assert service_of_path(path) == service


@pytest.mark.parametrize(("error", "retryable"), [
    (UpstreamUnavailable("sales", "read timeout after 60 s"), True),
    (CircuitOpen("sales", 10.0), False),
    (UpstreamBadResponse("sales", "body is not valid JSON"), False),
    (UpstreamNotFound("sales", "t", "unknown"), False),
    (UpstreamRejected("sales", 400, "bad_request", "limit"), False),
    (ValueError("a bug"), False),
])
def test_what_is_retried(error: Exception, retryable: bool) -> None:
    assert RetryPolicy.is_retryable(error) is retryable


@pytest.mark.parametrize(("attempt", "draw", "wait"), [
    (1, 0.0, 0.5), (2, 0.0, 1.0), (3, 0.0, 2.0), (4, 0.0, 4.0), (5, 0.0, 8.0),
    (6, 0.0, 8.0), (1, 1.0, 1.0), (3, 0.5, 2.25), (5, 1.0, 8.0), (2000, 0.0, 8.0),
])
def test_backoff_is_exponential_with_jitter_and_capped(attempt: int, draw: float,
                                                       wait: float) -> None:
    policy = RetryPolicy(initial_s=0.5, max_s=8.0, jitter_s=0.5)
    assert policy.backoff_s(attempt, draw) == pytest.approx(wait)
