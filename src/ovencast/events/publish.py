"""Publishing progress events (`events/progress.py`) with `pg_notify`, as JSON.

A notification is delivered only to listeners connected at that moment; a late client
reads the current state from the database first (the WebSocket endpoint in
`jobs/endpoints.py` sends it as a snapshot).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import psycopg
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.events import CHANNEL
from ovencast.observability.logs import get_logger

log = get_logger(__name__)

# PostgreSQL refuses payloads of 8000 bytes and more; events are far below.
MAX_PAYLOAD_BYTES = 7900


def encode(event: BaseModel) -> str:
    """The event as compact JSON; an oversized one (a long reason) keeps its identifying
    fields and a reason cut to fit."""
    fields = event.model_dump(mode="json", exclude_none=True)
    payload = json.dumps(fields, separators=(",", ":"))
    if len(payload.encode()) > MAX_PAYLOAD_BYTES:
        slim = {k: v for k, v in fields.items() if k in ("type", "job_id", "product", "event",
                                                          "status", "reason", "error")}
        for key in ("reason", "error"):
            if isinstance(slim.get(key), str):
                slim[key] = slim[key][:MAX_PAYLOAD_BYTES // 4]
        payload = json.dumps(slim, separators=(",", ":"))
    return payload


async def notify_in_transaction(session: AsyncSession, event: BaseModel) -> None:
    """NOTIFY inside the caller's transaction: delivered only if it commits."""
    await session.execute(text("SELECT pg_notify(:channel, :payload)"),
                          {"channel": CHANNEL, "payload": encode(event)})


class EventPublisher:
    """Thread-safe publisher for code that is not in a transaction (worker progress,
    called from a pump thread). One autocommit psycopg connection, opened lazily."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._lock = threading.Lock()
        self._connection: psycopg.Connection[Any] | None = None

    def publish(self, event: BaseModel) -> None:
        with self._lock:
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = psycopg.connect(self._conninfo, autocommit=True)
                self._connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, encode(event)))
            except psycopg.Error as exc:  # progress is best-effort; training goes on
                log.warning("events.publish_failed", error=str(exc))
                self._connection = None

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
