from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ovencast.db.base import Base, UTCDateTime, state_enum, utcnow
from ovencast.jobs.states import RunStatus

OPEN_RUNS_SQL = "status IN ({})".format(
    ", ".join(f"'{status.value}'" for status in RunStatus if not status.ended))
"""The runs that have not ended, as SQL with the values written out: a prepared
statement's generic plan uses the partial index `ix_training_runs_open` only for a
predicate it can see (`jobs.repository`)."""


class TrainingRun(Base):
    """The outcome of one product within a training job; `status` is a `RunStatus`. Every
    end state other than `trained` carries a `reason`: a product never silently yields no
    model."""

    __tablename__ = "training_runs"
    __table_args__ = (
        UniqueConstraint("job_id", "product"),
        # The open runs by job: the service shape's reaper and fan-in (migration 0011).
        Index("ix_training_runs_open", "job_id", postgresql_where=text(OPEN_RUNS_SQL),
              sqlite_where=text(OPEN_RUNS_SQL)),
    )

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
