"""Response bodies of the models endpoints."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
