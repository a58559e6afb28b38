"""HTTP endpoint of forecasts: every active model's forecast, checksum verified first.

Every product gets the same dates; a regressor value nobody supplied for a date is filled
in from the calendar or the tenant's history and said so (`fallbacks`, each row's `note`).
A product whose artifact is refused is listed in `errors` while the others are returned
(200). Only when no product could be
forecast is the answer an error, with the products' error status."""

from __future__ import annotations

import math
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ovencast.api.dependencies import Session, SettingsDep, tenant_access
from ovencast.api.errors import ACCESS_ERRORS, error_code, error_responses, status_for
from ovencast.forecasting.frame import DATE, PRODUCT, YHAT
from ovencast.forecasts import service
from ovencast.forecasts.schemas import (
    FallbackOut,
    ForecastErrorOut,
    ForecastFailedOut,
    ForecastModelOut,
    ForecastOut,
    ForecastRow,
)
from ovencast.forecasts.service import (
    FALLBACK,
    MAX_FORECAST_DAYS,
    MODEL,
    NOTE,
    P10,
    P50,
    P90,
    VERSION,
    WEEKDAY,
    ProductForecast,
)
from ovencast.keys.roles import Role
from ovencast.names import LookupName
from ovencast.sources.service import open_data_source
from ovencast.tenants import service as tenants_service

router = APIRouter(tags=["forecasts"], responses=ACCESS_ERRORS)

UNKNOWN_ERROR_STATUS = 422


@router.get(
    "/tenants/{tenant}/forecasts", response_model=ForecastOut,
    summary="Forecast every (or the given) product from its active model",
    responses={**error_responses(404, 422),
               500: {"model": ForecastFailedOut,
                     "description": "no product could be forecast (e.g. every artifact "
                                    "failed its checksum)"}},
    dependencies=[tenant_access(Role.READ)])
async def get_forecasts(
    tenant: str,
    session: Session,
    settings: SettingsDep,
    start: Annotated[date | None, Query(
        alias="from", description="first forecast date (default: the day after the "
                                  "tenant's last sales date)")] = None,
    days: Annotated[int, Query(ge=1, le=MAX_FORECAST_DAYS,
                               description="how many days")] = 7,
    product: Annotated[list[LookupName] | None, Query(description="only these products "
                                                           "(repeatable)")] = None,
) -> Any:
    row = await tenants_service.get_tenant(session, tenant)
    async with open_data_source(session, settings=settings) as source:
        forecast = await service.forecast_tenant(session, row, settings=settings, days=days,
                                                 start=start, products=product,
                                                 source=source)
    results = forecast.results
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
    frame = forecast.forecast
    rows = [ForecastRow(date=r[DATE], weekday=r[WEEKDAY], product=r[PRODUCT],
                        forecast=float(r[YHAT]), p10=_number(r[P10]), p50=float(r[P50]),
                        p90=_number(r[P90]), model=r[MODEL], version=int(r[VERSION]),
                        note=r[NOTE], fallback_regressors=[
                            c for c in str(r[FALLBACK]).split(", ") if c])
            for r in frame.to_dict(orient="records")]
    return ForecastOut(
        tenant=row.name, start=forecast.dates[0].date(), days=days,
        last_sales_date=forecast.last_sales_date, rows=rows,
        fallbacks=[FallbackOut(**span) for span in forecast.fallbacks],
        notes=list(forecast.notes),
        models=[ForecastModelOut(product=r.product, version=r.version, family=r.family,
                                 model=r.model, notes=list(r.notes))
                for r in succeeded],
        errors=errors)


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _error(result: ProductForecast) -> ForecastErrorOut:
    code = error_code(result.error_kind) if result.error_kind else "forecast_failed"
    return ForecastErrorOut(product=result.product, version=result.version, error=code,
                            detail=result.error or "")

