"""LISTEN for one job's events (used by the API's WebSocket endpoint)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from pydantic import ValidationError

from ovencast.events import CHANNEL
from ovencast.events.progress import EVENT, Event, JobEvent
from ovencast.observability.logs import get_logger

log = get_logger(__name__)


@asynccontextmanager
async def job_events(conninfo: str, job_id: int) -> AsyncIterator[AsyncIterator[Event]]:
    """Subscribe first, then read the snapshot, then iterate: no event is lost between.

        async with job_events(dsn, job_id) as events:
            snapshot = ...
            async for event in events: ...

    The iterator ends after the job's end event.
    """
    queue: asyncio.Queue[Event] = asyncio.Queue()

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = EVENT.validate_json(payload)
        except ValidationError as exc:  # not ours, or from a newer version: skipped
            log.warning("events.unreadable", error=str(exc)[:200])
            return
        if event.job_id == job_id:
            queue.put_nowait(event)

    connection = await asyncpg.connect(conninfo)
    await connection.add_listener(CHANNEL, on_notify)

    async def iterate() -> AsyncIterator[Event]:
        while True:
            event = await queue.get()
            yield event
            if isinstance(event, JobEvent):
                return

    try:
        yield iterate()
    finally:
        try:
            await connection.remove_listener(CHANNEL, on_notify)
        finally:
            await connection.close()
