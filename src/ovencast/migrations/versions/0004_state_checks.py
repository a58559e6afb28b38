"""CHECK constraints on the job and run states

The states are `StrEnum`s (ovencast.jobs.states) shared by the code, the API and the
database; a value outside them is refused by the database itself. A run once documented
as `skipped` was never set, so no stored row breaks the constraints.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The states as they are at this revision, frozen here (a later revision that changes
# ovencast.jobs.states replaces these constraints explicitly).
JOB_STATES = "queued running succeeded partial failed cancelled".split()  # noqa: SIM905
RUN_STATES = "pending running trained failed timed_out cancelled".split()  # noqa: SIM905


def _condition(states: Sequence[str]) -> str:
    return "status IN (" + ", ".join(f"'{state}'" for state in states) + ")"


def upgrade() -> None:
    with op.batch_alter_table("training_jobs") as batch:
        batch.create_check_constraint(op.f("ck_training_jobs_status"), _condition(JOB_STATES))
    with op.batch_alter_table("training_runs") as batch:
        batch.create_check_constraint(op.f("ck_training_runs_status"), _condition(RUN_STATES))


def downgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_constraint(op.f("ck_training_runs_status"), type_="check")
    with op.batch_alter_table("training_jobs") as batch:
        batch.drop_constraint(op.f("ck_training_jobs_status"), type_="check")
