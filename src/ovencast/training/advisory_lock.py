"""The service shape's (tenant, product) lock: a PostgreSQL session advisory lock.

It holds across every worker process on every machine that shares the database, and
PostgreSQL releases it when the holding connection ends, so a worker killed with SIGKILL
leaves no stale lock. The lock lives on a dedicated autocommit connection held for the
duration of the training.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from ovencast.errors import TrainingInProgress
from ovencast.observability.logs import get_logger
from ovencast.observability.metrics import (
    LOCK_CONTENTIONS,
    LOCK_WAIT_SECONDS,
    LOCK_WAIT_TIMEOUTS,
)

log = get_logger(__name__)

LOCK_NOT_AVAILABLE = "55P03"


def advisory_key(tenant_id: int, product: str) -> int:
    """A stable signed 64-bit key from both ids (same on every machine and release)."""
    digest = hashlib.blake2b(f"ovencast:train:{tenant_id}:{product}".encode(),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@asynccontextmanager
async def advisory_lock(engine: AsyncEngine, tenant_id: int, product: str, *,
                        timeout_s: float) -> AsyncIterator[float]:
    """Hold the (tenant, product) training lock; yields the seconds waited. Raises
    `TrainingInProgress` after `timeout_s` of waiting. Released on every path."""
    key = advisory_key(tenant_id, product)
    started = time.monotonic()
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        got = await connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
        if not got:
            LOCK_CONTENTIONS.inc()
            log.info("lock.contended", tenant_id=tenant_id, product=product, key=key,
                     timeout_s=timeout_s)
            await connection.execute(text(f"SET lock_timeout = {int(timeout_s * 1000)}"))
            try:
                await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                    raise
                LOCK_WAIT_TIMEOUTS.inc()
                log.warning("lock.wait_timeout", tenant_id=tenant_id, product=product,
                            timeout_s=timeout_s)
                raise TrainingInProgress(
                    f"product {product!r} is being trained by another worker; gave up "
                    f"after waiting {timeout_s:g} s for its lock") from None
            finally:
                await connection.execute(text("SET lock_timeout = 0"))
        waited = time.monotonic() - started
        LOCK_WAIT_SECONDS.observe(waited)
        log.info("lock.acquired", tenant_id=tenant_id, product=product, key=key,
                 waited_s=round(waited, 3))
        try:
            yield waited
        finally:
            try:
                await connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                         {"key": key})
                log.info("lock.released", tenant_id=tenant_id, product=product, key=key)
            except DBAPIError as exc:
                # The connection is gone, and PostgreSQL released the lock with it. The
                # work done under the lock stands: the database constraints (one active
                # version per product) still hold.
                log.warning("lock.connection_lost", tenant_id=tenant_id, product=product,
                            key=key, error=str(exc.orig))
