"""procrastinate job-queue schema (service shape, PostgreSQL only)

The queue's tables, types and functions are those shipped by the pinned procrastinate
release (`procrastinate.schema.SchemaManager.get_schema()`), installed here so that one
`ovencast db upgrade` prepares the whole database. Upgrading procrastinate across a schema
change needs a new revision that applies its migration files. SQLite (embedded shape) has
no queue: nothing to do there.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""
from collections.abc import Sequence

from alembic import op
from sqlalchemy.util import await_only

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _execute_script(sql: str) -> None:
    # The schema is a multi-statement script with plpgsql bodies: run it through the
    # driver's simple-query protocol (asyncpg's execute without arguments), which
    # SQLAlchemy's prepared-statement path would refuse.
    driver = op.get_bind().connection.driver_connection
    await_only(driver.execute(sql))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    from procrastinate.schema import SchemaManager

    _execute_script(SchemaManager.get_schema())


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _execute_script("""
        DROP TABLE IF EXISTS procrastinate_periodic_defers, procrastinate_events,
            procrastinate_jobs, procrastinate_workers, procrastinate_version CASCADE;
        DO $$
        DECLARE fn record;
        BEGIN
            FOR fn IN SELECT p.oid::regprocedure AS signature FROM pg_proc p
                      JOIN pg_namespace n ON n.oid = p.pronamespace
                      WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate%'
            LOOP
                EXECUTE 'DROP FUNCTION ' || fn.signature || ' CASCADE';
            END LOOP;
        END $$;
        DROP TYPE IF EXISTS procrastinate_job_to_defer_v1, procrastinate_job_event_type,
            procrastinate_job_status CASCADE;
    """)
