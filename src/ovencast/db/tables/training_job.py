from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from ovencast.db.base import Base, UTCDateTime, state_enum, utcnow
from ovencast.jobs.states import JobStatus
from ovencast.models.states import ActivationPolicy


class TrainingJob(Base):
    """One request to train some or all products of a tenant; `status` is a `JobStatus`.
    The validation and alignment reports are stored with the job."""

    __tablename__ = "training_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    status: Mapped[JobStatus] = mapped_column(state_enum(JobStatus, name="status"),
                                              default=JobStatus.QUEUED)
    products: Mapped[list[str] | None] = mapped_column(JSON)
    models: Mapped[list[str]] = mapped_column(JSON)
    until: Mapped[date | None] = mapped_column(Date)
    # What becomes of each new version (training/promotion.py).
    activation: Mapped[ActivationPolicy] = mapped_column(
        state_enum(ActivationPolicy, name="activation"), default=ActivationPolicy.IF_BETTER,
        server_default=ActivationPolicy.IF_BETTER.value)
    validation_report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    alignment_report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The tenant-level models trained for this job (artifact uri, sha256, cut-offs, cost);
    # None when its model choice uses none. See forecasting/global_stage.py.
    global_models: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The data the job validated: `data_version` (the tenant's newest import then) and,
    # in the service shape, the store prefix of its products' histories
    # (training/snapshot.py).
    data_snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
