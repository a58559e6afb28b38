from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ovencast.db.base import Base, UTCDateTime, state_enum, utcnow
from ovencast.keys.roles import Role


class ApiKey(Base):
    """An API key of the service shape: scoped to one tenant, or to none (a global key,
    which reaches every tenant), with a `Role`. Only the SHA-256 of the key's secret is
    stored (keys/tokens.py says why a fast hash is right), plus its first characters for
    telling keys apart in listings."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(state_enum(Role, name="role"))
    name: Mapped[str | None] = mapped_column(String(100))
    secret_prefix: Mapped[str] = mapped_column(String(16))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
