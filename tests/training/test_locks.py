"""The embedded shape's (tenant, product) training lock holds across processes and dies
with its holder."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from conftest import make_settings
from ovencast.db.session import create_engine
from ovencast.errors import Conflict, TrainingInProgress
from ovencast.training.advisory_lock import advisory_lock
from ovencast.training.locks import lock_path, product_lock

# Upper bound for a child to start Python, import ovencast and take the lock.
CHILD_START_TIMEOUT_S = 60.0

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ovencast.training.locks import product_lock

    with product_lock(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], timeout_s=0):
        Path(sys.argv[4]).touch()
        time.sleep(600)
""")


def _lock_wait_timeouts() -> float:
    return REGISTRY.get_sample_value("ovencast_lock_wait_timeouts_total") or 0.0


@pytest.fixture
def hold_lock(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process holding the lock of (tenant 1, 'Brot/Weiß')."""
    marker = tmp_path / "holding"
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "locks"), "1", "Brot/Weiß", str(marker)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + CHILD_START_TIMEOUT_S
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not marker.exists():
            child.kill()
            _, stderr = child.communicate(timeout=30)
            pytest.fail(f"the child did not take the lock: {stderr.decode(errors='replace')}")
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=30)  # reaps the child and closes its stderr pipe


def test_second_process_gives_up_with_training_in_progress(
        tmp_path: Path, hold_lock: subprocess.Popen[bytes]) -> None:
    before = _lock_wait_timeouts()
    started = time.monotonic()
    with pytest.raises(TrainingInProgress) as raised, product_lock(
            tmp_path / "locks", 1, "Brot/Weiß", timeout_s=0.3):
        pytest.fail("the lock was acquired although another process holds it")
    waited = time.monotonic() - started
    assert "Brot/Weiß" in raised.value.message
    assert isinstance(raised.value, Conflict)
    assert _lock_wait_timeouts() == before + 1
    assert 0.3 <= waited < 30  # it waited for the lock, and did not hang


def test_lock_is_free_again_once_its_holder_is_killed(
        tmp_path: Path, hold_lock: subprocess.Popen[bytes]) -> None:
    os.kill(hold_lock.pid, signal.SIGKILL)
    hold_lock.wait(timeout=30)
    # No stale lock: the kernel released it with the process.
    with product_lock(tmp_path / "locks", 1, "Brot/Weiß", timeout_s=10) as waited:
        assert waited < 10


def test_other_products_and_tenants_are_not_blocked(
        tmp_path: Path, hold_lock: subprocess.Popen[bytes]) -> None:
    with product_lock(tmp_path / "locks", 1, "Brot", timeout_s=0):
        pass
    with product_lock(tmp_path / "locks", 2, "Brot/Weiß", timeout_s=0):
        pass
    assert hold_lock.poll() is None  # the holder still holds its own lock


def test_lock_is_released_when_the_block_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), product_lock(tmp_path, 1, "bread", timeout_s=0):
        raise RuntimeError("training failed")
    with product_lock(tmp_path, 1, "bread", timeout_s=0) as waited:
        assert waited < 5


def test_lock_files_are_safe_names_distinct_per_tenant_and_product(tmp_path: Path) -> None:
    paths = {lock_path(tmp_path, tenant, product)
             for tenant in (1, 2, 12)
             for product in ("bread", "Brot/Weiß", "../../etc/passwd", "2-bread")}
    assert len(paths) == 12
    assert all(path.parent == tmp_path for path in paths)
    assert all(path.name.isascii() and "/" not in path.name for path in paths)


# ------------------------------------------------- service shape: PostgreSQL advisory lock
# Two engines stand for two worker processes: advisory locks belong to a database session.
@pytest.fixture
async def two_engines(pg_database_url: str, tmp_path: Path
                      ) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    settings = make_settings(tmp_path / "home", pg_database_url)
    holder, waiter = create_engine(settings), create_engine(settings)
    yield holder, waiter
    await holder.dispose()
    await waiter.dispose()


@pytest.mark.postgres
async def test_advisory_lock_times_out_with_training_in_progress(
        two_engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    holder, waiter = two_engines
    before = _lock_wait_timeouts()
    async with advisory_lock(holder, 1, "Brot/Weiß", timeout_s=0):
        with pytest.raises(TrainingInProgress, match="Brot/Weiß"):
            async with advisory_lock(waiter, 1, "Brot/Weiß", timeout_s=0.3):
                pytest.fail("the lock was acquired although another session holds it")
        assert _lock_wait_timeouts() == before + 1
        async with advisory_lock(waiter, 1, "Brot", timeout_s=0):
            pass  # another product is not blocked
        async with advisory_lock(waiter, 2, "Brot/Weiß", timeout_s=0):
            pass  # nor another tenant
    async with advisory_lock(waiter, 1, "Brot/Weiß", timeout_s=0):
        pass  # released on exit


@pytest.mark.postgres
async def test_advisory_lock_is_freed_when_its_holder_disconnects(
        two_engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    holder, waiter = two_engines
    held = advisory_lock(holder, 1, "bread", timeout_s=0)
    await held.__aenter__()
    try:
        # The holder's session dies (a killed worker): PostgreSQL frees its locks.
        async with waiter.connect() as connection:
            killed = await connection.scalar(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
                "WHERE locktype = 'advisory' AND pid <> pg_backend_pid() AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"))
        assert killed == 1
        async with advisory_lock(waiter, 1, "bread", timeout_s=10) as waited:
            assert waited < 10
    finally:
        with contextlib.suppress(DBAPIError):  # its unlock fails on the dead connection
            await held.__aexit__(None, None, None)
