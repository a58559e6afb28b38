"""The data server speaks the contract of docs/UPSTREAM.md: paging, errors, admin."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import UPSTREAM_TENANT as TENANT
from conftest import Admin, cli_command, make_settings, settings_env
from ovencast.testing.upstream_server import RunningServer, ServedTenant


def get(server: RunningServer, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", params=params)


def test_pages_concatenate_to_the_whole_range(data_server: RunningServer,
                                              kiel_served: ServedTenant) -> None:
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2500, "product": ["bread", "cake"]}
        if cursor:
            params["cursor"] = cursor
        body = get(data_server, f"/tenants/{TENANT}/sales", **params).json()
        rows.extend(body["rows"])
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    expected = [r for r in kiel_served.sales if r["product"] in ("bread", "cake")]
    assert rows == expected
    assert pages == -(-len(expected) // 2500)


def test_series_rows_have_every_column_and_null_for_no_value(
        data_server: RunningServer) -> None:
    body = get(data_server, f"/tenants/{TENANT}/weather", start="2012-01-01",
               end="2012-01-03").json()
    assert body["columns"] == ["cloud_cover_okta", "temperature_c", "wind_speed",
                               "weather_code"]
    assert [r["date"] for r in body["rows"]] == ["2012-01-01", "2012-01-02", "2012-01-03"]
    assert body["rows"][1]["weather_code"] is None
    assert body["next_cursor"] is None


def test_a_series_the_tenant_lacks_is_empty_not_an_error(data_server: RunningServer) -> None:
    body = get(data_server, f"/tenants/{TENANT}/traffic").json()
    assert body == {"tenant": TENANT, "columns": [], "rows": [], "next_cursor": None}


@pytest.mark.parametrize(("path", "params", "status", "error", "detail"), [
    ("/tenants/nobody/sales", {}, 404, "unknown_tenant", "tenant 'nobody' is not known"),
    ("/tenants/nobody", {}, 404, "unknown_tenant", "not known to this service"),
    ("/tenants/kiel/rain", {}, 404, "not_found", "Not Found"),
    ("/tenants/kiel/sales", {"end": "31.12.2016"}, 400, "bad_request", "end:"),
    ("/tenants/kiel/sales", {"start": "2017-01-02", "end": "2017-01-01"}, 400,
     "bad_request", "start 2017-01-02 is after end 2017-01-01"),
    ("/tenants/kiel/weather", {"limit": 0}, 400, "bad_request", "limit:"),
    ("/tenants/kiel/calendar", {"cursor": "abc"}, 400, "bad_request",
     "cursor 'abc' is not a cursor"),
])
def test_errors_have_the_contract_shape(data_server: RunningServer, path: str,
                                        params: dict[str, Any], status: int, error: str,
                                        detail: str) -> None:
    response = get(data_server, path, **params)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == error
    assert detail in body["detail"]


def test_admin_endpoints_are_neither_counted_nor_faulted(data_server: RunningServer,
                                                        admin: Admin) -> None:
    admin.faults("*:status=500")
    assert get(data_server, f"/tenants/{TENANT}").status_code == 500
    assert get(data_server, "/health").status_code == 200
    assert get(data_server, "/_faults").json()["faults"][0]["target"] == "*"
    assert admin.requests() == 1
    bad = httpx.post(f"{data_server.url}/_faults", json={"faults": ["sales:status=1"]})
    assert bad.status_code == 400
    assert "expected 100-599" in bad.json()["detail"]
    admin.clear_faults()
    admin.reset_stats()
    assert get(data_server, f"/tenants/{TENANT}").status_code == 200
    assert admin.requests("sales") == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_data_server_serves_a_directory_with_faults(kiel_dir: Path,
                                                        tmp_path: Path) -> None:
    port = _free_port()
    env = settings_env(make_settings(tmp_path / "home"))
    process = subprocess.Popen(
        cli_command(["data-server", str(kiel_dir), "--port", str(port), "--tenant", "bakery",
                     "--country", "DE", "--subdivision", "SH",
                     "--faults", "weather:status=503"]),
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the data server did not start"
            time.sleep(0.2)
        profile = httpx.get(f"{url}/tenants/bakery").json()
        assert (profile["country"], profile["subdivision"]) == ("DE", "SH")
        assert httpx.get(f"{url}/tenants/bakery/weather").status_code == 503
        assert httpx.get(f"{url}/_stats").json()["requests"] == {
            "sales": 1, "weather": 1, "traffic": 0}
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()

