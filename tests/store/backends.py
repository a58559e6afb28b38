"""Backends for the model-store contract suite (`test_store_contract.py`).

A backend knows how to build a store and how to break it from the outside: make the
next write of a given payload die half-way, the way that backend can really fail.
`flip_one_byte` corrupts a stored artifact on any backend.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

import pytest
from fsspec.core import url_to_fs

import ovencast.store.fs as fs_module
from ovencast.store import FsspecModelStore


@dataclass
class CrashProbe:
    """Filled in by an injected crash, so a test can check the crash really happened."""

    triggered: bool = False
    bytes_written_before_crash: int = 0
    temp_paths: list[str] = field(default_factory=list)


class SimulatedCrash(OSError):
    """The failure injected in the middle of a write."""


@dataclass
class Backend:
    name: str
    make: Callable[..., FsspecModelStore]
    # (monkeypatch, store, payload) -> probe: the next write of exactly `payload` dies
    # half-way through.
    crash_while_writing: Callable[[pytest.MonkeyPatch, FsspecModelStore, bytes], CrashProbe]


def flip_one_byte(store: FsspecModelStore, uri: str, *, offset: int = 0) -> None:
    """Corrupt a stored artifact, as bit rot or a stray write would: through the store's
    own filesystem (and its credentials), bypassing the store. Objects cannot be changed
    in place, so the whole object is written again with one bit flipped."""
    path = store.fs._strip_protocol(uri)
    payload = bytearray(store.fs.cat_file(path))
    payload[offset] ^= 0x01
    store.fs.pipe_file(path, bytes(payload))


# -- local disk ---------------------------------------------------------------------
def crash_local(
    monkeypatch: pytest.MonkeyPatch, store: FsspecModelStore, payload: bytes
) -> CrashProbe:
    """The low-level chunk writer writes half of `payload` to disk, then fails."""
    probe = CrashProbe()
    real_write_chunks = fs_module._write_chunks

    def write_half_then_fail(stream: IO[bytes], data: bytes) -> None:
        if bytes(data) != payload:
            real_write_chunks(stream, data)
            return
        half = len(data) // 2
        stream.write(data[:half])
        stream.flush()
        probe.triggered = True
        probe.bytes_written_before_crash = half
        probe.temp_paths.extend(_paths_of_open_file(stream, store))
        raise SimulatedCrash("simulated crash in the middle of writing the payload")

    monkeypatch.setattr(fs_module, "_write_chunks", write_half_then_fail)
    return probe


def _paths_of_open_file(stream: IO[bytes], store: FsspecModelStore) -> list[str]:
    """Where under the store's root the file being written currently lives."""
    inode = os.fstat(stream.fileno()).st_ino
    root = url_to_fs(store.root_uri)[1]
    return [
        os.path.join(directory, name)
        for directory, _, names in os.walk(root)
        for name in names
        if os.stat(os.path.join(directory, name)).st_ino == inode
    ]


# -- object stores (memory://, S3 on moto's server) ---------------------------------------------
def crash_object_store(
    monkeypatch: pytest.MonkeyPatch, store: FsspecModelStore, payload: bytes
) -> CrashProbe:
    """The PUT of `payload` dies half-way through the upload. An object store never
    publishes an incomplete object, so nothing of it may be visible afterwards."""
    probe = CrashProbe()
    real_pipe_file = store.fs.pipe_file

    def pipe_file_dies(path: str, value: bytes, **kwargs: Any) -> None:
        if bytes(value) != payload:
            real_pipe_file(path, value, **kwargs)
            return
        probe.triggered = True
        probe.bytes_written_before_crash = len(value) // 2
        raise SimulatedCrash("simulated connection reset half-way through the upload")

    monkeypatch.setattr(store.fs, "pipe_file", pipe_file_dies)
    return probe
