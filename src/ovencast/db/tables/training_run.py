from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ovencast.db.base import Base, UTCDateTime, state_enum, utcnow
from ovencast.jobs.states import RunStatus


class TrainingRun(Base):
    """The outcome of one product within a training job; `status` is a `RunStatus`. Every
    end state other than `trained` carries a `reason`: a product never silently yields no
    model."""

    __tablename__ = "training_runs"
    __table_args__ = (UniqueConstraint("job_id", "product"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("training_jobs.id", ondelete="CASCADE"))
    product: Mapped[str] = mapped_column(String(200))
    status: Mapped[RunStatus] = mapped_column(state_enum(RunStatus, name="status"),
                                              default=RunStatus.PENDING)
    reason: Mapped[str | None] = mapped_column(Text)
    product_class: Mapped[str | None] = mapped_column(String(20))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Service shape: the product's history as the job validated it (key, sha256).
    data_snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_s: Mapped[float | None] = mapped_column(Float)
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
