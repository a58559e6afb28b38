"""HTTP endpoints of saved forecast runs: save one (the champions' forecast is the answer,
challengers forecast in shadow), list them, show one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query, status

from ovencast.api.dependencies import Session, SettingsDep, tenant_access
from ovencast.api.errors import ACCESS_ERRORS, error_responses
from ovencast.db.tables import ForecastRow, ForecastRun
from ovencast.forecast_runs import service
from ovencast.forecast_runs.schemas import (
    ForecastRunCreate,
    ForecastRunOut,
    ForecastRunSummary,
    RunId,
    ShadowOut,
    StoredRowOut,
)
from ovencast.keys.roles import Role
from ovencast.models.states import ForecastRole, RunTrigger
from ovencast.sources.service import open_data_source
from ovencast.tenants import service as tenants_service

router = APIRouter(prefix="/tenants/{tenant}/forecast-runs", tags=["forecast-runs"],
                   responses=ACCESS_ERRORS)


def _summary(run: ForecastRun, tenant: str) -> ForecastRunSummary:
    return ForecastRunSummary(
        id=run.id, tenant=tenant, trigger=run.trigger, created_at=run.created_at,
        origin=run.origin, start=run.start, days=run.days, products=run.products,
        errors=run.errors, notes=run.notes, training_job_id=run.training_job_id)


def _out(run: ForecastRun, tenant: str, rows: Sequence[ForecastRow], *,
         with_shadow_rows: bool) -> ForecastRunOut:
    champion = [StoredRowOut.model_validate(r) for r in rows
                if r.role is ForecastRole.CHAMPION]
    shadow_rows = [StoredRowOut.model_validate(r) for r in rows
                   if r.role is ForecastRole.CHALLENGER]
    versions = sorted({(r.product, r.version) for r in shadow_rows})
    return ForecastRunOut(
        **_summary(run, tenant).model_dump(), rows=champion,
        shadow=[ShadowOut(product=p, version=v, family=None) for p, v in versions],
        shadow_rows=shadow_rows if with_shadow_rows else None)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ForecastRunOut,
             summary="Forecast and save the run (challengers forecast in shadow)",
             responses=error_responses(404, 422), dependencies=[tenant_access(Role.TRAIN)])
async def save_forecast_run(tenant: str, body: ForecastRunCreate, session: Session,
                            settings: SettingsDep) -> ForecastRunOut:
    row = await tenants_service.get_tenant(session, tenant)
    async with open_data_source(session, settings=settings) as source:
        saved = await service.save_run(session, row, settings=settings, days=body.days,
                                       start=body.start, products=body.products,
                                       source=source, trigger=RunTrigger.API)
    run, rows = await service.get_run(session, row, saved.run.id)
    out = _out(run, row.name, rows, with_shadow_rows=False)
    out.shadow = [ShadowOut(product=r.product, version=r.version, family=r.family,
                            error=r.error) for r in saved.shadow]
    return out


@router.get("", response_model=list[ForecastRunSummary],
            summary="Saved forecast runs, newest first", responses=error_responses(404),
            dependencies=[tenant_access(Role.READ)])
async def list_forecast_runs(
    tenant: str, session: Session,
    limit: Annotated[int, Query(ge=1, le=service.MAX_LISTED_RUNS)] = 20,
) -> list[ForecastRunSummary]:
    row = await tenants_service.get_tenant(session, tenant)
    return [_summary(run, row.name)
            for run in await service.list_runs(session, row, limit=limit)]


@router.get("/{run_id}", response_model=ForecastRunOut, summary="One saved forecast run",
            responses=error_responses(404), dependencies=[tenant_access(Role.READ)])
async def get_forecast_run(
    tenant: str, run_id: RunId, session: Session,
    shadow: Annotated[bool, Query(description="include the challengers' rows")] = False,
) -> ForecastRunOut:
    row = await tenants_service.get_tenant(session, tenant)
    run, rows = await service.get_run(session, row, run_id)
    return _out(run, row.name, rows, with_shadow_rows=shadow)
