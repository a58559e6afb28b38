from __future__ import annotations

from datetime import date

from sqlalchemy import Boolean, Date, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ovencast.db.base import Base, state_enum
from ovencast.models.states import ForecastRole


class ForecastRow(Base):
    """One product on one day of a saved forecast run, from one model version: the
    champion's (what the run answered) or a challenger's (shadow). `lead_days` counts
    from the run's origin (its last sales date); `baseline` is the weekly seasonal
    naive forecast made from the same sales, scored beside it; `closed` days are
    forecast 0 and never scored."""

    __tablename__ = "forecast_rows"
    __table_args__ = (UniqueConstraint("run_id", "product", "version", "date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("forecast_runs.id", ondelete="CASCADE"))
    product: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"))
    role: Mapped[ForecastRole] = mapped_column(state_enum(ForecastRole, name="role"))
    date: Mapped[date] = mapped_column(Date)
    lead_days: Mapped[int] = mapped_column(Integer)
    forecast: Mapped[float] = mapped_column(Float)
    p10: Mapped[float | None] = mapped_column(Float)
    p90: Mapped[float | None] = mapped_column(Float)
    baseline: Mapped[float | None] = mapped_column(Float)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
