"""Per-tenant rate limits (the `limits` library): a moving window of one minute, counted
per `Caller.rate_limit_bucket` (all keys of a tenant share one budget; a global key has
its own).

Storage: Redis when `RATE_LIMIT_STORAGE_URL` is set (`redis://host:port[/db]`, or
`rediss://` for TLS), so that every API process of the service shape counts against the
same budget; in-process memory otherwise (one process: the count restarts with it).
`RATE_LIMIT_PER_MINUTE=0` turns the limit off.

A storage that fails (Redis down or slow) lets the request through and logs
`api.rate_limit.unavailable`: the limit is back-pressure, not access control, and an
outage of it must not take the API down with it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool

from ovencast.errors import Misconfigured, RateLimited
from ovencast.observability.logs import get_logger
from ovencast.settings import Settings

log = get_logger(__name__)

REDIS_SCHEMES = ("redis://", "rediss://")
# A Redis that does not answer within this costs a request this much, then lets it pass.
REDIS_TIMEOUT_S = 1.0


@dataclass
class TenantRateLimiter:
    limiter: MovingWindowRateLimiter | None
    item: RateLimitItem | None
    pool: ConnectionPool | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TenantRateLimiter:
        """Call inside the event loop that will use it (the app's lifespan)."""
        if settings.rate_limit_per_minute == 0:
            return cls(limiter=None, item=None)
        item = RateLimitItemPerMinute(settings.rate_limit_per_minute)
        url = settings.rate_limit_storage_url
        if not url:
            return cls(limiter=MovingWindowRateLimiter(MemoryStorage()), item=item)
        if not url.startswith(REDIS_SCHEMES):
            raise Misconfigured(f"RATE_LIMIT_STORAGE_URL must be a redis:// URL, not "
                                f"{url.split('://')[0]!r}://...")
        # Our own pool: closed at shutdown (limits has no close of its own).
        pool = ConnectionPool.from_url(url, socket_timeout=REDIS_TIMEOUT_S,
                                       socket_connect_timeout=REDIS_TIMEOUT_S)
        # `connection_pool` is a documented option of RedisStorage; its annotation only
        # lists scalar options.
        storage = RedisStorage("async+" + url, implementation="redispy",
                               connection_pool=pool,  # type: ignore[arg-type]
                               wrap_exceptions=True,
                               key_prefix=settings.rate_limit_key_prefix)
        return cls(limiter=MovingWindowRateLimiter(storage), item=item, pool=pool)

    @property
    def storage(self) -> str:
        """What counts: "off", "memory" or "redis" (for the start-up log)."""
        if self.limiter is None:
            return "off"
        return "redis" if self.pool is not None else "memory"

    async def hit(self, bucket: str) -> None:
        """Count one request against `bucket`; `RateLimited` (with the seconds until the
        window has room again) when the budget is spent."""
        if self.limiter is None or self.item is None:
            return
        try:
            if await self.limiter.hit(self.item, bucket):
                return
            stats = await self.limiter.get_window_stats(self.item, bucket)
        except StorageError as exc:
            log.warning("api.rate_limit.unavailable", error=f"{type(exc).__name__}: {exc}")
            return
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(f"too many requests: at most {self.item.amount} per minute; "
                          f"try again in {retry_after} s", retry_after_s=retry_after)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.disconnect()
