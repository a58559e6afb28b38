"""Request and response bodies of the forecast-runs endpoints."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from ovencast.db.base import MAX_ROW_ID
from ovencast.forecasts.service import MAX_FORECAST_DAYS
from ovencast.models.states import ForecastRole, RunTrigger
from ovencast.names import LookupName

RunId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="the forecast run's id")]


class ForecastRunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: date | None = Field(default=None, alias="from",
                               description="first forecast date (default: the day after "
                                           "the tenant's last sales date)")
    days: int = Field(default=28, ge=1, le=MAX_FORECAST_DAYS)
    products: list[LookupName] | None = Field(default=None, min_length=1,
                                              description="default: every product with "
                                                          "an active model")


class StoredRowOut(BaseModel):
    """One product on one day of a saved run, as stored."""

    model_config = ConfigDict(from_attributes=True)

    product: str
    date: date
    version: int
    role: ForecastRole
    lead_days: int = Field(description="days after the run's origin (its last sales date)")
    forecast: float
    p10: float | None
    p90: float | None
    baseline: float | None = Field(description="the weekly seasonal naive forecast from "
                                               "the same sales")
    closed: bool


class ShadowOut(BaseModel):
    """A challenger that forecast the same dates in shadow (stored, not the answer)."""

    product: str
    version: int | None
    family: str | None
    error: str | None = Field(default=None, description="why its forecast was refused")


class ForecastRunSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    tenant: str
    trigger: RunTrigger
    created_at: datetime
    origin: date | None = Field(description="the last sales date the forecast knew")
    start: date
    days: int
    products: list[str]
    errors: dict[str, str] = Field(description="products refused, with the reason")
    notes: list[str]
    training_job_id: int | None


class ForecastRunOut(ForecastRunSummary):
    rows: list[StoredRowOut] = Field(description="the answer: the champions' rows")
    shadow: list[ShadowOut] = Field(default_factory=list,
                                    description="challengers that forecast in shadow")
    shadow_rows: list[StoredRowOut] | None = Field(
        default=None, description="the challengers' rows (with `?shadow=true`)")
