"""Slow clients against `ovencast serve` (a real uvicorn on loopback, raw sockets): headers
that never end get a 408 and the connection closes, a body that stalls closes the
connection, a slow but steady body and kept-alive connections still work, and the
server answers other clients meanwhile (api/server_protocol.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from conftest import settings_env
from ovencast.settings import Settings

from .test_operations import free_port, start_serve

pytestmark = pytest.mark.postgres

TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def server(api_settings: Settings) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = settings_env(api_settings, REQUEST_HEADER_TIMEOUT_SECONDS=str(TIMEOUT_S),
                       REQUEST_BODY_TIMEOUT_SECONDS=str(TIMEOUT_S))
    process = start_serve(env, port)
    try:
        yield "127.0.0.1", port
    finally:
        process.terminate()
        process.communicate(timeout=30)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a generous limit, not a timing)."""
    sock.settimeout(30)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_headers_that_never_end_get_a_408_and_the_connection_closes(
        server: tuple[str, int]) -> None:
    with socket.create_connection(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"did not arrive within 1 s" in answer


def test_a_connection_that_sends_nothing_is_closed(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as sock:
        assert read_until_closed(sock).startswith(b"HTTP/1.1 408 ")


def test_a_body_that_stalls_closes_the_connection(server: tuple[str, int]) -> None:
    with socket.create_connection(server) as sock:
        sock.sendall(b"POST /sign-in HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 1000\r\n\r\nkey=abc")
        answer = read_until_closed(sock)
    assert answer == b"", answer  # closed without an answer: the body never came


def test_a_slow_but_steady_body_is_answered(server: tuple[str, int]) -> None:
    body = b"key=" + b"x" * 11
    with socket.create_connection(server) as sock:
        sock.sendall(b"POST /sign-in HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        # Three pauses of half the body timeout: longer than it in total, never idle
        # for as long as it.
        for part in (body[:5], body[5:10], body[10:]):
            time.sleep(TIMEOUT_S / 2)
            sock.sendall(part)
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]  # an unknown key, answered


def test_kept_alive_connections_and_other_clients_are_served(
        server: tuple[str, int]) -> None:
    host, port = server
    with socket.create_connection(server) as stalled, \
            httpx.Client(base_url=f"http://{host}:{port}") as client:
        stalled.sendall(b"GET /health HTTP/1.1\r\n")  # holds nothing up
        for _ in range(3):  # one connection, requests apart by less than the timeout
            assert client.get("/health").json() == {"status": "ok"}
            time.sleep(TIMEOUT_S / 2)
        assert read_until_closed(stalled).startswith(b"HTTP/1.1 408 ")
