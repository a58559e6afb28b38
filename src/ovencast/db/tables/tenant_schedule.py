from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ovencast.db.base import Base, UTCDateTime, state_enum, utcnow
from ovencast.models.states import ActivationPolicy


class TenantSchedule(Base):
    """A tenant's scheduled work (service shape, schedules/): at each time of `cron` (in
    the tenant's time zone) fetch its data, retrain, and save a forecast run of `days`
    days. At most one per tenant; none by default. `last_due_at` is the last cron time
    that was handled, so that each one is run once across all workers."""

    __tablename__ = "tenant_schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"),
                                           unique=True)
    cron: Mapped[str] = mapped_column(String(100))
    days: Mapped[int] = mapped_column(Integer, default=28)
    models: Mapped[list[str] | None] = mapped_column(JSON)
    activation: Mapped[ActivationPolicy] = mapped_column(
        state_enum(ActivationPolicy, name="activation"), default=ActivationPolicy.IF_BETTER)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="SET NULL"))
    last_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("forecast_runs.id", ondelete="SET NULL"))
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
