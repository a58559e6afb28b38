"""HTTP endpoints of a tenant's schedule: show, set or remove (`cron: null`)."""

from __future__ import annotations

from fastapi import APIRouter

from ovencast.api.dependencies import Session, tenant_access
from ovencast.api.errors import ACCESS_ERRORS, error_responses
from ovencast.db.base import utcnow
from ovencast.db.tables import Tenant, TenantSchedule
from ovencast.keys.roles import Role
from ovencast.schedules import service
from ovencast.schedules.schemas import ScheduleOut, ScheduleSet
from ovencast.tenants import service as tenants_service

router = APIRouter(prefix="/tenants/{tenant}/schedule", tags=["schedules"],
                   responses=ACCESS_ERRORS)


def _out(tenant: Tenant, row: TenantSchedule | None) -> ScheduleOut:
    if row is None:
        return ScheduleOut(tenant=tenant.name, cron=None)
    return ScheduleOut(
        tenant=tenant.name, cron=row.cron, days=row.days, models=row.models,
        activation=row.activation, last_due_at=row.last_due_at,
        next_due_at=service.next_due(row, tenant.time_zone, now=utcnow()),
        last_job_id=row.last_job_id, last_run_id=row.last_run_id,
        last_finished_at=row.last_finished_at, last_error=row.last_error)


@router.get("", response_model=ScheduleOut, summary="The tenant's scheduled work",
            responses=error_responses(404), dependencies=[tenant_access(Role.READ)])
async def get_schedule(tenant: str, session: Session) -> ScheduleOut:
    row = await tenants_service.get_tenant(session, tenant)
    return _out(row, await service.get_schedule(session, row))


@router.post("", response_model=ScheduleOut,
            summary="Set the tenant's scheduled work (fetch, retrain, save a forecast "
                    "run at each time of a cron expression), or remove it",
            responses=error_responses(404, 422), dependencies=[tenant_access(Role.TRAIN)])
async def set_schedule(tenant: str, body: ScheduleSet, session: Session) -> ScheduleOut:
    row = await tenants_service.get_tenant(session, tenant)
    return _out(row, await service.set_schedule(
        session, row, cron=body.cron, days=body.days, models=body.models,
        activation=body.activation))
