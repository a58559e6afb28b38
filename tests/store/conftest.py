"""Fixtures of the model-store tests. Every test that takes `backend` (or `store`) runs
once per backend: local disk, `memory://`, and an in-memory fake with S3 paths."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fsspec.registry import _registry as fsspec_registry

from ovencast.store import FsspecModelStore

from .backends import Backend, FakeS3FileSystem, crash_local, crash_object_store


@pytest.fixture(params=["local", "memory", "fake-s3"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    if request.param == "local":
        root = tmp_path / "models"
        yield Backend(
            "local",
            lambda backup_enabled=True: FsspecModelStore(root, backup_enabled=backup_enabled),
            crash_local,
        )
        return

    if request.param == "memory":
        url = f"memory://ovencast-test-{uuid.uuid4().hex}/models"
    else:
        monkeypatch.setitem(fsspec_registry, "s3", FakeS3FileSystem)
        monkeypatch.setitem(fsspec_registry, "s3a", FakeS3FileSystem)
        url = f"s3://bucket-{uuid.uuid4().hex[:12]}/models"
    # Memory filesystems share one process-wide dict; a unique root per test keeps tests
    # apart, and the teardown below empties it.

    stores: list[FsspecModelStore] = []

    def make(backup_enabled: bool = True) -> FsspecModelStore:
        store = FsspecModelStore(url, backup_enabled=backup_enabled)
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
