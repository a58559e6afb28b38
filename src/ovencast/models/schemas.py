"""Response bodies of the models endpoints."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from ovencast.db.base import MAX_ROW_ID

# A version number in a path: out of range (0, 2^63...) is a 422, never a driver error.
VersionNumber = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="the version number")]


class ModelVersionOut(BaseModel):
    """One trained model of one product, with its holdout metrics."""

    model_config = ConfigDict(from_attributes=True)

    product: str
    version: int
    family: str
    is_active: bool
    metrics: dict[str, Any] = Field(description="holdout metrics (WAPE, MASE, ...)")
    baseline_metrics: dict[str, Any] = Field(
        description="the weekly seasonal-naive baseline on the same holdout")
    params: dict[str, Any]
    regressors: list[str]
    data_start: date
    data_end: date
    sha256: str
    size_bytes: int
    training_job_id: int | None
    created_at: datetime
