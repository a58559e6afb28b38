"""HTTP endpoints of tenants: register, list, show."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, status

from ovencast.api.dependencies import Session, global_access, tenant_access
from ovencast.api.errors import ACCESS_ERRORS, error_responses
from ovencast.db.tables import Tenant
from ovencast.keys.roles import Role
from ovencast.tenants import service
from ovencast.tenants.schemas import TenantCreate, TenantOut

router = APIRouter(prefix="/tenants", tags=["tenants"], responses=ACCESS_ERRORS)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TenantOut,
             summary="Register a tenant", responses=error_responses(409, 422),
             dependencies=[global_access(Role.ADMIN)])
async def create_tenant(body: TenantCreate, session: Session) -> Tenant:
    return await service.create_tenant(session, body.name, country=body.country,
                                       subdivision=body.subdivision, time_zone=body.time_zone)


@router.get("", response_model=list[TenantOut], summary="List tenants",
            dependencies=[global_access(Role.READ)])
async def list_tenants(session: Session) -> Sequence[Tenant]:
    return await service.list_tenants(session)


@router.get("/{tenant}", response_model=TenantOut, summary="Show a tenant",
            responses=error_responses(404), dependencies=[tenant_access(Role.READ)])
async def get_tenant(tenant: str, session: Session) -> Tenant:
    return await service.get_tenant(session, tenant)
