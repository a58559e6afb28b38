"""Liveness, readiness, metrics, circuit breakers, OpenAPI, error shapes; the start-up
schema check (the app and `ovencast serve` refuse an empty database)."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import cli_command, make_settings, settings_env
from ovencast.api.app import create_app
from ovencast.errors import SchemaNotReady
from ovencast.settings import Settings

from .conftest import create_database, drop_database

pytestmark = pytest.mark.postgres


@pytest.fixture
def empty_database_url(pg_server_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database without any schema."""
    url = create_database(migrated=False)
    yield url
    drop_database(url)


def test_health_needs_no_database(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_reports_the_schema_revision(client: httpx.Client,
                                           db_value: Callable[..., Any]) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "schema_revision": db_value(
        "SELECT version_num FROM alembic_version"), "model_store": "writable"}


def test_ready_is_503_when_the_schema_is_gone(client: httpx.Client,
                                              db_value: Callable[..., Any]) -> None:
    revision = db_value("SELECT version_num FROM alembic_version")
    db_value("DELETE FROM alembic_version")
    try:
        response = client.get("/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["error"] == "schema_not_ready"
        assert "no ovencast schema" in body["detail"]
        assert "ovencast db upgrade" in body["detail"]
        assert client.get("/health").status_code == 200  # liveness is not readiness
    finally:
        db_value("INSERT INTO alembic_version (version_num) VALUES ($1)", revision)
    assert client.get("/ready").status_code == 200


def test_metrics_exports_ovencast_metrics_and_the_pool(client: httpx.Client,
                                                       api_settings: Settings) -> None:
    assert client.get("/api/v1/tenants").status_code == 200  # the pool has a connection
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert {"ovencast_checksum_failures", "ovencast_training_job_duration_seconds",
            "ovencast_db_pool_connections"} <= set(families)
    pool = {s.labels["state"]: s.value for s in families["ovencast_db_pool_connections"].samples}
    assert pool["size"] == api_settings.db_pool_size
    assert pool["checked_out"] >= 0
    assert pool["overflow"] >= 0


def test_every_request_gives_its_connection_back(client: httpx.Client) -> None:
    """Units of work that commit, roll back (404) or fail validation (422) all close their
    session: under concurrent load no connection stays checked out."""
    paths = ["/api/v1/tenants", "/api/v1/tenants/nobody", "/api/v1/training-jobs/0",
             "/api/v1/tenants/nobody/forecasts?days=0"] * 15
    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda path: client.get(path).status_code, paths))
    assert set(statuses) == {200, 404, 422}
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    pool_state = {s.labels["state"]: s.value
                  for s in families["ovencast_db_pool_connections"].samples}
    assert pool_state["checked_out"] == 0


def test_circuit_breakers_lists_every_upstream_service(client: httpx.Client) -> None:
    response = client.get("/api/v1/circuit-breakers")
    assert response.status_code == 200, response.text
    breakers = {b["service"]: b for b in response.json()}
    assert set(breakers) == {"sales", "weather", "traffic"}
    assert {b["state"] for b in breakers.values()} == {"closed"}
    assert (breakers["sales"]["failures_to_open"], breakers["weather"]["failures_to_open"]) == (
        5, 3)


def test_unknown_route_and_method_are_json(client: httpx.Client) -> None:
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    wrong = client.delete("/api/v1/tenants")
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method_not_allowed"


def test_openapi_documents_paths_tags_and_models(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/api/v1/tenants", "/api/v1/tenants/{tenant}",
                 "/api/v1/tenants/{tenant}/datasets", "/api/v1/tenants/{tenant}/training-jobs",
                 "/api/v1/training-jobs/{job_id}", "/api/v1/training-jobs/{job_id}/cancel",
                 "/api/v1/tenants/{tenant}/models",
                 "/api/v1/tenants/{tenant}/models/{product}/versions/{version}/activate",
                 "/api/v1/tenants/{tenant}/forecasts", "/api/v1/circuit-breakers",
                 "/health", "/ready", "/metrics"):
        assert path in paths, path
    create = paths["/api/v1/tenants"]["post"]
    assert create["tags"] == ["tenants"]
    assert create["summary"]
    assert create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/TenantOut")
    assert "409" in create["responses"]
    assert {t["name"] for t in spec["tags"]} >= {"tenants", "datasets", "training-jobs",
                                                 "models", "forecasts", "operations"}


def test_app_refuses_to_start_on_an_empty_database(empty_database_url: str,
                                                   tmp_path: Any) -> None:
    app = create_app(make_settings(tmp_path / "home", empty_database_url))

    async def start() -> None:
        async with app.router.lifespan_context(app):
            pytest.fail("the app started on a database without schema")

    with pytest.raises(SchemaNotReady, match="initialise it with `ovencast db upgrade`"):
        asyncio.run(start())


def test_serve_refuses_an_empty_database_with_one_line(empty_database_url: str,
                                                       tmp_path: Any) -> None:
    settings = make_settings(tmp_path / "home", empty_database_url)
    result = subprocess.run(cli_command(["serve", "--port", str(free_port())]),
                            env=settings_env(settings), capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 1
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    assert "has no ovencast schema" in error_lines[0]
    assert "`ovencast db upgrade`" in error_lines[0]
    assert "Traceback" not in result.stderr


def start_serve(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    """`ovencast serve` on `port`, once its /health answers (fails after 60 s)."""
    process = subprocess.Popen(cli_command(["serve", "--port", str(port)]), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, process.communicate()[0]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"ovencast serve did not answer in 60 s:\n{process.communicate()[0]}")
        time.sleep(0.2)


def test_serve_runs_the_api(api_settings: Settings) -> None:
    port = free_port()
    process = start_serve(settings_env(api_settings), port)
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/ready", timeout=10).json()["status"] == "ready"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM for the process manager.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
