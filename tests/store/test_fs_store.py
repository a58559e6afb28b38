"""What the local-disk backend of `FsspecModelStore` adds to the shared contract: the
ways a root can be written, same-directory temp files plus rename, and survival of a
process killed with SIGKILL in the middle of writing a large artifact."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import stat
import sys
import time
from pathlib import Path
from typing import IO, Any

import pytest
from fsspec.implementations.memory import MemoryFileSystem
from fsspec.registry import _registry as fsspec_registry

import ovencast.store.fs as fs_module
from ovencast.store import FsspecModelStore, ModelStore, open_store

from .backends import SimulatedCrash, crash_local

KEY = "acme/croissant/prophet/v000001.json"
MIB = 1 << 20

needs_fork = pytest.mark.skipif(
    sys.platform == "win32" or "fork" not in multiprocessing.get_all_start_methods(),
    reason="SIGKILL of a forked writer needs POSIX",
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- roots ----------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["path", "pathlib", "file-url", "relative"])
def test_open_store_accepts_every_way_of_writing_a_local_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    root = tmp_path / "models"
    monkeypatch.chdir(tmp_path)
    spellings: dict[str, str | Path] = {
        "path": str(root),
        "pathlib": root,
        "file-url": f"file://{root}",
        "relative": "models",
    }
    spelled = spellings[form]

    store = open_store(spelled, backup_enabled=True)
    stored = store.save(KEY, b"payload")

    assert isinstance(store, ModelStore)
    assert store.root_uri == f"file://{root}"
    assert stored.uri == f"file://{root}/{KEY}"
    assert (root / KEY).read_bytes() == b"payload"


@pytest.mark.parametrize("backup_enabled", [True, False])
def test_open_store_passes_the_backup_setting_on(tmp_path: Path, backup_enabled: bool) -> None:
    store = open_store(tmp_path, backup_enabled=backup_enabled)
    store.save(KEY, b"one")

    replaced = store.save(KEY, b"two").replaced_backup_uri

    assert (replaced is not None) is backup_enabled


def test_a_filesystem_that_writes_in_place_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class InPlaceFileSystem(MemoryFileSystem):
        protocol = "inplace"

    monkeypatch.setitem(fsspec_registry, "inplace", InPlaceFileSystem)

    with pytest.raises(ValueError, match="not atomic"):
        FsspecModelStore("inplace://models")


def test_absolute_paths_inside_the_root_are_accepted_as_uris(tmp_path: Path) -> None:
    store = FsspecModelStore(tmp_path)
    stored = store.save(KEY, b"payload")

    assert store.load(str(tmp_path / KEY), expected_sha256=stored.sha256) == b"payload"
    with pytest.raises(ValueError, match="not inside"):
        store.exists(str(tmp_path.parent / "elsewhere" / KEY))


# -- atomic replace on disk -----------------------------------------------------------
def test_a_reader_that_opened_the_old_file_keeps_reading_the_whole_old_file(
    tmp_path: Path,
) -> None:
    """The new content arrives by rename, not by rewriting the old file in place."""
    store = FsspecModelStore(tmp_path, backup_enabled=False)
    old = os.urandom(3 * MIB)
    store.save(KEY, old)

    with (tmp_path / KEY).open("rb") as reader:
        head = reader.read(MIB)
        store.save(KEY, b"new and shorter")
        rest = reader.read()

    assert head + rest == old


def test_a_failed_write_removes_its_temp_file_from_the_target_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FsspecModelStore(tmp_path, backup_enabled=False)
    store.save(KEY, b"old")
    new = os.urandom(3 * MIB)
    probe = crash_local(monkeypatch, store, new)

    with pytest.raises(SimulatedCrash):
        store.save(KEY, new)

    target_dir = (tmp_path / KEY).parent
    assert probe.triggered
    # The temp file lived next to the target (same filesystem, so the rename is atomic).
    assert [Path(p).parent for p in probe.temp_paths] == [target_dir]
    assert Path(probe.temp_paths[0]).name.startswith(".v000001.json.")
    assert files_in(target_dir) == ["v000001.json"]
    assert (tmp_path / KEY).read_bytes() == b"old"


def test_artifacts_are_readable_like_normally_created_files(tmp_path: Path) -> None:
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    store = FsspecModelStore(tmp_path)
    store.save(KEY, b"payload")

    assert stat.S_IMODE((tmp_path / KEY).stat().st_mode) == 0o644


def test_hidden_and_stray_files_are_not_listed(tmp_path: Path) -> None:
    store = FsspecModelStore(tmp_path)
    stored = store.save(KEY, b"payload")
    (tmp_path / "acme" / "croissant" / "prophet" / ".v000002.json.abc123.tmp").write_bytes(b"p")
    (tmp_path / "acme" / "notes with spaces.txt").write_bytes(b"x")

    assert store.list() == [stored.uri]


# -- SIGKILL in the middle of a write -------------------------------------------------
def _save_and_stall_half_way(
    root: str, key: str, new_payload: bytes, half_written: Any, stall_s: float
) -> None:
    """Child process: save `new_payload`, but once half of it is on disk, wait to be
    killed."""

    real_write_chunks = fs_module._write_chunks

    def write_half_then_stall(stream: IO[bytes], payload: bytes) -> None:
        if len(payload) != len(new_payload) or payload != new_payload:  # the backup copy
            real_write_chunks(stream, payload)
            return
        half = len(payload) // 2
        real_write_chunks(stream, payload[:half])
        stream.flush()
        os.fsync(stream.fileno())
        half_written.set()
        time.sleep(stall_s)
        real_write_chunks(stream, payload[half:])

    fs_module._write_chunks = write_half_then_stall
    FsspecModelStore(root, backup_enabled=True).save(key, new_payload)


@needs_fork
def test_sigkill_in_the_middle_of_a_large_write_leaves_the_old_artifact_loadable(
    tmp_path: Path,
) -> None:
    store = FsspecModelStore(tmp_path, backup_enabled=True)
    old_payload = os.urandom(24 * MIB)
    new_payload = os.urandom(48 * MIB)
    old = store.save(KEY, old_payload)

    context = multiprocessing.get_context("fork")
    half_written = context.Event()
    writer = context.Process(
        target=_save_and_stall_half_way,
        args=(str(tmp_path), KEY, new_payload, half_written, 120.0),
    )
    writer.start()
    try:
        assert half_written.wait(timeout=120), "the writer never got half-way"
        assert writer.pid is not None
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.join(timeout=30)
    assert writer.exitcode == -signal.SIGKILL

    # The kill really hit the write: half of the new payload sits in a hidden temp file.
    target_dir = (tmp_path / KEY).parent
    leftovers = [p for p in target_dir.iterdir() if p.name != "v000001.json"]
    assert [p.name.startswith(".v000001.json.") for p in leftovers] == [True]
    assert leftovers[0].stat().st_size == len(new_payload) // 2

    # ... and the key still holds the complete old artifact.
    assert store.load(old.uri, expected_sha256=old.sha256) == old_payload
    assert store.list("acme/") == [old.uri]
    # The backup taken before the write is a full, loadable copy of the old artifact.
    (backup_uri,) = store.list("backups/")
    assert store.load(backup_uri, expected_sha256=old.sha256) == old_payload

    # The store keeps working after the crash.
    again = store.save(KEY, new_payload)
    assert store.load(again.uri, expected_sha256=sha(new_payload)) == new_payload
    assert store.list("acme/") == [old.uri]


def _save_forever(root: str, key: str, payloads: list[bytes], started: Any) -> None:
    """Child process: overwrite `key` with the payloads in turn until killed."""
    store = FsspecModelStore(root, backup_enabled=False)
    started.set()
    while True:
        for payload in payloads:
            store.save(key, payload)


@needs_fork
@pytest.mark.parametrize("kill_after_s", [0.05, 0.2, 0.45])
def test_sigkill_at_an_arbitrary_moment_leaves_one_complete_artifact(
    tmp_path: Path, kill_after_s: float
) -> None:
    """No cooperation from the writer: whenever the kill lands, the key holds one of the
    complete payloads."""
    payloads = [bytes([i]) * (16 * MIB) + os.urandom(MIB) for i in range(2)]
    digests = {sha(p) for p in payloads}
    store = FsspecModelStore(tmp_path, backup_enabled=False)
    store.save(KEY, payloads[0])

    context = multiprocessing.get_context("fork")
    started = context.Event()
    writer = context.Process(target=_save_forever, args=(str(tmp_path), KEY, payloads, started))
    writer.start()
    try:
        assert started.wait(timeout=60)
        time.sleep(kill_after_s)
        assert writer.pid is not None
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.join(timeout=30)
    assert writer.exitcode == -signal.SIGKILL

    content = (tmp_path / KEY).read_bytes()
    assert sha(content) in digests
    assert store.load(KEY, expected_sha256=sha(content)) == content
    assert store.list() == [store.uri_for(KEY)]
