"""The embedded shape's (tenant, product) lock: an OS file lock under OVENCAST_HOME/locks.

`filelock` uses flock/fcntl, so the lock holds across processes on one machine and is
released by the kernel when the holder dies (a timed-out worker killed with SIGKILL leaves
no stale lock). The service shape uses a PostgreSQL advisory lock instead.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ovencast.errors import TrainingInProgress
from ovencast.observability.logs import get_logger
from ovencast.observability.metrics import (
    LOCK_CONTENTIONS,
    LOCK_WAIT_SECONDS,
    LOCK_WAIT_TIMEOUTS,
)

log = get_logger(__name__)


def lock_path(lock_dir: Path, tenant_id: int, product: str) -> Path:
    digest = hashlib.sha256(f"{tenant_id}\x00{product}".encode()).hexdigest()[:24]
    return lock_dir / f"train-{tenant_id}-{digest}.lock"


@contextmanager
def product_lock(lock_dir: Path, tenant_id: int, product: str, *, timeout_s: float
                 ) -> Iterator[float]:
    """Hold the (tenant, product) training lock; yields the seconds waited for it.

    Raises `TrainingInProgress` when another process holds it for longer than `timeout_s`.
    """
    lock_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path(lock_dir, tenant_id, product))
    started = time.monotonic()
    try:
        lock.acquire(timeout=0)
    except Timeout:
        LOCK_CONTENTIONS.inc()
        log.info("lock.contended", tenant_id=tenant_id, product=product, timeout_s=timeout_s)
        try:
            lock.acquire(timeout=timeout_s)
        except Timeout:
            LOCK_WAIT_TIMEOUTS.inc()
            log.warning("lock.wait_timeout", tenant_id=tenant_id, product=product,
                        timeout_s=timeout_s)
            raise TrainingInProgress(
                f"product {product!r} is being trained by another process; gave up after "
                f"waiting {timeout_s:g} s for its lock") from None
    waited = time.monotonic() - started
    LOCK_WAIT_SECONDS.observe(waited)
    log.info("lock.acquired", tenant_id=tenant_id, product=product, waited_s=round(waited, 3))
    try:
        yield waited
    finally:
        lock.release()
        log.info("lock.released", tenant_id=tenant_id, product=product)
