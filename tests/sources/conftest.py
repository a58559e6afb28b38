"""Fixtures of the upstream tests: the real data server on an ephemeral loopback port (in a
thread, uvicorn), settings pointing at it, and its admin endpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ovencast.settings import Settings
from ovencast.sources.breakers import BreakerRegistry
from ovencast.sources.http import HttpSource
from ovencast.sources.server import RunningServer, ServedTenant, serve_in_thread, served_tenant

TENANT = "kiel"


@pytest.fixture(scope="session")
def kiel_served(kiel_dir: Path) -> ServedTenant:
    """The Kiel data as the services hold it (parsed once per session)."""
    return served_tenant(kiel_dir, tenant=TENANT, country="DE", subdivision="SH")


@pytest.fixture
def data_server(kiel_served: ServedTenant) -> Iterator[RunningServer]:
    """A fresh data server (no faults, zero counters) serving the Kiel data."""
    with serve_in_thread(kiel_served) as server:
        yield server


class Admin:
    """The data server's admin endpoints."""

    def __init__(self, url: str) -> None:
        self.url = url

    def faults(self, *specs: str | dict[str, Any], replace: bool = True) -> None:
        response = httpx.post(f"{self.url}/_faults",
                              json={"faults": list(specs), "replace": replace})
        response.raise_for_status()

    def clear_faults(self) -> None:
        httpx.delete(f"{self.url}/_faults").raise_for_status()

    def requests(self, service: str | None = None) -> int:
        stats = httpx.get(f"{self.url}/_stats").json()
        return int(stats["total"] if service is None else stats["requests"][service])

    def reset_stats(self) -> None:
        httpx.delete(f"{self.url}/_stats").raise_for_status()


@pytest.fixture
def admin(data_server: RunningServer) -> Admin:
    return Admin(data_server.url)


def upstream_settings(home: Path, url: str | None, **overrides: Any) -> Settings:
    """Settings with all three services at `url`, short timeouts and fast retries."""
    values: dict[str, Any] = {
        "ovencast_home": home,
        "sales_service_url": url, "weather_service_url": url, "traffic_service_url": url,
        "http_connect_timeout": 2.0, "http_read_timeout": 5.0,
        "http_write_timeout": 2.0, "http_pool_timeout": 2.0,
        "upstream_retry_attempts": 3, "upstream_retry_total_s": 5.0,
        "upstream_retry_initial_s": 0.01, "upstream_retry_max_s": 0.05,
        "upstream_retry_jitter_s": 0.01,
        "breaker_sales_recovery_s": 0.5, "breaker_weather_recovery_s": 0.5,
        "breaker_traffic_recovery_s": 0.5,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def http_source(tmp_path: Path, data_server: RunningServer) -> Callable[..., HttpSource]:
    """Factory: `http_source(**settings_overrides)` -> an HttpSource on the data server
    with breakers of its own. Use it as `async with http_source() as source:`."""

    def make(**overrides: Any) -> HttpSource:
        settings = upstream_settings(tmp_path / "home", data_server.url, **overrides)
        return HttpSource.from_settings(settings,
                                        breakers=BreakerRegistry.from_settings(settings))

    return make
