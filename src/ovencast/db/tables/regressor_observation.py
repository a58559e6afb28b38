from __future__ import annotations

from datetime import date

from sqlalchemy import Date, Float, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ovencast.db.base import Base


class RegressorObservation(Base):
    """One value of one regressor column (weather, traffic or calendar) on one day, in
    long format so that a new column needs no migration. `value` is NULL where the source
    file had an empty cell."""

    __tablename__ = "regressor_observations"
    __table_args__ = (UniqueConstraint("tenant_id", "name", "date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(20))  # weather | traffic | calendar
    name: Mapped[str] = mapped_column(String(100))
    date: Mapped[date] = mapped_column(Date)
    value: Mapped[float | None] = mapped_column(Float)
