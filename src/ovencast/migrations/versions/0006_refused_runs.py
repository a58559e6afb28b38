"""a run the data rules refused is `refused`, not `failed`

`ovencast train` exits 0 when every product that passed the data rules trained; that
needs refused products told apart from products whose training failed. Runs stored
before this revision keep `failed` (their reason still says why).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here, as in 0004.
BEFORE = "pending running trained failed timed_out cancelled".split()  # noqa: SIM905
AFTER = [*BEFORE, "refused"]


def _condition(states: Sequence[str]) -> str:
    return "status IN (" + ", ".join(f"'{state}'" for state in states) + ")"


def _replace(states: Sequence[str]) -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_constraint(op.f("ck_training_runs_status"), type_="check")
        batch.create_check_constraint(op.f("ck_training_runs_status"), _condition(states))


def upgrade() -> None:
    _replace(AFTER)


def downgrade() -> None:
    op.execute("UPDATE training_runs SET status = 'failed' WHERE status = 'refused'")
    _replace(BEFORE)
