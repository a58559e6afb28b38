"""The database a process talks to, opened once per command or process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ovencast.db import migrate
from ovencast.db.session import create_engine, is_sqlite, session_factory
from ovencast.settings import Settings

T = TypeVar("T")


@dataclass
class Database:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    @classmethod
    def open(cls, settings: Settings) -> Database:
        engine = create_engine(settings)
        return cls(settings=settings, engine=engine, sessions=session_factory(engine))

    async def ready(self) -> str:
        """Make sure the schema is current. The embedded shape (SQLite) migrates itself:
        a newcomer runs no separate set-up step. A server database (PostgreSQL) is never
        migrated implicitly: a behind or empty schema raises `SchemaNotReady`, which says
        to run `ovencast db upgrade`."""
        url = self.settings.resolved_database_url
        if is_sqlite(url):
            current = await migrate.current_revision(self.engine)
            if current != migrate.head_revision():
                await asyncio.to_thread(migrate.upgrade, url)
        return await migrate.check_schema(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()


@asynccontextmanager
async def connected(settings: Settings) -> AsyncIterator[Database]:
    """The database of `settings`, schema checked (`Database.ready`), closed on exit."""
    database = Database.open(settings)
    try:
        await database.ready()
        yield database
    finally:
        await database.close()


def run_with_database(settings: Settings, body: Callable[[Database], Awaitable[T]]) -> T:
    """Run `body(database)` in a fresh event loop: what a command does once per step."""

    async def main() -> T:
        async with connected(settings) as database:
            return await body(database)

    return asyncio.run(main())
