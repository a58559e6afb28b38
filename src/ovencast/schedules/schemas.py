"""Request and response bodies of the schedule endpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from ovencast.forecasts.service import MAX_FORECAST_DAYS
from ovencast.models.states import ActivationPolicy


class ScheduleSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cron: str | None = Field(description="5 fields (minute hour day month weekday) in the "
                                         "tenant's time zone, or 6 (a 6th for seconds); "
                                         "null removes the schedule",
                             examples=["0 3 * * *"], max_length=200)
    days: int = Field(default=28, ge=1, le=MAX_FORECAST_DAYS,
                      description="days each run forecasts and saves")
    models: list[str] | None = Field(default=None, min_length=1,
                                     description="as a training job's `models`")
    activation: ActivationPolicy = ActivationPolicy.IF_BETTER


class ScheduleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    tenant: str
    cron: str | None = Field(description="null: the tenant has no schedule")
    days: int | None = None
    models: list[str] | None = None
    activation: ActivationPolicy | None = None
    next_due_at: datetime | None = Field(
        default=None, description="when it runs next (a time already past: due, taken by "
        "the next pass of the workers' periodic task)")
    last_due_at: datetime | None = Field(default=None, description="the last time of the "
                                         "cron expression that was handled (when set: "
                                         "the time it was set)")
    last_job_id: int | None = None
    last_run_id: int | None = Field(default=None, description="its last saved forecast run")
    last_finished_at: datetime | None = None
    last_error: str | None = None
