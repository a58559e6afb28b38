"""Circuit breakers against the real data server: open after N failures (no request
reaches the server while open), one trial after the recovery timeout, closed by success.
State changes are logged and exported as a gauge."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from conftest import UPSTREAM_TENANT as TENANT
from conftest import Admin
from ovencast.sources.breakers import BreakerPolicy, BreakerRegistry, BreakerState
from ovencast.sources.contract import SeriesPage, series_path
from ovencast.sources.errors import CircuitOpen, UpstreamNotFound, UpstreamUnavailable
from ovencast.sources.http import HttpSource

RECOVERY_S = 1.0  # short, yet long enough for a loaded CI machine to act while open


def gauge(service: str) -> float | None:
    return REGISTRY.get_sample_value("ovencast_circuit_breaker_state", {"service": service})


async def states(source: HttpSource) -> dict[str, str]:
    return {s.service: s.state.value for s in await source.breakers.statuses()}


async def test_sales_breaker_opens_after_5_failures_then_recovers(
        http_source: Callable[..., HttpSource], admin: Admin) -> None:
    admin.faults("sales:status=503")
    async with http_source(upstream_retry_attempts=1, breaker_sales_failures=5,
                           breaker_sales_recovery_s=RECOVERY_S) as source:
        with capture_logs() as logs:
            for _ in range(5):
                with pytest.raises(UpstreamUnavailable, match="HTTP 503"):
                    await source.list_products(TENANT)
            assert admin.requests("sales") == 5
            assert (await states(source))["sales"] == "open"
            assert gauge("sales") == 2

            # Open: refused at once, nothing reaches the server.
            with pytest.raises(CircuitOpen, match=r"^sales service unavailable: circuit "
                                                  r"breaker open"):
                await source.list_products(TENANT)
            with pytest.raises(CircuitOpen):
                await source.load(TENANT)
            assert admin.requests("sales") == 5

            # After the recovery timeout one trial call goes through; success closes.
            admin.clear_faults()
            await asyncio.sleep(RECOVERY_S + 0.1)
            assert "bread" in await source.list_products(TENANT)
            assert admin.requests("sales") == 6
            assert (await states(source))["sales"] == "closed"
            assert gauge("sales") == 0
    changes = [(e["old"], e["new"]) for e in logs
               if e["event"] == "circuit_breaker.state_changed" and e["service"] == "sales"]
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


async def test_failed_trial_opens_the_breaker_again(http_source: Callable[..., HttpSource],
                                                    admin: Admin) -> None:
    admin.faults("weather:status=500")
    async with http_source(upstream_retry_attempts=1, breaker_weather_failures=3,
                           breaker_weather_recovery_s=RECOVERY_S) as source:
        weather = source.clients["weather"]

        async def fetch() -> object:
            return await weather.get(series_path(TENANT, "weather"), {}, SeriesPage,
                                     tenant=TENANT)

        for _ in range(3):
            with pytest.raises(UpstreamUnavailable, match="HTTP 500"):
                await fetch()
        with pytest.raises(CircuitOpen):
            await fetch()
        assert admin.requests("weather") == 3

        await asyncio.sleep(RECOVERY_S + 0.1)
        with pytest.raises(UpstreamUnavailable, match="HTTP 500"):
            await fetch()  # the trial: let through, fails
        assert admin.requests("weather") == 4
        assert (await states(source))["weather"] == "open"
        # Open again: training goes on without weather, and says why.
        data = await source.load(TENANT, products=["bread"])
        assert admin.requests("weather") == 4
        assert len(data.warnings) == 1
        assert data.warnings[0].startswith("weather regressors left out: weather service "
                                           "unavailable: circuit breaker open")
        assert not set(data.regressor_sources.values()) - {"calendar"}


async def test_half_open_lets_exactly_one_trial_through(
        http_source: Callable[..., HttpSource], admin: Admin) -> None:
    admin.faults("sales:status=503")
    async with http_source(upstream_retry_attempts=1, breaker_sales_failures=2,
                           breaker_sales_recovery_s=RECOVERY_S) as source:
        for _ in range(2):
            with pytest.raises(UpstreamUnavailable):
                await source.list_products(TENANT)
        await asyncio.sleep(RECOVERY_S + 0.1)
        admin.faults("sales:delay=0.3")  # a slow but healthy trial
        admin.reset_stats()
        results = await asyncio.gather(*(source.list_products(TENANT) for _ in range(4)),
                                       return_exceptions=True)
    assert sum(isinstance(r, list) for r in results) == 1
    assert sum(isinstance(r, CircuitOpen) for r in results) == 3
    assert admin.requests("sales") == 1


async def test_retries_stop_once_the_breaker_opens(http_source: Callable[..., HttpSource],
                                                   admin: Admin) -> None:
    admin.faults("sales:status=502")
    async with http_source(upstream_retry_attempts=10, breaker_sales_failures=3) as source:
        with pytest.raises(CircuitOpen):
            await source.list_products(TENANT)
    assert admin.requests("sales") == 3


async def test_4xx_does_not_count_as_a_failure(http_source: Callable[..., HttpSource],
                                               admin: Admin) -> None:
    async with http_source(breaker_sales_failures=2) as source:
        for _ in range(4):
            with pytest.raises(UpstreamNotFound):
                await source.list_products("nobody")
        assert (await states(source))["sales"] == "closed"
    assert admin.requests("sales") == 4


async def test_statuses_list_every_service_with_its_policy() -> None:
    registry = BreakerRegistry({"sales": BreakerPolicy(5, 60.0),
                                "weather": BreakerPolicy(3, 30.0),
                                "traffic": BreakerPolicy(3, 30.0)})
    statuses = await registry.statuses()
    assert [s.to_dict() for s in statuses] == [
        {"service": service, "state": "closed", "consecutive_failures": 0,
         "failures_to_open": failures, "recovery_s": recovery, "opened_at": None,
         "trial_in_s": None}
        for service, failures, recovery in (("sales", 5, 60.0), ("weather", 3, 30.0),
                                            ("traffic", 3, 30.0))]


def test_spec_defaults() -> None:
    from ovencast.settings import Settings

    registry = BreakerRegistry.from_settings(Settings())
    assert registry.policies == {"sales": BreakerPolicy(5, 60.0),
                                 "weather": BreakerPolicy(3, 30.0),
                                 "traffic": BreakerPolicy(3, 30.0)}


@pytest.mark.parametrize(("state", "value"), [(BreakerState.closed, 0),
                                              (BreakerState.half_open, 1),
                                              (BreakerState.open, 2)])
def test_gauge_values(state: BreakerState, value: int) -> None:
    assert state.gauge_value == value
