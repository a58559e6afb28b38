"""The training queue's depth, read from PostgreSQL at each scrape of the API's /metrics:
entries waiting (todo) and running (doing) per task. One grouped count over
procrastinate's partial index of todo/doing jobs, with a timeout, so that a scrape stays
cheap and never hangs on a slow database. The embedded shape (SQLite) has no queue."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ovencast.observability.logs import get_logger
from ovencast.observability.metrics import QUEUE_JOBS

log = get_logger(__name__)

QUEUE_STATUSES = ("todo", "doing")
SCRAPE_TIMEOUT_S = 2.0
_COUNT = text("""
    SELECT task_name, status::text, count(*) FROM procrastinate_jobs
    WHERE status IN ('todo', 'doing') GROUP BY task_name, status
""")


async def observe_queue_depth(engine: AsyncEngine, *, tasks: Iterable[str]) -> None:
    """Set QUEUE_JOBS from the database: `tasks` always (0 when none waits), any other
    task while it has entries. On a failure the gauge keeps its last values (logged)."""
    if engine.dialect.name != "postgresql":
        return
    try:
        async with asyncio.timeout(SCRAPE_TIMEOUT_S), engine.connect() as connection:
            rows = (await connection.execute(_COUNT)).all()
    except Exception as exc:  # a scrape must answer; the gauge is just stale then
        log.warning("metrics.queue_depth_failed", error=f"{type(exc).__name__}: {exc}")
        return
    counts = {(str(task), str(status)): int(n) for task, status, n in rows}
    QUEUE_JOBS.clear()
    for task in {*tasks, *(task for task, _ in counts)}:
        for status in QUEUE_STATUSES:
            QUEUE_JOBS.labels(task=task, status=status).set(counts.get((task, status), 0))
