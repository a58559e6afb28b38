"""LISTEN for one job's events (used by the API's WebSocket endpoint)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from ovencast.events import CHANNEL


@asynccontextmanager
async def job_events(conninfo: str, job_id: int) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
    """Subscribe first, then read the snapshot, then iterate: no event is lost between.

        async with job_events(dsn, job_id) as events:
            snapshot = ...
            async for event in events: ...

    The iterator ends after the job's end event.
    """
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        event = json.loads(payload)
        if event.get("job_id") == job_id:
            queue.put_nowait(event)

    connection = await asyncpg.connect(conninfo)
    await connection.add_listener(CHANNEL, on_notify)

    async def iterate() -> AsyncIterator[dict[str, Any]]:
        while True:
            event = await queue.get()
            yield event
            if event.get("type") == "job":
                return

    try:
        yield iterate()
    finally:
        try:
            await connection.remove_listener(CHANNEL, on_notify)
        finally:
            await connection.close()
