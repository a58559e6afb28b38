"""What a worker process holds for its tasks: settings, database, event publisher and the
pool of child processes in which fits run (killable at the product time limit). The
pool starts its processes as the embedded shape does: forks of a preloaded fork server
(training/pool.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from pebble import ProcessExpired, ProcessPool

from ovencast.db.runtime import Database
from ovencast.db.urls import libpq_conninfo
from ovencast.events.progress import EventSink, ProductEvent
from ovencast.events.publish import EventPublisher
from ovencast.forecasting.families.prophet import quiet_prophet_import
from ovencast.observability import tracing
from ovencast.observability.metrics import FIT_DURATION
from ovencast.settings import Settings
from ovencast.training.plan import FitPlan, FitResult, PriorFit
from ovencast.training.pool import (
    EventPump,
    child_fit_args,
    fit_in_child,
    start_workers_early,
    worker_context,
)
from ovencast.training.task import ProductTask
from ovencast.training.worker import ProductTimedOut


@dataclass
class WorkerRuntime:
    settings: Settings
    database: Database
    publisher: EventPublisher
    pool: ProcessPool
    pump: EventPump
    # (job id, product) -> where that fit's events go (one fit per run at a time).
    sinks: dict[tuple[int, str], EventSink]

    @classmethod
    def start(cls, settings: Settings, *, preload: Sequence[str] = ()) -> WorkerRuntime:
        """Open the database, start the fork server (its imports overlap the worker's
        start-up) and the pool. `preload`: the entry point's module (training/pool.py)."""
        start_workers_early(preload)
        quiet_prophet_import()
        context = worker_context(preload)
        sinks: dict[tuple[int, str], EventSink] = {}

        def dispatch(event: ProductEvent) -> None:
            sink = sinks.get((event.job_id, event.product))
            if sink is not None:
                sink(event)

        pump = EventPump(context, dispatch)
        return cls(settings=settings, database=Database.open(settings),
                   publisher=EventPublisher(libpq_conninfo(settings.resolved_database_url)),
                   pool=ProcessPool(max_workers=settings.max_concurrent_training_jobs,
                                    context=context, **pump.pool_options()),
                   pump=pump, sinks=sinks)

    async def fit(self, task: ProductTask, plan: FitPlan, prior: PriorFit | None,
                  emit: EventSink) -> FitResult:
        """Fit in a child process; past MAX_TRAINING_TIME_MINUTES pebble kills it. The
        fit's span and duration are this process's (the child traces and counts nothing
        that anyone would see)."""
        key = (task.job_id, task.product)
        self.sinks[key] = emit
        started = time.monotonic()
        try:
            with tracing.span("fit", product=task.product, job_id=task.job_id) as span:
                # In a thread: pebble starts its processes on the first call, and a
                # start waits for the fork server's preload (seconds), which would
                # stall this loop and procrastinate's heartbeats with it (another worker
                # would then take the job as stalled and train the product again).
                future = await asyncio.to_thread(
                    self.pool.schedule, fit_in_child, args=child_fit_args(task, plan, prior),
                    timeout=self.settings.max_training_time_seconds)
                try:
                    result: FitResult = await asyncio.wrap_future(future)
                except FutureTimeout:
                    raise ProductTimedOut() from None
                except ProcessExpired as exc:
                    raise RuntimeError(
                        f"fit process died (exit code {exc.exitcode})") from None
                span.set_attribute("ovencast.family", result.best.family)
            FIT_DURATION.labels(family=result.best.family).observe(time.monotonic() - started)
            return result
        finally:
            self.sinks.pop(key, None)

    async def close(self) -> None:
        self.pool.stop()  # type: ignore[no-untyped-call]  # pebble has no type hints
        self.pool.join(timeout=10)
        self.pump.close()
        self.publisher.close()
        await self.database.close()
