from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column

from ovencast.db.base import Base, UTCDateTime, state_enum, utcnow
from ovencast.models.states import RunTrigger


class ForecastRun(Base):
    """A saved forecast: what a tenant was told on `created_at` about `days` days from
    `start` (its rows: `ForecastRow`, the champions' and the challengers' in shadow).
    `origin` is the last sales date the forecast knew: a row's lead time counts from it.
    `errors` are the products refused (product -> reason), `notes` what the forecast
    said about all of them (regressors filled in, days assumed open)."""

    __tablename__ = "forecast_runs"
    __table_args__ = (Index("ix_forecast_runs_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    trigger: Mapped[RunTrigger] = mapped_column(state_enum(RunTrigger, name="trigger"))
    origin: Mapped[date | None] = mapped_column(Date)
    start: Mapped[date] = mapped_column(Date)
    days: Mapped[int] = mapped_column(Integer)
    products: Mapped[list[str]] = mapped_column(JSON, default=list)
    errors: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    notes: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The training that came just before it (a scheduled run: fetch, train, forecast).
    training_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"ForecastRun(id={self.id}, start={self.start}, days={self.days})"
