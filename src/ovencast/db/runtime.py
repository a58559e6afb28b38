"""The database a process talks to, opened once per command or process."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ovencast.db import migrate
from ovencast.db.session import create_engine, is_sqlite, session_factory
from ovencast.settings import Settings


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
