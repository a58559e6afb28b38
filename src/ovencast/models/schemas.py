"""Response bodies of the models endpoints."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from ovencast.db.base import MAX_ROW_ID
from ovencast.models.states import ActivationPolicy, Standing, Verdict

# A version number in a path: out of range (0, 2^63...) is a 422, never a driver error.
VersionNumber = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="the version number")]


class ComparisonOut(BaseModel):
    """The new version and the then active one refitted on the same windows of the new
    data, scored on their open days."""

    windows: list[list[str]] = Field(description="[first, last] day of each window")
    new_wape: float | None
    active_wape: float | None
    new_window_wapes: list[float | None]
    active_window_wapes: list[float | None]
    n_days: int


class PromotionOut(BaseModel):
    """How the promotion gate decided about this version when it was trained."""

    verdict: Verdict
    policy: ActivationPolicy
    reason: str = Field(examples=["worse, kept as challenger: WAPE 0.336 vs 0.315 of "
                                  "version 1 on 3 windows (+6.9%, tolerance 2%)"])
    active_version: int | None = Field(description="the version it was compared with")
    tolerance: float | None
    comparison: ComparisonOut | None
    shadow: dict[str, Any] | None = Field(
        default=None, description="when it was promoted from shadow (`compare --promote` "
        "or AUTO_PROMOTE_AFTER_WEEKS): the champion/challenger comparison that did it")


class ModelVersionOut(BaseModel):
    """One trained model of one product, with its holdout metrics."""

    model_config = ConfigDict(from_attributes=True)

    product: str
    version: int
    family: str
    is_active: bool
    standing: Standing = Field(description="active (forecasts answer with it), challenger "
                               "(forecasts in shadow, compared with the active one) or "
                               "retired (kept for roll-back)")
    promotion: PromotionOut | None = Field(
        default=None, description="the promotion gate's decision; null for versions "
                                  "trained before the gate existed")
    metrics: dict[str, Any] = Field(description="holdout metrics (WAPE, MASE, ...)")
    holdout_days: int | None = Field(
        default=None, description="the calendar days the holdout metrics score: the last "
        "28 of the product's data, fewer (at least 7) for a history of 30 to 41 days; "
        "null for a version trained before they were recorded")
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
