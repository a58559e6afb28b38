"""training_jobs.global_models: the tenant-level models a job trained

A job whose model choice uses a global model (`auto`, `lightgbm`) trains it once for the
tenant before the per-product tasks (`forecasting.global_stage`) and stores it as one
artifact; the job row records where (uri, sha256) and what it cost, so that the service
shape's product tasks, on any worker, load the same boosters.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("training_jobs", sa.Column("global_models", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_jobs") as batch:
        batch.drop_column("global_models")
