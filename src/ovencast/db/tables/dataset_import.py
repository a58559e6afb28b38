from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ovencast.datasets.history import ImportMode
from ovencast.db.base import Base, UTCDateTime, state_enum, utcnow


class DatasetImport(Base):
    """Audit record of one successful import (failed imports store nothing). The rows it
    added, changed and removed, with the values before, are its `dataset_import_changes`
    (datasets/history.py). A restore is an import too: `restores_import_id` says which
    import it undid. `mode` is None for imports stored before the import history."""

    __tablename__ = "dataset_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(500))
    files: Mapped[dict[str, Any]] = mapped_column(JSON)  # file -> {rows, columns}
    sales_rows: Mapped[int] = mapped_column(Integer)
    first_date: Mapped[date] = mapped_column(Date)
    last_date: Mapped[date] = mapped_column(Date)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    mode: Mapped[ImportMode | None] = mapped_column(state_enum(ImportMode, name="mode"))
    restores_import_id: Mapped[int | None] = mapped_column(
        ForeignKey("dataset_imports.id", ondelete="SET NULL"))
    sales_added: Mapped[int] = mapped_column(Integer, default=0)
    sales_changed: Mapped[int] = mapped_column(Integer, default=0)
    sales_removed: Mapped[int] = mapped_column(Integer, default=0)
    regressors_added: Mapped[int] = mapped_column(Integer, default=0)
    regressors_changed: Mapped[int] = mapped_column(Integer, default=0)
    regressors_removed: Mapped[int] = mapped_column(Integer, default=0)
