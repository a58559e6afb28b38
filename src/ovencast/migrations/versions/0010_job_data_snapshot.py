"""job data snapshot: a job trains on the data it validated

`training_jobs.data_snapshot`: the tenant's data version (newest import) the job was
prepared from and, in the service shape, where each product's validated history was
stored for the workers (`training/snapshot.py`). `training_runs.data_snapshot`: that
product's stored history (key and SHA-256). Jobs prepared before this revision have
NULL: their runs are refused with the reason (resubmit them).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("training_jobs") as batch:
        batch.add_column(sa.Column("data_snapshot", sa.JSON(), nullable=True))
    with op.batch_alter_table("training_runs") as batch:
        batch.add_column(sa.Column("data_snapshot", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_column("data_snapshot")
    with op.batch_alter_table("training_jobs") as batch:
        batch.drop_column("data_snapshot")
