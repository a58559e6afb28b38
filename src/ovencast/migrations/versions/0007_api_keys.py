"""api keys: hashed, scoped to one tenant (or none: global), with a role

Only the SHA-256 of a key's secret is stored (ovencast.keys.tokens says why a fast hash
is right for 256-bit random secrets), plus its first characters for listings. A key of a
deleted tenant goes with it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ovencast.db.base

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The roles as they are at this revision, frozen here (ovencast.keys.roles.Role).
ROLES = ("read", "train", "admin")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("secret_prefix", sa.String(length=16), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", ovencast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", ovencast.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", ovencast.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN (" + ", ".join(f"'{role}'" for role in ROLES) + ")",
                           name=op.f("ck_api_keys_role")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_api_keys_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    with op.batch_alter_table("api_keys") as batch:
        batch.create_index(batch.f("ix_api_keys_tenant_id"), ["tenant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index(batch.f("ix_api_keys_tenant_id"))
    op.drop_table("api_keys")
