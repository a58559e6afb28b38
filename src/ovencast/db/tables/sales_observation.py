from __future__ import annotations

from datetime import date

from sqlalchemy import Date, Float, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ovencast.db.base import Base


class SalesObservation(Base):
    """Quantity of one product sold on one local calendar day. A missing row is a gap,
    never a zero."""

    __tablename__ = "sales_observations"
    __table_args__ = (UniqueConstraint("tenant_id", "product", "date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    product: Mapped[str] = mapped_column(String(200))
    date: Mapped[date] = mapped_column(Date)
    quantity: Mapped[float] = mapped_column(Float)
