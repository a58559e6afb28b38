"""indexes for the service shape's per-heartbeat queries

Every worker's reaper (`jobs.service.reap_orphans`, each WORKER_HEARTBEAT_SECONDS) looks
for open runs whose queue task has ended, and every finishing product's fan-in asks
whether its job has an open run (`jobs.repository.has_open_runs`). Without these
indexes the reaper joined every open run to every queue job through `args ->> 'run_id'`:
at 10,000 products one pass took longer than the heartbeat (measured: over 11 s), so
one PostgreSQL backend per worker ran it without pause; and both tables only grow.

- `ix_training_runs_open`: the open runs (pending, running), by job: the reaper's and
  the fan-in's driving rows, whatever the number of ended runs;
- `procrastinate_jobs_ovencast_run_id_idx`, `..._job_id_idx` (PostgreSQL only, on the
  queue's table): a run's (a job's) queue tasks by task name and the id in their
  arguments. Named with the queue's prefix: the library's table, not our models.

The queries write the status values and the argument's name as literals
(`jobs.repository`): a prepared statement's generic plan cannot use a partial or an
expression index for values it only sees as parameters. docs/decisions/025-indexed-reaper.md.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("status IN ('pending', 'running')")
QUEUE_INDEXES = {"procrastinate_jobs_ovencast_run_id_idx": "run_id",
                 "procrastinate_jobs_ovencast_job_id_idx": "job_id"}


def upgrade() -> None:
    op.create_index("ix_training_runs_open", "training_runs", ["job_id"],
                    postgresql_where=OPEN, sqlite_where=OPEN)
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite (embedded shape) has no queue
    for name, argument in QUEUE_INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON procrastinate_jobs "
                   f"(task_name, ((args ->> '{argument}')::integer))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in QUEUE_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
    op.drop_index("ix_training_runs_open", table_name="training_runs")
