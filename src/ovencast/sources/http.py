"""Upstream data (service shape): sales, calendar and the tenant's profile from the sales
service; weather and traffic from their services. docs/UPSTREAM.md has the contract.

Degradation (SPEC): sales or calendar unavailable -> raise (the job fails with the
reason); weather or traffic unavailable -> their columns are left out and a warning says
why.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Sequence
from datetime import date
from typing import Any

import httpx
import pandas as pd

from ovencast.observability.logs import get_logger
from ovencast.settings import Settings
from ovencast.sources import contract
from ovencast.sources.base import (
    SALES_COLUMNS,
    DataSource,
    SourceData,
    TenantProfile,
    empty_regressors,
    empty_sales,
)
from ovencast.sources.breakers import BreakerRegistry, process_breakers
from ovencast.sources.client import ServiceClient
from ovencast.sources.errors import UpstreamBadResponse, UpstreamError

log = get_logger(__name__)

# Series in the order their columns win a name clash (the sales service's calendar first).
SERIES_ORDER = ("calendar", "weather", "traffic")
OPTIONAL_SERIES = ("weather", "traffic")


class HttpSource(DataSource):
    kind = "upstream"
    creates_tenants = True

    def __init__(self, *, settings: Settings, sales_url: str, weather_url: str | None = None,
                 traffic_url: str | None = None, breakers: BreakerRegistry | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        registry = breakers or process_breakers(settings)
        self.breakers = registry
        urls = {"sales": sales_url, "weather": weather_url, "traffic": traffic_url}
        self.clients = {service: ServiceClient(service, url, settings=settings,
                                               breakers=registry, transport=transport)
                        for service, url in urls.items() if url}

    @classmethod
    def from_settings(cls, settings: Settings, *, breakers: BreakerRegistry | None = None
                      ) -> HttpSource:
        if not settings.sales_service_url:
            raise ValueError("SALES_SERVICE_URL is not set")
        return cls(settings=settings, sales_url=settings.sales_service_url,
                   weather_url=settings.weather_service_url,
                   traffic_url=settings.traffic_service_url, breakers=breakers)

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients.values()))

    async def describe_tenant(self, tenant_name: str) -> TenantProfile:
        profile = await self.clients["sales"].get(
            contract.tenant_path(tenant_name), {}, contract.TenantProfile, tenant=tenant_name)
        return TenantProfile(name=tenant_name, products=sorted(profile.products),
                             country=profile.country, subdivision=profile.subdivision,
                             time_zone=profile.time_zone)

    async def list_products(self, tenant_name: str) -> list[str]:
        return (await self.describe_tenant(tenant_name)).products

    async def load(self, tenant_name: str, *, until: date | None = None,
                   products: Sequence[str] | None = None) -> SourceData:
        sales_task = asyncio.ensure_future(self._sales(tenant_name, until=until,
                                                       products=products))
        regressors_task = asyncio.ensure_future(self.regressors(tenant_name))
        try:
            sales: pd.DataFrame = await sales_task
            data = await regressors_task
        except BaseException:
            # Sales (or the calendar) failed: the job fails, the rest is not waited for.
            await _cancel(sales_task, regressors_task)
            raise
        return dataclasses.replace(data, sales=sales)

    async def regressors(self, tenant_name: str) -> SourceData:
        jobs: dict[str, Awaitable[pd.DataFrame]] = {
            "calendar": self._series(tenant_name, "calendar")}
        for series in OPTIONAL_SERIES:
            if series in self.clients:
                jobs[series] = self._series(tenant_name, series)
        tasks = {name: asyncio.ensure_future(job) for name, job in jobs.items()}
        try:
            frames: dict[str, pd.DataFrame] = {"calendar": await tasks["calendar"]}
        except BaseException:
            await _cancel(*tasks.values())
            raise
        warnings: list[str] = []
        for series in OPTIONAL_SERIES:
            if series not in tasks:
                continue
            try:
                frames[series] = await tasks[series]
            except UpstreamError as exc:
                warnings.append(f"{series} regressors left out: {exc}")
                log.warning("upstream.regressors_left_out", tenant=tenant_name,
                            service=series, cause=str(exc))
        regressors, sources = _merge_series(frames, warnings)
        return SourceData(sales=empty_sales(), regressors=regressors,
                          regressor_sources=sources, warnings=warnings)

    async def last_sales_date(self, tenant_name: str) -> date | None:
        """From the tenant's profile (`last_date`), or, when the service does not say,
        from its sales rows."""
        profile = await self.clients["sales"].get(
            contract.tenant_path(tenant_name), {}, contract.TenantProfile, tenant=tenant_name)
        if profile.last_date is not None:
            return profile.last_date
        sales = await self._sales(tenant_name, until=None, products=None)
        return None if sales.empty else pd.Timestamp(sales["date"].max()).date()

    async def _sales(self, tenant: str, *, until: date | None,
                     products: Sequence[str] | None) -> pd.DataFrame:
        params: dict[str, Any] = {}
        if until is not None:
            params["end"] = until.isoformat()
        if products:
            params["product"] = list(products)
        rows: list[tuple[str, date, float]] = []
        seen: set[tuple[str, date]] = set()
        page_no = 0
        async for page in self.clients["sales"].pages(
                contract.sales_path(tenant), params, contract.SalesPage, tenant=tenant):
            page_no += 1
            for index, row in enumerate(page.rows):
                key = (row.product, row.date)
                if key in seen:
                    raise UpstreamBadResponse("sales", f"page {page_no}, rows[{index}]: "
                                                       f"duplicate ({row.date}, {row.product})")
                if (until is not None and row.date > until) or (
                        products and row.product not in products):
                    raise UpstreamBadResponse("sales", f"page {page_no}, rows[{index}]: "
                                                       f"({row.date}, {row.product}) is "
                                                       f"outside what was asked for")
                seen.add(key)
                rows.append((row.product, row.date, row.quantity))
        if not rows:
            return empty_sales()
        frame = pd.DataFrame(rows, columns=SALES_COLUMNS)
        frame["date"] = pd.to_datetime(frame["date"])
        frame["quantity"] = frame["quantity"].astype(float)
        return frame.sort_values(["product", "date"]).reset_index(drop=True)

    async def _series(self, tenant: str, series: str) -> pd.DataFrame:
        """Wide frame `date` + the series' columns (no columns when it has no rows). Of
        a date's rows the measured one wins over forecasts, and of its forecasts the
        newest issue."""
        service = contract.SERIES_SERVICE[series]
        records: dict[date, contract.SeriesRow] = {}
        columns: list[str] | None = None
        page_no = 0
        async for page in self.clients[service].pages(
                contract.series_path(tenant, series), {}, contract.SeriesPage, tenant=tenant):
            page_no += 1
            if columns is not None and page.columns != columns:
                raise UpstreamBadResponse(service, f"{series} page {page_no} has columns "
                                                   f"{page.columns}, page 1 had {columns}")
            columns = page.columns
            try:
                parsed = page.parsed_rows()
            except ValueError as exc:
                raise UpstreamBadResponse(service, f"{series} page {page_no}: {exc}") from None
            for row in parsed:
                kept = records.get(row.day)
                if kept is not None and _same_issue(kept, row):
                    raise UpstreamBadResponse(service, f"{series} page {page_no}: duplicate "
                                                       f"date {row.day}")
                if kept is None or _newer(row, kept):
                    records[row.day] = row
        if not records or not columns:
            return empty_regressors()
        frame = pd.DataFrame([{"date": day, **row.values} for day, row in records.items()],
                             columns=["date", *columns])
        frame["date"] = pd.to_datetime(frame["date"])
        for column in columns:
            frame[column] = frame[column].astype(float)
        return frame.sort_values("date").reset_index(drop=True)


def _same_issue(a: contract.SeriesRow, b: contract.SeriesRow) -> bool:
    return a.issued_at == b.issued_at


def _newer(row: contract.SeriesRow, kept: contract.SeriesRow) -> bool:
    """A measured row beats any forecast; a later issue beats an earlier one."""
    if kept.issued_at is None:
        return False
    return row.issued_at is None or row.issued_at > kept.issued_at


def _merge_series(frames: dict[str, pd.DataFrame], warnings: list[str]
                  ) -> tuple[pd.DataFrame, dict[str, str]]:
    """One wide frame over the union of dates; a column name two series share is kept
    from the first (SERIES_ORDER) and the clash is warned about."""
    merged: pd.DataFrame | None = None
    sources: dict[str, str] = {}
    for series in SERIES_ORDER:
        frame = frames.get(series)
        if frame is None or len(frame.columns) <= 1:
            continue
        clashes = [c for c in frame.columns if c != "date" and c in sources]
        if clashes:
            warnings.append(f"{series} columns {clashes} left out: already sent by "
                            f"{', '.join(sorted({sources[c] for c in clashes}))}")
            frame = frame.drop(columns=clashes)
            if len(frame.columns) <= 1:
                continue
        sources.update(dict.fromkeys((c for c in frame.columns if c != "date"), series))
        merged = frame if merged is None else merged.merge(frame, on="date", how="outer")
    if merged is None:
        return empty_regressors(), {}
    columns = sorted(c for c in merged.columns if c != "date")
    merged = merged[["date", *columns]].sort_values("date").reset_index(drop=True)
    return merged, sources


async def _cancel(*tasks: asyncio.Future[Any]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
