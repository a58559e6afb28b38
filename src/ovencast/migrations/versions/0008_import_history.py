"""import history: an upload changes only the rows it contains, and what it changed is kept

Imports no longer delete the whole date span of each product they contain. An import
merges its rows (mode `merge`, the default) or replaces the history of its products
(`replace`); every stored row it adds, changes or removes is recorded in
`dataset_import_changes` with the value before, so that an import can be undone. Imports
stored before this revision keep `mode` NULL and counts 0: they have no history.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The values as they are at this revision, frozen here (ovencast.datasets.history).
MODES = ("merge", "replace")
SERIES = ("sales", "regressor")
CHANGES = ("added", "changed", "removed")
COUNTS = ("sales_added", "sales_changed", "sales_removed",
          "regressors_added", "regressors_changed", "regressors_removed")


def _condition(column: str, values: Sequence[str]) -> str:
    return f"{column} IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def upgrade() -> None:
    with op.batch_alter_table("dataset_imports") as batch:
        batch.add_column(sa.Column("mode", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("restores_import_id", sa.Integer(), nullable=True))
        for name in COUNTS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=False,
                                       server_default="0"))
        batch.create_check_constraint(op.f("ck_dataset_imports_mode"),
                                      _condition("mode", MODES))
        batch.create_foreign_key(
            op.f("fk_dataset_imports_restores_import_id_dataset_imports"), "dataset_imports",
            ["restores_import_id"], ["id"], ondelete="SET NULL")
    op.create_table(
        "dataset_import_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("series", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=True),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("change", sa.String(length=20), nullable=False),
        sa.Column("previous", sa.Float(), nullable=True),
        sa.CheckConstraint(_condition("series", SERIES),
                           name=op.f("ck_dataset_import_changes_series")),
        sa.CheckConstraint(_condition("change", CHANGES),
                           name=op.f("ck_dataset_import_changes_change")),
        sa.ForeignKeyConstraint(["import_id"], ["dataset_imports.id"],
                                name=op.f("fk_dataset_import_changes_import_id_dataset_imports"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_import_changes")),
    )
    op.create_index(op.f("ix_dataset_import_changes_import_id"), "dataset_import_changes",
                    ["import_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_dataset_import_changes_import_id"),
                  table_name="dataset_import_changes")
    op.drop_table("dataset_import_changes")
    with op.batch_alter_table("dataset_imports") as batch:
        batch.drop_constraint(op.f("fk_dataset_imports_restores_import_id_dataset_imports"),
                              type_="foreignkey")
        batch.drop_constraint(op.f("ck_dataset_imports_mode"), type_="check")
        for name in reversed(COUNTS):
            batch.drop_column(name)
        batch.drop_column("restores_import_id")
        batch.drop_column("mode")
