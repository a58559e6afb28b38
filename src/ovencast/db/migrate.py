"""Alembic, driven from code: `ovencast db upgrade` and the start-up schema check.

The current revision is read from the `alembic_version` table of the live database and
compared with the head of the migration scripts shipped in the package; nothing here
hard-codes a revision.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ovencast.errors import SchemaNotReady

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic's ini interpolation treats % specially.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    if head is None:
        raise RuntimeError("no migration scripts found")
    return head


def upgrade(url: str, revision: str = "head") -> None:
    """Run in a thread outside any event loop: env.py runs its own loop."""
    command.upgrade(alembic_config(url), revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


async def check_schema(engine: AsyncEngine) -> str:
    """Return the current revision, or raise `SchemaNotReady` saying what to do."""
    current = await current_revision(engine)
    head = head_revision()
    where = engine.url.render_as_string(hide_password=True)
    if current is None:
        raise SchemaNotReady(
            f"database {where} has no ovencast schema (no alembic_version); "
            "initialise it with `ovencast db upgrade`"
        )
    if current != head:
        script = ScriptDirectory.from_config(alembic_config("sqlite://"))
        known = {rev.revision for rev in script.walk_revisions()}
        if current not in known:
            raise SchemaNotReady(
                f"database {where} is at revision {current}, which this version of "
                f"ovencast does not know (expected {head}); is it newer than the code?"
            )
        raise SchemaNotReady(
            f"database {where} is at revision {current}, behind the expected head {head}; "
            "run `ovencast db upgrade`"
        )
    return current
