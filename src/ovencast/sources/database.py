"""Imported data (embedded shape, and the service shape's imports): what `ovencast
import` or an upload stored in the database.

A tenant's regressors and last sales date change only with an import, so they are kept
per process by data version (the tenant's newest import: `datasets.repository.
data_version`): a forecast request reads one small row instead of every regressor value,
and pivots nothing on the event loop. Sales are always read."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd
from cachetools import LRUCache
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.datasets import repository as datasets_repository
from ovencast.db.tables import Tenant
from ovencast.sources.base import DataSource, SourceData, TenantProfile, empty_sales
from ovencast.tenants import service as tenants_service

# Tenants whose regressors one process keeps (a few years of a few columns each: well
# under a megabyte per tenant).
CACHED_TENANTS = 256


@dataclass(frozen=True)
class _Snapshot:
    regressors: pd.DataFrame  # read-only by convention: callers copy before changing
    sources: dict[str, str]
    last_sales_date: date | None
    version: str | None
    order: tuple[str, ...] = ()  # the files' column order


# (database URL, tenant id, tenant name) -> (data version, snapshot). The URL tells
# databases of one process apart (tests, tools); the version includes the import's time
# so that an id SQLite hands out again after a delete is not mistaken for the old one.
_Key = tuple[str, int, str]
_snapshots: LRUCache[_Key, tuple[tuple[int, datetime], _Snapshot]] = LRUCache(CACHED_TENANTS)
_lock = threading.Lock()  # the cache is shared by the process's event loops and threads


class DatabaseSource(DataSource):
    """Reads through the caller's session (the caller's unit of work)."""

    kind = "database"

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def describe_tenant(self, tenant_name: str) -> TenantProfile:
        tenant = await tenants_service.get_tenant(self._session, tenant_name)
        products = await datasets_repository.list_products(self._session, tenant.id)
        return TenantProfile(name=tenant.name, products=products, country=tenant.country,
                             subdivision=tenant.subdivision, time_zone=tenant.time_zone)

    async def data_version(self, tenant_name: str) -> int | None:
        tenant = await tenants_service.get_tenant(self._session, tenant_name)
        version = await datasets_repository.data_version(self._session, tenant.id)
        return None if version is None else version[0]

    async def list_products(self, tenant_name: str) -> list[str]:
        tenant = await tenants_service.get_tenant(self._session, tenant_name)
        return await datasets_repository.list_products(self._session, tenant.id)

    async def load(self, tenant_name: str, *, until: date | None = None,
                   products: Sequence[str] | None = None) -> SourceData:
        tenant = await tenants_service.get_tenant(self._session, tenant_name)
        sales = await datasets_repository.load_sales(self._session, tenant.id, until=until,
                                                     products=products)
        snapshot = await self._snapshot(tenant)
        return SourceData(sales=sales, regressors=snapshot.regressors.copy(),
                          regressor_sources=dict(snapshot.sources),
                          regressor_order=snapshot.order)

    async def regressors(self, tenant_name: str) -> SourceData:
        tenant = await tenants_service.get_tenant(self._session, tenant_name)
        snapshot = await self._snapshot(tenant)
        return SourceData(sales=empty_sales(), regressors=snapshot.regressors.copy(),
                          regressor_sources=dict(snapshot.sources), version=snapshot.version)

    async def last_sales_date(self, tenant_name: str) -> date | None:
        tenant = await tenants_service.get_tenant(self._session, tenant_name)
        return (await self._snapshot(tenant)).last_sales_date

    async def _snapshot(self, tenant: Tenant) -> _Snapshot:
        version = await datasets_repository.data_version(self._session, tenant.id)
        if version is None:  # nothing imported: nothing to keep
            return _Snapshot(*datasets_repository.regressors_frame([]), last_sales_date=None,
                             version=None)
        key = (self._session.get_bind().engine.url.render_as_string(), tenant.id, tenant.name)
        with _lock:
            kept = _snapshots.get(key)
        if kept is not None and kept[0] == version:
            return kept[1]
        rows = await datasets_repository.regressor_rows(self._session, tenant.id)
        last = await datasets_repository.last_sales_date(self._session, tenant.id)
        regressors, sources = await asyncio.to_thread(datasets_repository.regressors_frame,
                                                      rows)
        order = await datasets_repository.regressor_column_order(self._session, tenant.id)
        snapshot = _Snapshot(regressors, sources, last, version="|".join(
            (*map(str, key), str(version[0]), version[1].isoformat())), order=order)
        with _lock:
            _snapshots[key] = (version, snapshot)
        return snapshot
