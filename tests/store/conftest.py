"""Fixtures of the model-store tests. Every test that takes `backend` (or `store`) runs
once per backend: local disk, `memory://`, and S3 (s3fs against moto's S3 server on
loopback, `s3_server.py`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovencast.store import FsspecModelStore

from .backends import Backend, crash_local, crash_object_store
from .s3_server import S3Server, running_s3_server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One S3 server for the session; each test makes buckets of its own."""
    with running_s3_server() as server:
        yield server


@pytest.fixture(params=["local", "memory", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "local":
        root = tmp_path / "models"
        yield Backend(
            "local",
            lambda backup_enabled=True: FsspecModelStore(root, backup_enabled=backup_enabled),
            crash_local,
        )
        return

    options = {}
    if request.param == "memory":
        url = f"memory://ovencast-test-{uuid.uuid4().hex}/models"
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        url = f"s3://{server.new_bucket()}/models"
        options = server.storage_options()
    # Memory filesystems share one process-wide dict, and S3 one server: a unique root
    # per test keeps tests apart, and the teardown below empties it.

    stores: list[FsspecModelStore] = []

    def make(backup_enabled: bool = True) -> FsspecModelStore:
        store = FsspecModelStore(url, backup_enabled=backup_enabled, storage_options=options)
        stores.append(store)
        return store

    yield Backend(request.param, make, crash_object_store)
    for store in stores:
        root = store.fs._strip_protocol(url)
        if store.fs.exists(root):
            store.fs.rm(root, recursive=True)


@pytest.fixture
def store(backend: Backend) -> FsspecModelStore:
    return backend.make(backup_enabled=True)
