"""Imported data (embedded shape): what `ovencast import` stored in the database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.datasets import repository as datasets_repository
from ovencast.sources.base import DataSource, SourceData, TenantProfile
from ovencast.tenants import service as tenants_service


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

    async def list_products(self, tenant_name: str) -> list[str]:
        tenant = await tenants_service.get_tenant(self._session, tenant_name)
        return await datasets_repository.list_products(self._session, tenant.id)

    async def load(self, tenant_name: str, *, until: date | None = None,
                   products: Sequence[str] | None = None) -> SourceData:
        tenant = await tenants_service.get_tenant(self._session, tenant_name)
        sales = await datasets_repository.load_sales(self._session, tenant.id, until=until,
                                                     products=products)
        regressors, sources = await datasets_repository.load_regressors(self._session,
                                                                         tenant.id)
        return SourceData(sales=sales, regressors=regressors, regressor_sources=sources)

    async def last_sales_date(self, tenant_name: str) -> date | None:
        tenant = await tenants_service.get_tenant(self._session, tenant_name)
        return await datasets_repository.last_sales_date(self._session, tenant.id)
