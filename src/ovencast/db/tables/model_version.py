from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ovencast.db.base import Base, UTCDateTime, utcnow
from ovencast.models.states import Standing


class ModelVersion(Base):
    """One trained model of one product: what it is, how good it was on the holdout, where
    its artifact lies and the SHA-256 the artifact must match when loaded.

    At most one version per (tenant, product) is active (partial unique index); an
    inactive one may be a challenger (forecast in shadow and compared with the active
    one), never both."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "product", "version"),
        Index(
            "uq_model_versions_one_active",
            "tenant_id",
            "product",
            unique=True,
            sqlite_where=text("is_active"),
            postgresql_where=text("is_active"),
        ),
        CheckConstraint("NOT (is_active AND is_challenger)", name="not_active_challenger"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    product: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    family: Mapped[str] = mapped_column(String(50))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    baseline_metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    regressors: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The artifact's key relative to the model store (MODEL_STORAGE_PATH), so that a
    # store or an embedded home moved elsewhere still finds it.
    artifact_key: Mapped[str] = mapped_column(String(1000))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    data_start: Mapped[date] = mapped_column(Date)
    data_end: Mapped[date] = mapped_column(Date)
    library_versions: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    is_challenger: Mapped[bool] = mapped_column(Boolean, default=False,
                                                server_default=text("false"))
    # How the promotion gate decided (training/promotion.py): verdict, policy, the
    # comparison with the version that was active on the same windows of the new data.
    promotion: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    training_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def standing(self) -> Standing:
        if self.is_active:
            return Standing.ACTIVE
        return Standing.CHALLENGER if self.is_challenger else Standing.RETIRED

    @property
    def holdout_days(self) -> int | None:
        """The calendar days the holdout metrics score: 28, fewer for a history of 30 to
        41 days (`HoldoutSplit.fitting`); None for a version trained before they were
        recorded (`training/fitting.fit_product`)."""
        days = (self.details or {}).get("holdout", {}).get("days")
        return int(days) if days is not None else None
