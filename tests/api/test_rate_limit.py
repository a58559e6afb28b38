"""Per-tenant rate limits: 429 with Retry-After past the limit, counted in Redis (shared by
every API process), per tenant (all its keys together); a Redis outage lets requests
through. The limiter itself in memory, and its settings."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import make_settings, run_async
from ovencast.api.app import create_app
from ovencast.api.rate_limit import TenantRateLimiter
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.errors import Misconfigured, RateLimited
from ovencast.keys.roles import Role
from ovencast.settings import Settings
from ovencast.tenants import service as tenants_service

from .conftest import RunningServer, bearer, create_key, start_server

LIMIT = 5
NORTH, SOUTH = "north", "south"


# ------------------------------------------------------------------- the limiter alone
async def test_memory_limiter_counts_each_bucket_on_its_own(tmp_path: Path) -> None:
    limiter = TenantRateLimiter.from_settings(make_settings(tmp_path, rate_limit_per_minute=2))
    assert limiter.storage == "memory"
    await limiter.hit("tenant:1")
    await limiter.hit("tenant:1")
    with pytest.raises(RateLimited) as raised:
        await limiter.hit("tenant:1")
    assert 1 <= raised.value.retry_after_s <= 60
    assert "at most 2 per minute" in raised.value.message
    await limiter.hit("tenant:2")  # another bucket, another budget
    await limiter.close()


async def test_zero_turns_the_limit_off(tmp_path: Path) -> None:
    limiter = TenantRateLimiter.from_settings(make_settings(tmp_path, rate_limit_per_minute=0))
    assert limiter.storage == "off"
    for _ in range(1000):
        await limiter.hit("tenant:1")


def test_the_storage_must_be_redis(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, rate_limit_storage_url="memcached://127.0.0.1:11211")
    with pytest.raises(Misconfigured, match="RATE_LIMIT_STORAGE_URL must be a redis://"):
        TenantRateLimiter.from_settings(settings)


# ----------------------------------------------------------------- the API, on Redis
@pytest.fixture(scope="module")
def key_prefix() -> str:
    """Redis is shared (other test runs, other checkouts): counts of this module only."""
    return f"ovencast-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def api_settings(api_database_url: str, tmp_path_factory: pytest.TempPathFactory,
                 redis_url: str, key_prefix: str) -> Settings:
    return make_settings(tmp_path_factory.mktemp("api-home"), api_database_url,
                         rate_limit_per_minute=LIMIT, rate_limit_storage_url=redis_url,
                         rate_limit_key_prefix=key_prefix)


@pytest.fixture(scope="module")
def redis_keys(redis_url: str, key_prefix: str) -> Iterator[Callable[[], list[str]]]:
    """The module's keys in Redis; deleted afterwards."""
    client = redis.Redis.from_url(redis_url)
    yield lambda: sorted(key.decode() for key in client.scan_iter(f"{key_prefix}*"))
    for key in client.scan_iter(f"{key_prefix}*"):
        client.delete(key)
    client.close()


@pytest.fixture(scope="module")
def keys(api_settings: Settings) -> dict[str, str]:
    """Tenants made through the service (no request spent on them) and their keys."""

    async def make_tenants() -> None:
        database = Database.open(api_settings)
        try:
            async with unit_of_work(database.sessions) as session:
                for name in (NORTH, SOUTH):
                    await tenants_service.create_tenant(session, name)
        finally:
            await database.close()

    run_async(make_tenants)
    return {"north": create_key(api_settings, tenant=NORTH, role=Role.READ),
            "north_other": create_key(api_settings, tenant=NORTH, role=Role.TRAIN),
            "south": create_key(api_settings, tenant=SOUTH, role=Role.READ)}


@pytest.mark.postgres
def test_a_tenant_past_its_limit_gets_429_with_retry_after(
        api_server: RunningServer, api_settings: Settings, keys: dict[str, str],
        client_with: Callable[[str], httpx.Client],
        redis_keys: Callable[[], list[str]]) -> None:
    north = client_with(keys["north"])
    for _ in range(LIMIT):
        assert north.get(f"/api/v1/tenants/{NORTH}").status_code == 200

    refused = north.get(f"/api/v1/tenants/{NORTH}")
    assert refused.status_code == 429
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert refused.json() == {
        "error": "rate_limited",
        "detail": f"too many requests: at most {LIMIT} per minute; try again in "
                  f"{retry_after} s"}
    # The budget is the tenant's, whichever of its keys asks ...
    assert client_with(keys["north_other"]).get(
        f"/api/v1/tenants/{NORTH}").status_code == 429
    # ... and another tenant has its own.
    assert client_with(keys["south"]).get(f"/api/v1/tenants/{SOUTH}").status_code == 200
    # The WebSocket counts too.
    with connect(f"{api_server.ws_url}/api/v1/training-jobs/1/events",
                 additional_headers=bearer(keys["north"])) as ws:
        message = json.loads(ws.recv(timeout=15))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=15)
    assert (message["error"], closed.value.rcvd and closed.value.rcvd.code) == (
        "rate_limited", 4429)

    # The counts are in Redis: a second API process sees the same budget spent.
    assert redis_keys(), "nothing was counted in Redis"
    second = start_server(create_app(api_settings))
    try:
        again = httpx.get(f"{second.base_url}/api/v1/tenants/{NORTH}",
                          headers=bearer(keys["north"]), timeout=30)
    finally:
        second.stop()
    assert again.status_code == 429


@pytest.mark.postgres
def test_without_redis_requests_go_through(api_settings: Settings, keys: dict[str, str]
                                           ) -> None:
    """The limit is back-pressure, not access control: Redis down must not take the API
    down (each request waits at most the connect timeout, then passes)."""
    settings = api_settings.model_copy(update={
        "rate_limit_storage_url": "redis://127.0.0.1:1/0"})  # nothing listens there
    server = start_server(create_app(settings))
    try:
        with httpx.Client(base_url=server.base_url, headers=bearer(keys["south"]),
                          timeout=30) as south:
            statuses = [south.get(f"/api/v1/tenants/{SOUTH}").status_code
                        for _ in range(LIMIT + 2)]
    finally:
        server.stop()
    assert statuses == [200] * (LIMIT + 2)
