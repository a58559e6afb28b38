from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.db.tables import Tenant
from ovencast.errors import InvalidRequest, TenantExists, TenantNotFound
from ovencast.names import TENANT_NAME, storable
from ovencast.tenants import repository

DEFAULT_TIME_ZONE = "Europe/Berlin"


def check_locale(country: str | None, subdivision: str | None, time_zone: str) -> None:
    """Refuse a country/subdivision the `holidays` package does not know, or a bad zone."""
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(f"unknown time zone {time_zone!r}") from None
    if country is None:
        if subdivision is not None:
            raise InvalidRequest("a subdivision needs a country")
        return
    try:
        holidays.country_holidays(country, subdiv=subdivision)
    except NotImplementedError as exc:
        raise InvalidRequest(f"unknown country/subdivision for holidays: {exc}") from None


def tenant_not_found(name: str) -> TenantNotFound:
    """The error for a tenant that does not exist, also given to a caller whose key
    belongs to another tenant: word for word the same, so it learns nothing."""
    return TenantNotFound(f"tenant {name!r} does not exist (import a dataset first: "
                          f"`ovencast import DIR --tenant {name}`)")


async def _find(session: AsyncSession, name: str) -> Tenant | None:
    """The tenant of that name; None also for a name that cannot exist (NUL...)."""
    return await repository.get_by_name(session, name) if storable(name) else None


async def get_tenant(session: AsyncSession, name: str) -> Tenant:
    tenant = await _find(session, name)
    if tenant is None:
        raise tenant_not_found(name)
    return tenant


async def ensure_tenant(
    session: AsyncSession,
    name: str,
    *,
    country: str | None = None,
    subdivision: str | None = None,
    time_zone: str | None = None,
) -> Tenant:
    """Get the tenant, creating it on first use; given locale fields update it."""
    tenant = await _find(session, name)
    if tenant is None:
        check_name(name)
    zone = time_zone or (tenant.time_zone if tenant else DEFAULT_TIME_ZONE)
    new_country = country if country is not None else (tenant.country if tenant else None)
    new_subdivision = subdivision if subdivision is not None else (
        tenant.subdivision if tenant else None)
    check_locale(new_country, new_subdivision, zone)
    if tenant is None:
        return await repository.add(session, Tenant(
            name=name, country=new_country, subdivision=new_subdivision, time_zone=zone))
    tenant.country, tenant.subdivision, tenant.time_zone = new_country, new_subdivision, zone
    await session.flush()
    return tenant


def check_name(name: str) -> None:
    """A new tenant's name: 1-100 characters of the defined set (`ovencast.names`: no
    control characters, no leading or trailing space), no '/' or '\\' and not '.' or
    '..' (the name is a URL path segment)."""
    if not name or len(name) > TENANT_NAME.max_length:
        raise InvalidRequest(f"tenant name must be 1-{TENANT_NAME.max_length} characters")
    problem = TENANT_NAME.problem(name)
    if problem is None and name in (".", ".."):
        problem = "must not be '.' or '..'"
    if problem is not None:
        raise InvalidRequest(f"tenant name {name!r} {problem}")


async def create_tenant(
    session: AsyncSession,
    name: str,
    *,
    country: str | None = None,
    subdivision: str | None = None,
    time_zone: str | None = None,
) -> Tenant:
    """Register a new tenant; `TenantExists` if the name is taken (also when a concurrent
    request registered it first: the unique index decides)."""
    check_name(name)
    zone = time_zone or DEFAULT_TIME_ZONE
    check_locale(country, subdivision, zone)
    if await _find(session, name) is not None:
        raise TenantExists(f"tenant {name!r} already exists")
    try:
        return await repository.add(session, Tenant(
            name=name, country=country, subdivision=subdivision, time_zone=zone))
    except IntegrityError:
        raise TenantExists(f"tenant {name!r} already exists") from None


async def list_tenants(session: AsyncSession) -> Sequence[Tenant]:
    return await repository.list_all(session)
