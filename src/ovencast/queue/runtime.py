"""What a worker process holds for its tasks: settings, database, event publisher and the
pool of child processes in which fits run (killable at the product time limit)."""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from pebble import ProcessExpired, ProcessPool

from ovencast.db.runtime import Database
from ovencast.db.urls import libpq_conninfo
from ovencast.events.publish import EventPublisher
from ovencast.settings import Settings
from ovencast.training.fitting import FitPlan, FitResult, PriorFit, fit_product
from ovencast.training.task import ProductTask
from ovencast.training.worker import EventSink, ProductTimedOut


def _fit_in_child(history: Any, plan: FitPlan, prior: PriorFit | None, events: Any,
                  product: str) -> FitResult:
    def emit(event: str, fields: dict[str, Any]) -> None:
        events.put((product, event, fields))

    return fit_product(history, plan, prior=prior, emit=emit)


@dataclass
class WorkerRuntime:
    settings: Settings
    database: Database
    publisher: EventPublisher
    pool: ProcessPool
    _manager: Any = None
    _sinks: dict[str, EventSink] = field(default_factory=dict)
    _events: Any = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _pump: threading.Thread | None = None

    @classmethod
    def start(cls, settings: Settings) -> WorkerRuntime:
        context = multiprocessing.get_context("spawn")
        runtime = cls(settings=settings, database=Database.open(settings),
                      publisher=EventPublisher(libpq_conninfo(settings.resolved_database_url)),
                      pool=ProcessPool(max_workers=settings.max_concurrent_training_jobs,
                                       context=context))
        runtime._manager = context.Manager()
        runtime._events = runtime._manager.Queue()
        runtime._pump = threading.Thread(target=runtime._pump_events, daemon=True)
        runtime._pump.start()
        return runtime

    def _pump_events(self) -> None:
        while not self._stop.is_set():
            try:
                product, event, fields = self._events.get(timeout=0.2)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return
            sink = self._sinks.get(product)
            if sink is not None:
                sink(event, fields)

    async def fit(self, task: ProductTask, plan: FitPlan, prior: PriorFit | None,
                  emit: EventSink) -> FitResult:
        """Fit in a child process; past MAX_TRAINING_TIME_MINUTES pebble kills it."""
        key = f"{task.run_id}:{task.product}"
        self._sinks[key] = emit
        try:
            future = self.pool.schedule(
                _fit_in_child, args=(task.history, plan, prior, self._events, key),
                timeout=self.settings.max_training_time_seconds)
            try:
                result: FitResult = await asyncio.wrap_future(future)
            except FutureTimeout:
                raise ProductTimedOut() from None
            except ProcessExpired as exc:
                raise RuntimeError(f"fit process died (exit code {exc.exitcode})") from None
            return result
        finally:
            self._sinks.pop(key, None)

    async def close(self) -> None:
        self._stop.set()
        self.pool.stop()
        self.pool.join(timeout=10)
        if self._pump is not None:
            self._pump.join(timeout=2)
        if self._manager is not None:
            self._manager.shutdown()
        self.publisher.close()
        await self.database.close()
