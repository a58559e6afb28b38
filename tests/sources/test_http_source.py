"""The HTTP source against the real data server: timeouts, retries, degradation and
errors. No mocked HTTP client: every call crosses a loopback socket."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from conftest import UPSTREAM_TENANT as TENANT
from conftest import Admin, copy_dataset, upstream_settings
from ovencast.errors import TenantNotFound
from ovencast.sources.breakers import BreakerRegistry
from ovencast.sources.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)
from ovencast.sources.http import HttpSource
from ovencast.testing.upstream_server import (
    WEATHER_FORECAST_FILE,
    serve_in_thread,
    served_tenant,
)

KIEL_WEATHER = {"cloud_cover_okta", "temperature_c", "wind_speed", "weather_code"}
KIEL_CALENDAR = {"public_holiday", "school_holiday", "kieler_woche"}


async def test_load_returns_sales_and_every_regressor(
        http_source: Callable[..., HttpSource], admin: Admin) -> None:
    async with http_source(upstream_page_size=2000) as source:
        data = await source.load(TENANT)
    assert list(data.sales.columns) == ["product", "date", "quantity"]
    assert sorted(data.sales["product"].unique()) == [
        "bread", "cake", "confectionery", "croissant", "rolls", "seasonal_bread"]
    assert set(data.regressors.columns) == {"date", *KIEL_WEATHER, *KIEL_CALENDAR}
    assert data.regressor_sources == {**dict.fromkeys(KIEL_WEATHER, "weather"),
                                      **dict.fromkeys(KIEL_CALENDAR, "calendar")}
    assert data.warnings == []
    # Paged: ~9,300 sales rows in pages of 2,000 -> several sales requests.
    assert admin.requests("sales") >= 6


async def test_slow_response_fails_after_the_read_timeout_not_later(
        http_source: Callable[..., HttpSource], admin: Admin) -> None:
    admin.faults("sales:delay=4")
    async with http_source(http_read_timeout=0.5, upstream_retry_attempts=1) as source:
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable) as caught:
            await source.load(TENANT)
        elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"took {elapsed:.1f} s with a read timeout of 0.5 s"
    message = str(caught.value)
    assert message.startswith("sales service unavailable: read timeout after 0.5 s")
    assert caught.value.service == "sales"


async def test_retries_are_bounded_in_total_time(
        http_source: Callable[..., HttpSource], admin: Admin) -> None:
    admin.faults("sales:delay=4")
    async with http_source(http_read_timeout=0.3, upstream_retry_attempts=10,
                           upstream_retry_total_s=1.5, upstream_retry_initial_s=0.2,
                           upstream_retry_max_s=0.2, breaker_sales_failures=100) as source:
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable, match="timeout"):
            await source.list_products(TENANT)
        elapsed = time.monotonic() - started
    # Each attempt takes 0.3 s + 0.2 s backoff: at most 3 attempts fit in 1.5 s, not 10.
    assert elapsed < 3.5
    assert 1 <= admin.requests("sales") <= 3


async def test_transient_5xx_and_dropped_connections_are_retried(
        http_source: Callable[..., HttpSource], admin: Admin) -> None:
    admin.faults("sales:status=503,times=1", "sales:drop,times=1")
    async with http_source(upstream_retry_attempts=3) as source:
        products = await source.list_products(TENANT)
    assert "bread" in products
    assert admin.requests("sales") == 3


async def test_4xx_is_never_retried(http_source: Callable[..., HttpSource],
                                    admin: Admin) -> None:
    admin.faults("sales:status=400")
    async with http_source(upstream_retry_attempts=5) as source:
        with pytest.raises(UpstreamRejected, match=r"sales service rejected the request "
                                                   r"\(400 bad_request\)"):
            await source.list_products(TENANT)
    assert admin.requests("sales") == 1


async def test_weather_down_leaves_weather_out_with_a_warning(
        http_source: Callable[..., HttpSource], admin: Admin) -> None:
    admin.faults("weather:status=503")
    async with http_source() as source:
        data = await source.load(TENANT, products=["bread"])
    assert not KIEL_WEATHER & set(data.regressors.columns)
    assert set(data.regressors.columns) == {"date", *KIEL_CALENDAR}
    assert set(data.regressor_sources.values()) == {"calendar"}
    assert not data.sales.empty
    assert set(data.sales["product"]) == {"bread"}
    assert len(data.warnings) == 1
    assert data.warnings[0].startswith("weather regressors left out: weather service "
                                       "unavailable: HTTP 503")


async def test_traffic_down_keeps_sales_weather_and_calendar(
        http_source: Callable[..., HttpSource], admin: Admin, kiel_served: object) -> None:
    # Kiel has no traffic file: the traffic service answers with no columns. Down, it
    # only adds a warning.
    admin.faults("traffic:drop")
    async with http_source(upstream_retry_attempts=2) as source:
        data = await source.load(TENANT, products=["rolls"])
    assert set(data.regressors.columns) == {"date", *KIEL_WEATHER, *KIEL_CALENDAR}
    assert [w.split(":")[0] for w in data.warnings] == ["traffic regressors left out"]
    assert "connection dropped" in data.warnings[0]
    assert admin.requests("traffic") == 2


async def test_sales_down_fails_with_the_cause(http_source: Callable[..., HttpSource],
                                               admin: Admin) -> None:
    admin.faults("sales:status=503")
    async with http_source(upstream_retry_attempts=2) as source:
        with pytest.raises(UpstreamUnavailable) as caught:
            await source.load(TENANT)
    message = str(caught.value)
    assert message.startswith("sales service unavailable: HTTP 503 unavailable: fault "
                              "injected by the data server")
    assert "/tenants/kiel/sales" in message or "/tenants/kiel/calendar" in message


async def test_calendar_is_part_of_the_sales_service(
        http_source: Callable[..., HttpSource], admin: Admin) -> None:
    admin.faults("/tenants/*/calendar:status=500")
    async with http_source(upstream_retry_attempts=1) as source:
        with pytest.raises(UpstreamUnavailable, match=r"^sales service unavailable: "
                                                      r"HTTP 500 internal"):
            await source.load(TENANT)


async def test_malformed_json_is_a_clear_error(http_source: Callable[..., HttpSource],
                                               admin: Admin) -> None:
    admin.faults("sales:malformed")
    async with http_source() as source:
        with pytest.raises(UpstreamBadResponse) as caught:
            await source.list_products(TENANT)
    assert str(caught.value).startswith("sales service sent a malformed response: body is "
                                        "not valid JSON")
    assert not isinstance(caught.value, UpstreamUnavailable)
    assert admin.requests("sales") == 1  # not retried


async def test_malformed_weather_is_a_warning_not_a_failure(
        http_source: Callable[..., HttpSource], admin: Admin) -> None:
    admin.faults("weather:malformed")
    async with http_source() as source:
        data = await source.load(TENANT, products=["cake"])
    assert data.warnings
    assert "weather service sent a malformed response" in data.warnings[0]


async def test_unknown_tenant_is_a_404_error_distinct_from_the_others(
        http_source: Callable[..., HttpSource], admin: Admin) -> None:
    async with http_source() as source:
        with pytest.raises(UpstreamNotFound) as caught:
            await source.load("nobody")
    error = caught.value
    assert str(error) == ("sales service does not know tenant 'nobody' (404: tenant "
                          "'nobody' is not known to this service)")
    assert isinstance(error, TenantNotFound)
    assert error.service == "sales"
    assert not isinstance(error, UpstreamUnavailable | UpstreamBadResponse)


async def test_wrong_base_url_says_which_setting(http_source: Callable[..., HttpSource],
                                                 data_server: object) -> None:
    url = data_server.url  # type: ignore[attr-defined]
    async with http_source(sales_service_url=f"{url}/v9") as source:
        with pytest.raises(UpstreamRejected, match="SALES_SERVICE_URL"):
            await source.list_products(TENANT)


async def test_unreachable_service_names_service_and_cause(
        http_source: Callable[..., HttpSource]) -> None:
    async with http_source(sales_service_url="http://127.0.0.1:9",
                           upstream_retry_attempts=1) as source:
        with pytest.raises(UpstreamUnavailable, match=r"^sales service unavailable: "
                                                      r"connection refused"):
            await source.list_products(TENANT)


@pytest.mark.parametrize("until", [None, "2016-12-31"])
async def test_filters_by_until_and_products(http_source: Callable[..., HttpSource],
                                             until: str | None) -> None:
    cutoff = pd.Timestamp(until).date() if until else None
    async with http_source(upstream_page_size=500) as source:
        data = await source.load(TENANT, until=cutoff, products=["cake", "bread"])
    assert sorted(data.sales["product"].unique()) == ["bread", "cake"]
    if cutoff is not None:
        assert data.sales["date"].max() == pd.Timestamp(cutoff)
        # Regressors are not cut at `until`: forecasting needs the future.
        assert data.regressors["date"].max() > pd.Timestamp(cutoff)
    assert data.sales.equals(data.sales.sort_values(["product", "date"]).reset_index(
        drop=True))


def test_every_error_is_an_ovencast_error() -> None:
    from ovencast.errors import OvencastError

    for error in (UpstreamUnavailable("sales", "x"), UpstreamBadResponse("weather", "x"),
                  UpstreamNotFound("traffic", "t", "x"),
                  UpstreamRejected("sales", 400, "bad_request", "x")):
        assert isinstance(error, UpstreamError)
        assert isinstance(error, OvencastError)
        assert error.service in str(error)


async def test_weather_forecasts_keep_the_newest_issue_and_never_beat_a_measurement(
        kiel_dir: Path, tmp_path: Path) -> None:
    """docs/UPSTREAM.md: weather rows after the measured ones are forecasts with the time
    they were issued; of several issues of a date the newest counts, a measured value
    always wins."""
    directory = copy_dataset(kiel_dir, tmp_path / "kiel")
    forecast = pd.DataFrame({
        "date": ["2019-08-01", "2019-08-02", "2019-08-02", "2019-08-03", "2019-08-03"],
        "issued_at": ["2019-07-31T06:00:00+00:00", "2019-07-31T06:00:00+00:00",
                      "2019-08-01T06:00:00+00:00", "2019-08-01T06:00:00+00:00",
                      "2019-07-30T18:00:00+02:00"],
        "cloud_cover_okta": [1.0, 2.0, 3.0, 4.0, 5.0], "temperature_c": [30.0, 11.0, 12.0,
                                                                       13.0, 14.0],
        "wind_speed": [1.0, 2.0, 3.0, 4.0, 5.0], "weather_code": [None] * 5})
    forecast.to_csv(directory / WEATHER_FORECAST_FILE, index=False)
    served = served_tenant(directory, tenant=TENANT, country="DE", subdivision="SH")
    with serve_in_thread(served) as server:
        settings = upstream_settings(tmp_path / "home", server.url)
        async with HttpSource.from_settings(
                settings, breakers=BreakerRegistry.from_settings(settings)) as source:
            data = await source.load(TENANT, products=["bread"])
    weather = data.regressors.set_index("date")
    measured = pd.read_csv(kiel_dir / "weather.csv").set_index("date")
    assert weather.loc["2019-08-01", "temperature_c"] == measured.loc[
        "2019-08-01", "temperature_c"]
    assert weather.loc["2019-08-02", "temperature_c"] == 12.0  # issued 1 Aug beats 31 Jul
    assert weather.loc["2019-08-03", "temperature_c"] == 13.0  # 1 Aug 06:00 UTC is newer
    assert weather.index.is_unique
