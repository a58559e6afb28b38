"""Request dependencies: the settings and database of the app, and `Session`, the unit of
work of one request (commit when the endpoint returns normally, roll back when it raises,
always closed). Endpoints take `Session` and never commit themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.settings import Settings


def get_settings(connection: HTTPConnection) -> Settings:
    settings: Settings = connection.app.state.settings
    return settings


def get_database(connection: HTTPConnection) -> Database:
    database: Database = connection.app.state.database
    return database


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with unit_of_work(get_database(request).sessions) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
# scope="function": the commit runs when the endpoint returns, *before* the response is
# sent, so a client never sees a success whose commit then failed; an exception raised by
# the endpoint rolls back and then reaches the error handler.
Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
