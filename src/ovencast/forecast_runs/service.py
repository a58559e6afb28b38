"""Saving a forecast run: the tenant's forecast from its active versions (the answer,
`forecasts.service.forecast_tenant`), the same dates forecast by each product's
challengers (shadow: stored, never the answer), and the weekly seasonal naive forecast
from the same sales (the baseline realised accuracy is judged beside). One transaction:
the run and all its rows, or nothing."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.db.tables import ForecastRow, ForecastRun, Tenant
from ovencast.errors import ForecastRunNotFound
from ovencast.forecast_runs import repository
from ovencast.forecasting.families.seasonal_naive import SeasonalNaive
from ovencast.forecasting.features import build_tenant_frame
from ovencast.forecasting.frame import CLOSED, DATE, PRODUCT, YHAT
from ovencast.forecasts import service as forecasts_service
from ovencast.forecasts.service import P10, P90, ProductForecast, TenantForecast
from ovencast.models import repository as models_repository
from ovencast.models.states import ForecastRole, RunTrigger
from ovencast.observability.logs import get_logger
from ovencast.settings import Settings
from ovencast.sources.base import DataSource
from ovencast.sources.database import DatabaseSource

log = get_logger(__name__)

BASELINE_HISTORY_DAYS = 56
"""The seasonal naive baseline needs the last open day of each weekday before the
origin: eight weeks of sales find it for any shop open at least once a week."""
MAX_LISTED_RUNS = 200


@dataclass(frozen=True)
class SavedRun:
    """A stored run: its record, the forecast it answered with and the challengers'
    shadow forecasts (one per challenger version, refused ones with their error)."""

    run: ForecastRun
    forecast: TenantForecast
    shadow: list[ProductForecast]


async def save_run(session: AsyncSession, tenant: Tenant, *, settings: Settings, days: int,
                   trigger: RunTrigger, start: date | None = None,
                   products: Sequence[str] | None = None, source: DataSource | None = None,
                   training_job_id: int | None = None) -> SavedRun:
    """Forecast and store (see the module docstring). Raises as `forecast_tenant` does
    (no active model, bad dates); a product refused is stored in the run's `errors`."""
    source = source or DatabaseSource(session)
    forecast = await forecasts_service.forecast_tenant(
        session, tenant, settings=settings, days=days, start=start, products=products,
        source=source)
    asked = [result.product for result in forecast.results]
    challengers = await models_repository.list_challengers(session, tenant.id,
                                                           products=asked)
    shadow: list[ProductForecast] = []
    if challengers:
        data = await source.regressors(tenant.name)
        shadow = await forecasts_service.forecast_versions(
            challengers, forecast.dates, data, tenant, settings=settings)
    origin = forecast.last_sales_date or (forecast.dates[0].date() - timedelta(days=1))
    answered = [r for r in forecast.results if r.frame is not None]
    baselines = await _baselines(source, tenant, [r.product for r in answered],
                                 origin=origin, forecast=forecast)
    run = await repository.add_run(session, ForecastRun(
        tenant_id=tenant.id, trigger=trigger, origin=origin,
        start=forecast.dates[0].date(), days=days, products=[r.product for r in answered],
        errors={r.product: r.error for r in forecast.results if r.error},
        notes=list(forecast.notes), training_job_id=training_job_id))
    versions = {(v.product, v.version): v.id for v in challengers}
    active = {(v.product, v.version): v.id
              for v in await models_repository.list_active(session, tenant.id)}
    rows: list[dict[str, Any]] = []
    for role, results, ids in ((ForecastRole.CHAMPION, answered, active),
                               (ForecastRole.CHALLENGER, shadow, versions)):
        for result in results:
            if result.frame is not None and result.version is not None:
                rows += _rows(run, result, role, origin, baselines.get(result.product),
                              ids.get((result.product, result.version)))
    await repository.add_rows(session, rows)
    log.info("forecast.run.saved", tenant=tenant.name, run_id=run.id, trigger=trigger,
             products=len(answered), challengers=len(challengers), rows=len(rows))
    return SavedRun(run=run, forecast=forecast, shadow=shadow)


def _rows(run: ForecastRun, result: ProductForecast, role: ForecastRole, origin: date,
          baseline: pd.Series | None, version_id: int | None) -> list[dict[str, Any]]:
    frame = result.frame
    assert frame is not None
    assert result.version is not None
    found = []
    for row in frame.itertuples(index=False):
        day: date = getattr(row, DATE)
        found.append({
            "run_id": run.id, "product": result.product, "version": result.version,
            "model_version_id": version_id, "role": role.value, "date": day,
            "lead_days": (day - origin).days, "forecast": float(getattr(row, YHAT)),
            "p10": _number(getattr(row, P10)), "p90": _number(getattr(row, P90)),
            "baseline": None if baseline is None else _number(baseline.get(day)),
            "closed": bool(getattr(row, CLOSED))})
    return found


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


async def _baselines(source: DataSource, tenant: Tenant, products: Sequence[str], *,
                     origin: date, forecast: TenantForecast) -> dict[str, pd.Series]:
    """Per product, the weekly seasonal naive forecast of the run's dates (date ->
    value; 0 on closed days) from the sales up to the origin: what the simplest rule
    would have said with the same information."""
    if not products:
        return {}
    data = await source.load(tenant.name, until=origin, products=products)
    first = pd.Timestamp(origin - timedelta(days=BASELINE_HISTORY_DAYS - 1))
    recent = data.sales.loc[pd.to_datetime(data.sales["date"]) >= first]
    history, _ = build_tenant_frame(recent, data.regressors, country=tenant.country,
                                    subdivision=tenant.subdivision)
    rows = forecast.forecast
    found: dict[str, pd.Series] = {}
    for product, past in history.groupby(PRODUCT, sort=False):
        future = rows.loc[rows[PRODUCT] == product, [DATE, CLOSED]]
        if future.empty:
            continue
        try:
            model = SeasonalNaive().fit(past.drop(columns=[PRODUCT]))
        except ValueError:  # no open day in the recent weeks: no baseline
            continue
        frame = pd.DataFrame({DATE: pd.to_datetime(future[DATE]),
                              CLOSED: future[CLOSED].to_numpy(dtype=bool)})
        values = np.asarray(model.predict(frame), dtype=float)
        found[str(product)] = pd.Series(values, index=list(future[DATE]))
    return found


async def list_runs(session: AsyncSession, tenant: Tenant, *, limit: int = 20
                    ) -> Sequence[ForecastRun]:
    return await repository.runs_of(session, tenant.id, limit=min(limit, MAX_LISTED_RUNS))


async def get_run(session: AsyncSession, tenant: Tenant, run_id: int
                  ) -> tuple[ForecastRun, Sequence[ForecastRow]]:
    """A run of this tenant with its rows; another tenant's run is not found, in the same
    words as one that does not exist."""
    run = await repository.get_run(session, run_id)
    if run is None or run.tenant_id != tenant.id:
        raise ForecastRunNotFound(f"forecast run {run_id} does not exist")
    return run, await repository.rows_of(session, run_id)
