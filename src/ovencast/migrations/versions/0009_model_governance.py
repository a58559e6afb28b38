"""model governance: challengers, the promotion gate's record, forecast runs, schedules

A model version may be a challenger (never while active); its `promotion` records how the
gate decided. A training job says what becomes of its new versions (`activation`; jobs
stored before this revision had every version activated: `always`). Forecasts can be
saved (`forecast_runs` with their `forecast_rows`, champion and shadow challengers) and
are scored against the sales that arrive later. A tenant may have a schedule.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ovencast.db.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The values as they are at this revision, frozen here (ovencast.models.states).
ACTIVATIONS = ("if-better", "always", "never")
TRIGGERS = ("cli", "api", "schedule")
ROLES = ("champion", "challenger")


def _condition(column: str, values: Sequence[str]) -> str:
    return f"{column} IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("is_challenger", sa.Boolean(), nullable=False,
                                   server_default=sa.text("false")))
        batch.add_column(sa.Column("promotion", sa.JSON(), nullable=True))
        batch.create_check_constraint(op.f("ck_model_versions_not_active_challenger"),
                                      "NOT (is_active AND is_challenger)")
    with op.batch_alter_table("training_jobs") as batch:
        # Jobs before this revision activated every version they trained.
        batch.add_column(sa.Column("activation", sa.String(length=20), nullable=False,
                                   server_default="always"))
        batch.create_check_constraint(op.f("ck_training_jobs_activation"),
                                      _condition("activation", ACTIVATIONS))
    with op.batch_alter_table("training_jobs") as batch:
        batch.alter_column("activation", server_default="if-better")
    op.create_table(
        "forecast_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("origin", sa.Date(), nullable=True),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("products", sa.JSON(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("notes", sa.JSON(), nullable=False),
        sa.Column("training_job_id", sa.Integer(), nullable=True),
        sa.Column("created_at", ovencast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_condition("trigger", TRIGGERS),
                           name=op.f("ck_forecast_runs_trigger")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_forecast_runs_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["training_job_id"], ["training_jobs.id"],
                                name=op.f("fk_forecast_runs_training_job_id_training_jobs"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forecast_runs")),
    )
    op.create_index("ix_forecast_runs_tenant_created", "forecast_runs",
                    ["tenant_id", "created_at"], unique=False)
    op.create_table(
        "forecast_rows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("product", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("lead_days", sa.Integer(), nullable=False),
        sa.Column("forecast", sa.Float(), nullable=False),
        sa.Column("p10", sa.Float(), nullable=True),
        sa.Column("p90", sa.Float(), nullable=True),
        sa.Column("baseline", sa.Float(), nullable=True),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.CheckConstraint(_condition("role", ROLES), name=op.f("ck_forecast_rows_role")),
        sa.ForeignKeyConstraint(["run_id"], ["forecast_runs.id"],
                                name=op.f("fk_forecast_rows_run_id_forecast_runs"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"],
                                name=op.f("fk_forecast_rows_model_version_id_model_versions"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forecast_rows")),
        sa.UniqueConstraint("run_id", "product", "version", "date",
                            name=op.f("uq_forecast_rows_run_id_product_version_date")),
    )
    op.create_table(
        "tenant_schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("cron", sa.String(length=100), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("models", sa.JSON(), nullable=True),
        sa.Column("activation", sa.String(length=20), nullable=False),
        sa.Column("created_at", ovencast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", ovencast.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_due_at", ovencast.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_job_id", sa.Integer(), nullable=True),
        sa.Column("last_run_id", sa.Integer(), nullable=True),
        sa.Column("last_finished_at", ovencast.db.base.UTCDateTime(timezone=True),
                  nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint(_condition("activation", ACTIVATIONS),
                           name=op.f("ck_tenant_schedules_activation")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_tenant_schedules_tenant_id_tenants"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["last_job_id"], ["training_jobs.id"],
                                name=op.f("fk_tenant_schedules_last_job_id_training_jobs"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["last_run_id"], ["forecast_runs.id"],
                                name=op.f("fk_tenant_schedules_last_run_id_forecast_runs"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_schedules")),
        sa.UniqueConstraint("tenant_id", name=op.f("uq_tenant_schedules_tenant_id")),
    )


def downgrade() -> None:
    op.drop_table("tenant_schedules")
    op.drop_table("forecast_rows")
    op.drop_index("ix_forecast_runs_tenant_created", table_name="forecast_runs")
    op.drop_table("forecast_runs")
    with op.batch_alter_table("training_jobs") as batch:
        batch.drop_constraint(op.f("ck_training_jobs_activation"), type_="check")
        batch.drop_column("activation")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_constraint(op.f("ck_model_versions_not_active_challenger"),
                              type_="check")
        batch.drop_column("promotion")
        batch.drop_column("is_challenger")
