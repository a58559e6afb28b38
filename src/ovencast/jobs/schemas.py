"""Request and response bodies of the training-job endpoints."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from ovencast.db.base import MAX_ROW_ID
from ovencast.jobs.states import JobStatus, RunStatus
from ovencast.models.states import ActivationPolicy

# A job id in a path: out of range (0, 2^63...) is a 422, never a driver error.
JobId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="the training job's id")]


class TrainingJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    products: list[str] | None = Field(default=None, min_length=1,
                                       description="default: every product of the tenant")
    until: date | None = Field(default=None, description="train on data up to this date")
    models: list[str] | None = Field(default=None, min_length=1,
                                     examples=[["auto"], ["prophet"], ["mstl", "auto_ets"]],
                                     description="model families to select among by a "
                                                 "backtest, or [\"auto\"] (the default: "
                                                 "the product class's candidates)")
    activation: ActivationPolicy = Field(
        default=ActivationPolicy.IF_BETTER,
        description="what becomes of each new version: if-better (active only when not "
                    "worse than the active version on the same backtest windows of the new "
                    "data, beyond PROMOTION_TOLERANCE; else kept as a challenger), always, "
                    "never (kept as a challenger)")


class JobLinks(BaseModel):
    self: str
    events: str = Field(description="WebSocket: snapshot, then live progress events")
    cancel: str


class TrainingJobAccepted(BaseModel):
    id: int
    status: JobStatus
    links: JobLinks


class TrainingRunOut(BaseModel):
    """One product's outcome within a job."""

    model_config = ConfigDict(populate_by_name=True)

    product: str
    status: RunStatus
    reason: str | None = Field(description="why it did not train (every end state but "
                                           "`trained` has one)")
    product_class: str | None = Field(serialization_alias="class",
                                      description="high/medium/low volume, intermittent")
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    model_version: int | None = Field(description="the version it produced")


class TrainingJobOut(BaseModel):
    id: int
    tenant: str
    status: JobStatus
    products: list[str] | None
    models: list[str]
    until: date | None
    activation: ActivationPolicy = ActivationPolicy.IF_BETTER
    error: str | None
    warnings: list[str]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: JobLinks


class TrainingJobDetail(TrainingJobOut):
    runs: list[TrainingRunOut]
    validation_report: dict[str, Any] | None
    alignment_report: dict[str, Any] | None
    global_models: dict[str, Any] | None = Field(
        default=None, description="the tenant-level models the job trained before its "
        "products (family, products, cutoffs, seconds, artifact uri and sha256); null when "
        "its model choice uses none")
    data_version: int | None = Field(
        default=None, description="the tenant's data version (its newest import) the job "
        "validated and trained on; null before it was prepared, or for data from upstream "
        "services")
