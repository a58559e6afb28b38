"""Choosing the data source from settings, and creating a tenant that only an upstream
service knows on its first use."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.db.tables import Tenant
from ovencast.errors import Misconfigured
from ovencast.settings import Settings
from ovencast.sources.base import DataSource
from ovencast.sources.breakers import BreakerRegistry
from ovencast.sources.database import DatabaseSource
from ovencast.sources.http import HttpSource
from ovencast.tenants import repository as tenants_repository
from ovencast.tenants import service as tenants_service


def upstream_configured(settings: Settings) -> bool:
    return bool(settings.sales_service_url)


def open_data_source(session: AsyncSession, *, settings: Settings,
                     breakers: BreakerRegistry | None = None) -> DataSource:
    """`HttpSource` when SALES_SERVICE_URL is set (WEATHER/TRAFFIC_SERVICE_URL optional),
    else `DatabaseSource` over `session`. Use as `async with open_data_source(...) as s:`."""
    if upstream_configured(settings):
        return HttpSource.from_settings(settings, breakers=breakers)
    if settings.weather_service_url or settings.traffic_service_url:
        raise Misconfigured("WEATHER_SERVICE_URL / TRAFFIC_SERVICE_URL need "
                            "SALES_SERVICE_URL: sales come from the sales service or, "
                            "without any of them, from imported data")
    return DatabaseSource(session)


async def resolve_tenant(session: AsyncSession, source: DataSource, name: str) -> Tenant:
    """The tenant row; created from the source's profile (country, subdivision, time
    zone) on first use when the source knows tenants the database does not. Otherwise an
    unknown tenant is `TenantNotFound`; with an upstream source, `UpstreamNotFound`."""
    tenant = await tenants_repository.get_by_name(session, name)
    if tenant is not None or not source.creates_tenants:
        return tenant or await tenants_service.get_tenant(session, name)
    profile = await source.describe_tenant(name)
    return await tenants_service.ensure_tenant(
        session, name, country=profile.country, subdivision=profile.subdivision,
        time_zone=profile.time_zone)
