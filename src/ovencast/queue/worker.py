"""`ovencast worker`: a procrastinate worker plus the recovery of stalled jobs and the
reaping of orphans.

A worker killed with SIGKILL stops sending heartbeats; its jobs stay `doing`. Every worker
periodically asks procrastinate for jobs whose worker has been silent for longer than
WORKER_STALLED_AFTER_SECONDS and puts them back in the queue (procrastinate's documented
stalled-job recipe), so another worker trains the product. The PostgreSQL advisory lock of
the dead worker went away with its connection.

A task that gave up (its retries of a database error spent) leaves its run or job open:
the same loop fails those with the reason (`jobs.service.reap_orphans`), so every job
ends.

procrastinate (3.10) stops its worker when a side task fails, and its LISTEN side task
fails when it cannot reconnect while the database is down. A database outage is not a
reason for a worker to exit: `_serve` starts procrastinate's worker again (after
WORKER_HEARTBEAT_SECONDS) until this process is asked to stop (SIGTERM/SIGINT:
procrastinate's graceful stop, the running products finish; a second signal aborts them).

With WORKER_METRICS_PORT set the worker serves /metrics and /health
(observability/worker_server.py); with OTEL_EXPORTER_OTLP_ENDPOINT set it traces each
task, continuing the trace of whoever queued it (observability/tracing.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator, Sequence
from typing import Any

from ovencast.db import migrate
from ovencast.db.session import unit_of_work
from ovencast.db.urls import require_postgresql
from ovencast.jobs import service as jobs_service
from ovencast.jobs.service import QUEUE
from ovencast.observability import tracing
from ovencast.observability.logs import get_logger
from ovencast.observability.metrics import FIT_POOL_PROCESSES, observe_db_pool
from ovencast.observability.worker_server import WorkerEndpoints
from ovencast.queue.app import make_app
from ovencast.queue.runtime import WorkerRuntime
from ovencast.settings import Settings
from ovencast.training import job_artifacts

log = get_logger(__name__)


async def run_worker(settings: Settings, *, name: str | None = None,
                     preload: Sequence[str] = (), install_signal_handlers: bool = True
                     ) -> None:
    """Serve the queue until stopped (SIGTERM/SIGINT, or cancelled). `preload`: the entry
    point's module, imported once by the fit pool's fork server (training/pool.py).
    `install_signal_handlers=False`: a worker inside another program (tests)."""
    require_postgresql(settings.resolved_database_url, "a worker")
    traced_here = not tracing.enabled() and tracing.configure_tracing(
        settings, component="worker")
    runtime = WorkerRuntime.start(settings, preload=preload)
    endpoints: WorkerEndpoints | None = None
    try:
        tracing.instrument_engine(runtime.database.engine)
        if settings.worker_metrics_port:
            endpoints = WorkerEndpoints(
                settings.worker_metrics_host, settings.worker_metrics_port,
                loop=asyncio.get_running_loop(), collect=lambda: _collect(runtime)).start()
        await migrate.check_schema(runtime.database.engine)
        app = make_app(settings)
        async with app.open_async():
            recovery = asyncio.create_task(_recover_stalled(app, runtime))
            try:
                log.info("worker.started", name=name,
                         concurrency=settings.max_concurrent_training_jobs)
                await _serve(app, dict(
                    queues=[QUEUE], name=name or "ovencast-worker",
                    concurrency=settings.max_concurrent_training_jobs,
                    additional_context={"runtime": runtime},
                    update_heartbeat_interval=settings.worker_heartbeat_seconds,
                    stalled_worker_timeout=settings.worker_stalled_after_seconds,
                    install_signal_handlers=False,
                    worker_middleware=[tracing.trace_job]),
                    restart_after=settings.worker_heartbeat_seconds,
                    handle_signals=install_signal_handlers)
            finally:
                recovery.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await recovery
    finally:
        if endpoints is not None:
            endpoints.stop()
        await runtime.close()
        if traced_here:
            tracing.shutdown_tracing()


class _Stop:
    """Asked to stop: the first SIGTERM/SIGINT stops procrastinate's worker gracefully
    (the running products finish), a second aborts them."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.current: asyncio.Task[None] | None = None

    def __call__(self) -> None:
        if self.event.is_set():
            log.warning("worker.aborting")
        self.event.set()
        if self.current is not None:
            self.current.cancel()  # procrastinate's graceful stop; a second cancel aborts

    @contextlib.contextmanager
    def on_signals(self, enabled: bool) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        numbers = (signal.SIGTERM, signal.SIGINT) if enabled else ()
        for number in numbers:
            loop.add_signal_handler(number, self)
        try:
            yield
        finally:
            for number in numbers:
                loop.remove_signal_handler(number)


async def _serve(app: Any, options: dict[str, Any], *, restart_after: float,
                 handle_signals: bool) -> None:
    """Run procrastinate's worker until a signal (or this coroutine's cancellation) stops
    it; when it stops on its own (a side task lost the database), start it again."""
    stop = _Stop()
    with stop.on_signals(handle_signals):
        while not stop.event.is_set():
            stop.current = asyncio.create_task(app.run_worker_async(**options))
            try:
                await asyncio.shield(stop.current)
            except asyncio.CancelledError:
                await _stopped(stop)
                return
            except Exception as exc:  # the database is still down: try again
                log.warning("worker.queue_unavailable", error=str(exc) or type(exc).__name__,
                            retry_in_s=restart_after)
            else:
                log.warning("worker.queue_stopped", restart_in_s=restart_after)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.event.wait(), restart_after)


async def _stopped(stop: _Stop) -> None:
    """After a cancellation: by a signal (procrastinate's worker is stopping), or from
    outside (stop it as a signal would, then go on being cancelled)."""
    signalled = stop.event.is_set()
    if not signalled and stop.current is not None:
        stop.current.cancel()
    if stop.current is not None:
        with contextlib.suppress(asyncio.CancelledError):
            await stop.current
    if not signalled:
        raise asyncio.CancelledError


def _collect(runtime: WorkerRuntime) -> None:
    """Gauges a worker sets at each scrape: its database pool and its fit pool."""
    observe_db_pool(runtime.database.engine.pool)
    FIT_POOL_PROCESSES.labels(state="size").set(runtime.settings.max_concurrent_training_jobs)
    FIT_POOL_PROCESSES.labels(state="busy").set(len(runtime.sinks))


async def _recover_stalled(app: object, runtime: WorkerRuntime) -> None:
    settings = runtime.settings
    manager = app.job_manager  # type: ignore[attr-defined]
    while True:
        await asyncio.sleep(settings.worker_heartbeat_seconds)
        try:
            async with unit_of_work(runtime.database.sessions) as session:
                closed = await jobs_service.reap_orphans(session)
            for job in closed:
                job_artifacts.retire(job, settings)
        except Exception as exc:  # recovery must never take the worker down
            log.error("worker.reaper_failed", error=str(exc))
        try:
            stalled = await manager.get_stalled_jobs(
                queue=QUEUE, seconds_since_heartbeat=settings.worker_stalled_after_seconds)
            for job in stalled:
                log.warning("worker.stalled_job_retried", job_id=job.id, task=job.task_name,
                            args=job.task_kwargs)
                await manager.retry_job(job)
        except Exception as exc:  # recovery must never take the worker down
            log.error("worker.stalled_recovery_failed", error=str(exc))
