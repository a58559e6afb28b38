"""The API derives each error's status and code from its class, never from the call site."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ovencast import errors
from ovencast.api.errors import KINDS, error_code, status_for
from ovencast.sources.errors import (
    CircuitOpen,
    UpstreamBadResponse,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)

SRC = Path(errors.__file__).resolve().parent


@pytest.mark.parametrize(("error", "status", "code"), [
    (errors.NotFound("x"), 404, "not_found"),
    (errors.TenantNotFound("x"), 404, "tenant_not_found"),
    (errors.Conflict("x"), 409, "conflict"),
    (errors.TenantExists("x"), 409, "tenant_exists"),
    (errors.InvalidRequest("x"), 422, "unprocessable"),
    (errors.InvalidDataset("x"), 422, "invalid_dataset"),
    (errors.ForecastUnavailable("x"), 422, "forecast_unavailable"),
    (errors.PayloadTooLarge("x"), 413, "payload_too_large"),
    (errors.SchemaNotReady("x"), 503, "schema_not_ready"),
    (errors.ChecksumMismatch("x"), 500, "checksum_mismatch"),
    (errors.ArtifactMissing("x"), 500, "artifact_missing"),
    (errors.Misconfigured("x"), 500, "misconfigured"),
    (errors.Unauthenticated("x"), 401, "unauthenticated"),
    (errors.Forbidden("x"), 403, "forbidden"),
    (errors.RateLimited("x", retry_after_s=3), 429, "rate_limited"),
    (UpstreamUnavailable("sales", "down"), 503, "upstream_unavailable"),
    (CircuitOpen("sales", 3.0), 503, "circuit_open"),
    (UpstreamBadResponse("sales", "junk"), 502, "upstream_bad_response"),
    (UpstreamRejected("sales", 400, "bad_request", "x"), 502, "upstream_rejected"),
    (UpstreamNotFound("sales", "t", "unknown"), 404, "upstream_not_found"),
])
def test_status_and_code_come_from_the_class(error: errors.OvencastError, status: int,
                                             code: str) -> None:
    assert status_for(error) == status
    assert status_for(type(error)) == status
    assert error_code(error) == code


def test_every_kind_of_errors_py_has_a_status() -> None:
    kinds = {cls for cls in vars(errors).values() if isinstance(cls, type)
             and issubclass(cls, errors.OvencastError)
             and cls.__bases__ == (errors.OvencastError,)}
    assert kinds == {kind for kind, _, _ in KINDS}


def test_the_root_is_never_raised_and_no_call_site_passes_a_status() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "OvencastError"):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno} OvencastError(...)")
            if isinstance(node, ast.Call) and any(k.arg == "status_code" for k in node.keywords
                                                  ) and _is_error_call(node):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno} status_code=")
    assert offenders == []


def _is_error_call(node: ast.Call) -> bool:
    name = node.func.id if isinstance(node.func, ast.Name) else ""
    return name in {n for n, v in vars(errors).items() if isinstance(v, type)}
