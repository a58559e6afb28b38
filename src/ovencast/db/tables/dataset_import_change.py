from __future__ import annotations

from datetime import date

from sqlalchemy import Date, Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ovencast.datasets.history import RowChange, SeriesKind
from ovencast.db.base import Base, state_enum


class DatasetImportChange(Base):
    """One stored row an import added, changed or removed, with its value before
    (`previous`: None for an added row, or for a regressor's empty cell). Undoing the
    import puts every `previous` back and deletes every added row (datasets/service.py
    `restore_import`). Deleted with its import."""

    __tablename__ = "dataset_import_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(
        ForeignKey("dataset_imports.id", ondelete="CASCADE"), index=True)
    series: Mapped[SeriesKind] = mapped_column(state_enum(SeriesKind, name="series"))
    name: Mapped[str] = mapped_column(String(200))  # product, or regressor column
    source: Mapped[str | None] = mapped_column(String(20))  # a regressor column's source
    date: Mapped[date] = mapped_column(Date)
    change: Mapped[RowChange] = mapped_column(state_enum(RowChange, name="change"))
    previous: Mapped[float | None] = mapped_column(Float)
