"""Request bodies are limited while they stream in (api/body_limit.py): an oversized
upload is refused within the first megabytes past the limit, nothing past it is read.
An upload's key is checked before its body is read (api/upload_gate.py)."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest

from ovencast.keys.roles import Role
from ovencast.settings import Settings

from .conftest import RunningServer, bearer

pytestmark = pytest.mark.postgres

MB = 1024 * 1024


def test_a_2_gib_upload_is_refused_soon_after_the_limit(client: httpx.Client,
                                                        api_settings: Settings) -> None:
    limit = api_settings.max_upload_bytes
    sent = 0

    def body() -> Iterator[bytes]:  # no Content-Length: the server must count
        nonlocal sent
        boundary = b"--x\r\nContent-Disposition: form-data; name=\"sales\"; " \
                   b"filename=\"sales.csv\"\r\n\r\ndate,product,quantity\r\n"
        yield boundary
        sent += len(boundary)
        chunk = b"2024-01-01,bread,1\n" * (MB // 19)
        while sent < 2 * 1024 * MB:
            yield chunk
            sent += len(chunk)

    response = None
    # The server may close the connection while the client still sends: no response.
    with contextlib.suppress(httpx.HTTPError):
        response = client.post(
            "/api/v1/tenants/anyone/datasets", content=body(),
            headers={"content-type": "multipart/form-data; boundary=x"}, timeout=60)
    assert sent < limit + 16 * MB, f"{sent / MB:.0f} MB sent before the refusal"
    if response is not None:
        assert response.status_code == 413
        assert response.json()["error"] == "payload_too_large"


def test_a_declared_oversized_body_is_refused_before_it_is_read(
        api_server: RunningServer, api_settings: Settings) -> None:
    """Headers only: the answer comes without a byte of the body sent."""
    host, port = api_server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % (api_settings.max_body_bytes + 1))
        answer = sock.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 413")
    assert str(api_settings.max_body_bytes) in answer


def _headers_only(server: RunningServer, path: str, headers: dict[str, str],
                  content_length: int) -> str:
    """Send a request's headers and none of its body; what the server answers."""
    host, port = server.base_url.removeprefix("http://").split(":")
    lines = [f"POST {path} HTTP/1.1", "Host: x",
             "Content-Type: multipart/form-data; boundary=x",
             f"Content-Length: {content_length}",
             *(f"{name}: {value}" for name, value in headers.items())]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return sock.recv(65536).decode()


@pytest.mark.parametrize(("who", "status", "code"), [
    ("nobody", 401, "unauthenticated"),
    ("a forged key", 401, "unauthenticated"),
    ("another tenant's trainer", 404, "tenant_not_found"),
    ("the tenant's reader", 403, "forbidden"),
])
def test_an_upload_without_the_right_key_is_answered_before_its_body(
        api_server: RunningServer, api_settings: Settings, issue_key: Callable[..., str],
        client: httpx.Client, who: str, status: int, code: str) -> None:
    """50 MB announced (under MAX_UPLOAD_BYTES), not one byte sent: the answer comes
    anyway, with the body the route's own checks give."""
    client.post("/api/v1/tenants", json={"name": "gated"})
    client.post("/api/v1/tenants", json={"name": "gate-other"})
    key = {"nobody": None, "a forged key": "ovk_1_forged",
           "another tenant's trainer": issue_key("gate-other", Role.TRAIN),
           "the tenant's reader": issue_key("gated", Role.READ)}[who]
    answer = _headers_only(api_server, "/api/v1/tenants/gated/datasets",
                           bearer(key) if key else {}, content_length=50 * MB)
    assert answer.startswith(f"HTTP/1.1 {status}"), answer
    body = json.loads(answer.split("\r\n\r\n", 1)[1])
    assert body["error"] == code
    if status == 404:  # word for word what a tenant that does not exist gets
        missing = client.get("/api/v1/tenants/no-such-tenant", headers=bearer(key))
        assert body["detail"] == missing.json()["detail"].replace("no-such-tenant", "gated")


def test_a_json_body_over_its_limit_is_413_and_one_under_it_is_read(
        client: httpx.Client, api_settings: Settings) -> None:
    big = {"name": "x" * (api_settings.max_body_bytes + 10)}
    over = client.post("/api/v1/tenants", content=_chunked(big), timeout=60,
                       headers={"content-type": "application/json"})
    assert over.status_code == 413
    under = client.post("/api/v1/tenants", json={"name": ""})
    assert under.status_code == 422  # read and refused for its content, not its size


def _chunked(payload: dict[str, str]) -> Iterator[bytes]:
    data = json.dumps(payload).encode()
    for start in range(0, len(data), 64 * 1024):
        yield data[start:start + 64 * 1024]
