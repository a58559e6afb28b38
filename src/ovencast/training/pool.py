"""The process pool both shapes fit products in, and the pump that carries the pool
processes' progress events back to this process.

Workers are forks of a fork server that has imported the modelling stack once
(`PRELOAD`, plus the caller's entry-point module), not spawned interpreters that import it
each: docs/decisions/005-worker-start-up.md. The fork server is single-threaded, so
forking it is safe where forking this process (threads: the event pump, SQLite's,
LightGBM's) is not. Consequence: workers see the environment of the moment the fork
server started; everything a task needs travels in its arguments (settings included).
Each product gets at most `MAX_TRAINING_TIME_MINUTES`; past that pebble kills its worker
process (a hung fit cannot be stopped any other way).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from typing import Any

import pandas as pd
from pebble import ProcessExpired, ProcessPool

from ovencast.events.progress import EventSink, run_ended
from ovencast.jobs.states import RunStatus
from ovencast.observability.logs import get_logger
from ovencast.settings import Settings
from ovencast.training import channel
from ovencast.training.fitting import fit_product
from ovencast.training.plan import FitPlan, FitResult, PriorFit
from ovencast.training.process_state import stored_global_fits
from ovencast.training.task import ProductOutcome, ProductTask, time_limit_reason
from ovencast.training.worker import run_product_task

log = get_logger(__name__)

PRELOAD = ("ovencast.training.worker", "ovencast.training.pool", "statsforecast.models",
           "lightgbm", "ovencast.forecasting.families.prophet_preload")
"""What the fork server imports before it forks a worker (about 4 s of imports: pandas,
SQLAlchemy, statsforecast with statsmodels and scipy, LightGBM, and Prophet with
matplotlib, which `auto` fits for every regular product: decision 013)."""


def worker_context(preload: Sequence[str] = ()) -> Any:
    """The multiprocessing context of the pool: `forkserver`, with `PRELOAD` and
    `preload` imported once in the fork server. `preload`: the entry point's module
    (`ovencast.cli.main` for the `ovencast` command), which every process the pool starts
    re-runs as `__mp_main__`; preloaded, the re-run finds it imported. The preload list
    takes effect when the fork server starts (the first call in a process)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(dict.fromkeys([*PRELOAD, *preload])))
    return context


def start_workers_early(preload: Sequence[str] = ()) -> None:
    """Start the fork server now (it imports its preload in the background), so that its
    imports overlap the job's data loading and tenant stage instead of delaying the first
    product. Idempotent; the server lives as long as this process."""
    worker_context(preload)
    multiprocessing.forkserver.ensure_running()


def stop_workers() -> None:
    """Stop the fork server, so that the next job starts one afresh, as a new `ovencast
    train` process would (the benchmarks time every run from cold). The standard library
    has no public call for it; `_stop` is what its own tests use."""
    multiprocessing.forkserver._forkserver._stop()  # type: ignore[attr-defined]


class EventPump:
    """Carries progress events from pool processes to `on_event` in this process: a
    queue that each pool process gets when it starts (`pool_options`, training/channel.py)
    read by a background thread."""

    def __init__(self, context: Any, on_event: EventSink | None) -> None:
        self._on_event = on_event
        self.queue: Any = context.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="ovencast-event-pump",
                                        daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while not self._stop.is_set():
            try:
                event = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return
            if self._on_event is not None:
                try:
                    self._on_event(event)
                except Exception as exc:  # a broken display must not stop the pump
                    log.warning("training.events.dropped", error=str(exc))

    def pool_options(self) -> dict[str, Any]:
        """The `ProcessPool` arguments that give each pool process this pump's queue."""
        return {"initializer": channel.install, "initargs": (self.queue,)}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.queue.close()
        self.queue.join_thread()


def fit_in_child(history: pd.DataFrame, plan: FitPlan, prior: PriorFit | None,
                 global_fits_key: tuple[str, str] | None = None,
                 settings: Settings | None = None) -> FitResult:
    """A fit in a pool process, its progress events on the process's channel: what the
    service shape's worker runs per product. With `global_fits_key` the plan came without
    the job's global models: this process loads them from the store once
    (`process_state.stored_global_fits`) for every product of the job it fits."""
    if global_fits_key is not None and settings is not None:
        fits = stored_global_fits(global_fits_key, settings, job_id=plan.job_id)
        plan = replace(plan, context=replace(plan.context, global_fits=fits))
    return fit_product(history, plan, prior=prior, emit=channel.send)


def child_fit_args(task: ProductTask, plan: FitPlan, prior: PriorFit | None
                   ) -> tuple[Any, ...]:
    """`fit_in_child`'s arguments: a task that names where its job's global models are
    stored sends the plan without them (tens of MB for a chain, pickled through the
    pipe for every product before decision 023), and the key to load them by."""
    if task.global_fits_key is None:
        return task.history, plan, prior
    bare = replace(plan, context=replace(plan.context, global_fits=None))
    return task.history, bare, prior, task.global_fits_key, task.settings


def run_tasks(tasks: Sequence[ProductTask], *, settings: Settings,
              on_event: EventSink | None = None, preload: Sequence[str] = ()
              ) -> list[ProductOutcome]:
    """Embedded shape: train every task (`worker.run_product_task`: lock, fit, store,
    record) in a pool of `MAX_CONCURRENT_TRAINING_JOBS` processes. A product past its
    time limit is killed and reported as timed out while the others go on; the runs of
    killed workers are closed by `jobs.service.finish_job`, which sees their outcome."""
    if not tasks:
        return []
    workers = min(settings.max_concurrent_training_jobs, len(tasks))
    log.info("training.parallel.started", products=len(tasks), workers=workers)
    context = worker_context(preload)
    pump = EventPump(context, on_event)
    outcomes: list[ProductOutcome] = []
    try:
        with ProcessPool(max_workers=workers, context=context, **pump.pool_options()) as pool:
            futures = [
                (task, pool.schedule(run_product_task, args=(task,),
                                     timeout=settings.max_training_time_seconds))
                for task in tasks]
            for task, future in futures:
                outcome = collect(task, future, settings)
                if outcome.reported_by_parent and on_event is not None:
                    # The worker could not report these itself.
                    on_event(run_ended(task.job_id, task.product, outcome.status,
                                       outcome.reason))
                outcomes.append(outcome)
    finally:
        pump.close()
    return outcomes


def collect(task: ProductTask, future: Future[ProductOutcome], settings: Settings
            ) -> ProductOutcome:
    """The outcome of one scheduled task; a killed or crashed worker is a timed-out or
    failed outcome written here (`reported_by_parent`)."""
    try:
        return future.result()
    except FutureTimeout:
        return ProductOutcome(product=task.product, run_id=task.run_id,
                              status=RunStatus.TIMED_OUT, reason=time_limit_reason(settings),
                              duration_s=settings.max_training_time_seconds,
                              reported_by_parent=True)
    except ProcessExpired as exc:
        reason = f"worker process died (exit code {exc.exitcode})"
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
    return ProductOutcome(product=task.product, run_id=task.run_id, status=RunStatus.FAILED,
                          reason=reason, reported_by_parent=True)
