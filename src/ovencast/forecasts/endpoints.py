"""HTTP endpoint of forecasts: every active model's forecast, checksum verified first.

A product whose artifact is refused or whose regressors are unknown for the dates is
listed in `errors` while the others are returned (200). Only when no product could be
forecast is the answer an error, with the products' error status."""

from __future__ import annotations

import math
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ovencast.api.dependencies import Session, SettingsDep
from ovencast.api.errors import error_code, error_responses, status_for
from ovencast.forecasting.frame import DATE, YHAT
from ovencast.forecasts import service
from ovencast.forecasts.schemas import (
    ForecastErrorOut,
    ForecastFailedOut,
    ForecastModelOut,
    ForecastOut,
    ForecastRow,
)
from ovencast.forecasts.service import MAX_FORECAST_DAYS, P10, P50, P90, ProductForecast
from ovencast.sources.service import open_data_source
from ovencast.tenants import service as tenants_service

router = APIRouter(tags=["forecasts"])

UNKNOWN_ERROR_STATUS = 422


@router.get(
    "/tenants/{tenant}/forecasts", response_model=ForecastOut,
    summary="Forecast every (or the given) product from its active model",
    responses={**error_responses(404, 422),
               500: {"model": ForecastFailedOut,
                     "description": "no product could be forecast (e.g. every artifact "
                                    "failed its checksum)"}})
async def get_forecasts(
    tenant: str,
    session: Session,
    settings: SettingsDep,
    start: Annotated[date | None, Query(
        alias="from", description="first forecast date (default: the day after each "
                                  "model's training data)")] = None,
    days: Annotated[int, Query(ge=1, le=MAX_FORECAST_DAYS,
                               description="how many days")] = 7,
    product: Annotated[list[str] | None, Query(description="only these products "
                                                           "(repeatable)")] = None,
) -> Any:
    row = await tenants_service.get_tenant(session, tenant)
    async with open_data_source(session, settings=settings) as source:
        results = await service.forecast_tenant(session, row, settings=settings, days=days,
                                                start=start, products=product, source=source)
    errors = [_error(r) for r in results if r.error is not None]
    succeeded = [r for r in results if r.frame is not None]
    if not succeeded:
        failed = [r for r in results if r.error is not None]
        # Mixed causes: the most severe status wins (a server-side refusal over a 422).
        status = max(status_for(r.error_kind) if r.error_kind else UNKNOWN_ERROR_STATUS
                     for r in failed)
        body = ForecastFailedOut(
            error=errors[0].error if len({e.error for e in errors}) == 1 else "forecast_failed",
            detail=f"no product of tenant {row.name!r} could be forecast: " + "; ".join(
                f"{', '.join(products)}: {reason}"
                for reason, products in service.refusals_by_reason(failed).items()),
            errors=errors)
        return JSONResponse(status_code=status, content=body.model_dump(mode="json"))
    rows = [ForecastRow(date=day, product=r.product, forecast=float(value), p10=_number(p10),
                        p50=float(p50), p90=_number(p90))
            for r in succeeded if r.frame is not None
            for day, value, p10, p50, p90 in zip(
                r.frame[DATE], r.frame[YHAT], r.frame[P10], r.frame[P50], r.frame[P90],
                strict=True)]
    return ForecastOut(
        tenant=row.name, days=days, rows=rows,
        models=[ForecastModelOut(product=r.product, version=r.version, family=r.family,
                                 notes=list(r.notes))
                for r in succeeded],
        errors=errors)


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _error(result: ProductForecast) -> ForecastErrorOut:
    code = error_code(result.error_kind) if result.error_kind else "forecast_failed"
    return ForecastErrorOut(product=result.product, version=result.version, error=code,
                            detail=result.error or "")

