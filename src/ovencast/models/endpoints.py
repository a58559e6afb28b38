"""HTTP endpoints of model versions: list with metrics, activate (roll back or forward)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query

from ovencast.api.dependencies import Session, tenant_access
from ovencast.api.errors import ACCESS_ERRORS, error_responses
from ovencast.db.tables import ModelVersion
from ovencast.keys.roles import Role
from ovencast.models import service
from ovencast.models.schemas import ModelVersionOut, VersionNumber
from ovencast.names import LookupName
from ovencast.tenants import service as tenants_service

router = APIRouter(prefix="/tenants/{tenant}/models", tags=["models"],
                   responses=ACCESS_ERRORS)


@router.get("", response_model=list[ModelVersionOut],
            summary="Model versions with their holdout metrics and standing",
            responses=error_responses(404), dependencies=[tenant_access(Role.READ)])
async def list_models(
    tenant: str,
    session: Session,
    product: Annotated[LookupName | None, Query(description="only this product")] = None,
    all_versions: Annotated[bool, Query(alias="all", description="include retired "
                                        "versions (default: active and challengers)")
                            ] = False,
) -> Sequence[ModelVersion]:
    row = await tenants_service.get_tenant(session, tenant)
    versions = await service.list_versions(session, row, product=product)
    return [v for v in versions if all_versions or v.is_active or v.is_challenger]


@router.post("/{product}/versions/{version}/activate", response_model=ModelVersionOut,
             summary="Make a version the active one (roll back or forward)",
             responses=error_responses(404), dependencies=[tenant_access(Role.TRAIN)])
async def activate_version(tenant: str, product: LookupName, version: VersionNumber,
                           session: Session) -> ModelVersion:
    row = await tenants_service.get_tenant(session, tenant)
    return await service.activate(session, row, product, version)
