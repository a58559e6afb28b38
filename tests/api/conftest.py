"""Fixtures of the HTTP API tests: a fresh PostgreSQL database per test module (migrated
to head, dropped afterwards) and the app served by a real uvicorn server on a loopback
ephemeral port, driven with httpx.

Keys: `client` sends a global admin key (created through the keys service, as `ovencast
keys create --admin --role admin` does), so tests about something else reach everything;
`issue_key(tenant, role)` and `client_with(key)` make callers of one tenant and role
(tests/api/test_auth.py), `anonymous` sends none.

PostgreSQL down: skipped locally, failed under CI=true (the `pg_server_url` fixture)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from conftest import in_thread, make_settings, pg_admin, pg_url, run_async
from ovencast.api.app import create_app
from ovencast.db import migrate
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.keys import service as keys_service
from ovencast.keys.roles import Role
from ovencast.settings import Settings

SERVER_START_TIMEOUT_S = 30.0


def create_database(*, migrated: bool) -> str:
    name = f"ovencast_api_{uuid.uuid4().hex[:8]}"
    pg_admin(f"CREATE DATABASE {name}")
    url = pg_url(name)
    if migrated:
        try:
            in_thread(migrate.upgrade, url)
        except BaseException:
            drop_database(url)
            raise
    return url


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def api_database_url(pg_server_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database at the head revision, for one test module."""
    url = create_database(migrated=True)
    yield url
    drop_database(url)


@pytest.fixture(scope="module")
def api_settings(api_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("api-home"), api_database_url)


@dataclass
class RunningServer:
    app: FastAPI
    base_url: str
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def ws_url(self) -> str:
        return "ws" + self.base_url.removeprefix("http")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=SERVER_START_TIMEOUT_S)


def start_server(app: FastAPI) -> RunningServer:
    """Serve `app` with uvicorn in a thread, on a socket bound to 127.0.0.1:0."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise RuntimeError("the API server did not start (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the API server did not start in {SERVER_START_TIMEOUT_S}s")
        time.sleep(0.02)
    return RunningServer(app=app, base_url=f"http://127.0.0.1:{port}", server=server,
                         thread=thread)


@pytest.fixture(scope="module")
def api_server(api_settings: Settings) -> Iterator[RunningServer]:
    running = start_server(create_app(api_settings))
    yield running
    running.stop()


def create_key(settings: Settings, *, tenant: str | None, role: Role,
               name: str | None = None) -> str:
    """A new API key on the settings' database, through the keys service."""

    async def create() -> str:
        database = Database.open(settings)
        try:
            async with unit_of_work(database.sessions) as session:
                issued = await keys_service.create_key(session, tenant=tenant, role=role,
                                                       name=name)
                return issued.key
        finally:
            await database.close()

    return run_async(create)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def issue_key(api_settings: Settings) -> Callable[..., str]:
    """`issue_key(tenant, role)`: a new key of this module's database (tenant None:
    global)."""
    return lambda tenant, role, name=None: create_key(api_settings, tenant=tenant,
                                                      role=role, name=name)


@pytest.fixture(scope="module")
def admin_key(issue_key: Callable[..., str]) -> str:
    return issue_key(None, Role.ADMIN, "api tests")


@pytest.fixture(scope="module")
def client(api_server: RunningServer, admin_key: str) -> Iterator[httpx.Client]:
    """A client with a global admin key: it reaches every tenant and route."""
    with httpx.Client(base_url=api_server.base_url, timeout=60.0,
                      headers=bearer(admin_key)) as http:
        yield http


@pytest.fixture(scope="module")
def anonymous(api_server: RunningServer) -> Iterator[httpx.Client]:
    """A client without key."""
    with httpx.Client(base_url=api_server.base_url, timeout=60.0) as http:
        yield http


@pytest.fixture(scope="module")
def client_with(api_server: RunningServer) -> Iterator[Callable[[str], httpx.Client]]:
    """`client_with(key)`: a client sending that key (closed at the module's end)."""
    clients: list[httpx.Client] = []

    def make(key: str) -> httpx.Client:
        clients.append(httpx.Client(base_url=api_server.base_url, timeout=60.0,
                                    headers=bearer(key)))
        return clients[-1]

    yield make
    for http in clients:
        http.close()


def dataset_files(directory: Path) -> dict[str, tuple[str, bytes, str]]:
    """A dataset directory as the multipart `files` of an upload."""
    files: dict[str, tuple[str, bytes, str]] = {}
    for field in ("sales", "weather", "traffic", "calendar"):
        path = directory / f"{field}.csv"
        if path.is_file():
            files[field] = (path.name, path.read_bytes(), "text/csv")
    return files


def libpq_url(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


def sql_value(database_url: str, statement: str, *args: Any) -> Any:
    """Run one statement on the test database (outside the app) and return its first
    value: how a test looks at what was, or was not, stored."""

    async def run() -> Any:
        connection = await asyncpg.connect(libpq_url(database_url))
        try:
            return await connection.fetchval(statement, *args)
        finally:
            await connection.close()

    return run_async(run)


@pytest.fixture(scope="module")
def db_value(api_database_url: str) -> Callable[..., Any]:
    """`db_value(sql, *args)`: first value of a statement on this module's database."""
    return lambda statement, *args: sql_value(api_database_url, statement, *args)
