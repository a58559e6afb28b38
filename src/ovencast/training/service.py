"""Training jobs in the embedded shape: prepare (validate, record the job), run every
product in a process pool, finish (close the job with its outcome).

`prepare_job` and `finish_job` are services (they take a session and flush); `run_tasks`
is the process pool. The CLI is the edge that opens the units of work around them.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
from pebble import ProcessExpired, ProcessPool
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.datasets import repository as datasets_repository
from ovencast.db.base import utcnow
from ovencast.db.tables import Tenant, TrainingJob, TrainingRun
from ovencast.errors import InvalidDataset, OvencastError
from ovencast.forecasting.classes import ClassThresholds
from ovencast.forecasting.families import model_class
from ovencast.forecasting.features import AlignmentReport, build_tenant_frame
from ovencast.forecasting.frame import CLOSED, PRODUCT, Y
from ovencast.forecasting.validation import ValidationReport, validate_sales
from ovencast.jobs import repository as jobs_repository
from ovencast.observability.logs import get_logger
from ovencast.observability.metrics import TRAINING_JOB_DURATION
from ovencast.settings import Settings
from ovencast.training.task import ProductOutcome, ProductTask
from ovencast.training.worker import run_product_task

log = get_logger(__name__)

# Prophet tuned with Optuna (the original system's model); seasonal naive is always scored
# beside it as the baseline, so it need not be listed.
DEFAULT_FAMILIES = ("prophet",)
# (product, event, fields) -> None; called in the parent for events from the workers.
EventCallback = Callable[[str, str, dict[str, Any]], None]


@dataclass(frozen=True)
class PreparedJob:
    job_id: int
    tasks: list[ProductTask]
    validation: ValidationReport
    alignment: AlignmentReport
    rejected: dict[str, str]  # product -> reason it will not train


def parse_families(models: Sequence[str] | None) -> tuple[str, ...]:
    families = tuple(dict.fromkeys(m.strip() for m in (models or DEFAULT_FAMILIES) if m.strip()))
    for family in families:
        try:
            model_class(family)
        except ValueError as exc:
            raise OvencastError(str(exc), status_code=422) from None
    return families or DEFAULT_FAMILIES


async def prepare_job(session: AsyncSession, tenant: Tenant, *, settings: Settings,
                      products: Sequence[str] | None = None, until: date | None = None,
                      models: Sequence[str] | None = None) -> PreparedJob:
    """Validate the tenant's data and record a job with one run per selected product.
    Products with validation errors get a failed run with the errors as reason."""
    families = parse_families(models)
    known = await datasets_repository.list_products(session, tenant.id)
    if not known:
        raise InvalidDataset(f"tenant {tenant.name!r} has no sales data; import a dataset")
    selected = list(dict.fromkeys(products)) if products else known
    unknown = [p for p in selected if p not in known]
    if unknown:
        raise InvalidDataset(f"unknown product(s) {unknown} for tenant {tenant.name!r}; "
                             f"known: {', '.join(known)}")
    long, report, alignment = await _load_and_validate(
        session, tenant, settings=settings, until=until, products=selected)
    job = TrainingJob(tenant_id=tenant.id, status="running", products=products and selected,
                      models=list(families), until=until, validation_report=report.to_dict(),
                      alignment_report=alignment.to_dict(), warnings=[
                          str(issue.message) for issue in report.warnings],
                      started_at=utcnow())
    session.add(job)
    await session.flush()
    tasks: list[ProductTask] = []
    rejected: dict[str, str] = {}
    thresholds = ClassThresholds()
    for product in selected:
        errors = report.errors_for(product)
        history = long.loc[long[PRODUCT] == product].drop(columns=[PRODUCT])
        if errors:
            reason = "; ".join(issue.message for issue in errors)
        elif history.empty:
            clipped = alignment.clipped.get(product)
            if clipped is not None and clipped.remaining_days == 0:
                reason = (f"all {clipped.n_days} days clipped: the regressors "
                          f"{', '.join(alignment.used_regressors)} are not available there")
            else:
                reason = f"no data up to {until}" if until else "no data"
        else:
            reason = ""
        stats = report.products.get(product)
        product_class = (str(stats.product_class) if stats is not None else
                         str(thresholds.classify(history.loc[~history[CLOSED], Y].to_numpy())))
        run = TrainingRun(job_id=job.id, product=product, product_class=product_class,
                          status="failed" if reason else "pending", reason=reason or None)
        session.add(run)
        await session.flush()
        if reason:
            rejected[product] = reason
            continue
        tasks.append(ProductTask(
            settings=settings, job_id=job.id, run_id=run.id, tenant_id=tenant.id,
            tenant_name=tenant.name, product=product, product_class=product_class,
            history=history.reset_index(drop=True), regressors=tuple(alignment.used_regressors),
            families=families, country=tenant.country, subdivision=tenant.subdivision))
    log.info("training.job.started", job_id=job.id, tenant=tenant.name,
             products=len(selected), trainable=len(tasks), families=list(families))
    return PreparedJob(job_id=job.id, tasks=tasks, validation=report, alignment=alignment,
                       rejected=rejected)


async def _load_and_validate(
    session: AsyncSession, tenant: Tenant, *, settings: Settings, until: date | None,
    products: Sequence[str] | None,
) -> tuple[pd.DataFrame, ValidationReport, AlignmentReport]:
    sales = await datasets_repository.load_sales(session, tenant.id, until=until,
                                                 products=products)
    regressors, _sources = await datasets_repository.load_regressors(session, tenant.id)
    long, alignment = build_tenant_frame(sales, regressors, country=tenant.country,
                                         subdivision=tenant.subdivision)
    report = validate_sales(long, min_days=settings.min_training_data_days,
                            recommended_days=settings.recommended_training_data_days)
    return long, report, alignment


async def validate_tenant(session: AsyncSession, tenant: Tenant, *, settings: Settings,
                          until: date | None = None
                          ) -> tuple[ValidationReport, AlignmentReport]:
    """The validation report of all the tenant's data (what a job would store)."""
    if not await datasets_repository.list_products(session, tenant.id):
        raise InvalidDataset(f"tenant {tenant.name!r} has no sales data; import a dataset")
    _, report, alignment = await _load_and_validate(session, tenant, settings=settings,
                                                    until=until, products=None)
    return report, alignment


async def job_runs(session: AsyncSession, job_id: int) -> Sequence[TrainingRun]:
    return await jobs_repository.runs_of(session, job_id)


def run_tasks(tasks: Sequence[ProductTask], *, settings: Settings,
              on_event: EventCallback | None = None) -> list[ProductOutcome]:
    """Train every task in a pool of `MAX_CONCURRENT_TRAINING_JOBS` processes.

    Each product gets at most `MAX_TRAINING_TIME_MINUTES`; past that pebble kills its worker
    process (a hung fit cannot be stopped any other way) and the product is reported as
    timed out while the others go on. The runs of killed workers are closed by
    `finish_job`, which sees their outcome."""
    if not tasks:
        return []
    workers = min(settings.max_concurrent_training_jobs, len(tasks))
    log.info("training.parallel.started", products=len(tasks), workers=workers)
    context = multiprocessing.get_context("spawn")
    manager = context.Manager()
    events = manager.Queue()
    stop = threading.Event()
    pump = threading.Thread(target=_pump_events, args=(events, stop, on_event), daemon=True)
    pump.start()
    outcomes: list[ProductOutcome] = []
    try:
        with ProcessPool(max_workers=workers, context=context) as pool:
            futures = [
                (task, pool.schedule(run_product_task, args=(task, events),
                                     timeout=settings.max_training_time_seconds))
                for task in tasks]
            for task, future in futures:
                outcome = _collect(task, future, settings)
                if outcome.reported_by_parent and on_event is not None:
                    # The worker could not report these itself.
                    on_event(task.product, outcome.status, {"reason": outcome.reason})
                outcomes.append(outcome)
    finally:
        stop.set()
        pump.join(timeout=2)
        manager.shutdown()
    return outcomes


def _collect(task: ProductTask, future: Any, settings: Settings) -> ProductOutcome:
    timeout = settings.max_training_time_seconds
    try:
        outcome: ProductOutcome = future.result()
        return outcome
    except FutureTimeout:
        reason = (f"stopped after MAX_TRAINING_TIME_MINUTES="
                  f"{settings.max_training_time_minutes:g} ({timeout:.0f} s)")
        return ProductOutcome(product=task.product, run_id=task.run_id, status="timed_out",
                              reason=reason, duration_s=timeout, reported_by_parent=True)
    except ProcessExpired as exc:
        reason = f"worker process died (exit code {exc.exitcode})"
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
    return ProductOutcome(product=task.product, run_id=task.run_id, status="failed",
                          reason=reason, reported_by_parent=True)


def _pump_events(events: Any, stop: threading.Event, on_event: EventCallback | None) -> None:
    while not stop.is_set():
        try:
            product, event, fields = events.get(timeout=0.2)
        except queue.Empty:
            continue
        except (EOFError, OSError):
            return
        if on_event is not None:
            on_event(product, event, fields)


async def finish_job(session: AsyncSession, job_id: int, outcomes: Sequence[ProductOutcome]
                     ) -> TrainingJob:
    """Record the outcome of runs the workers could not record themselves (timed out,
    killed) and close the job: succeeded (all trained), partial, or failed (none)."""
    job = await jobs_repository.get_job(session, job_id)
    assert job is not None
    by_run = {o.run_id: o for o in outcomes}
    runs = await jobs_repository.runs_of(session, job_id)
    for run in runs:
        outcome = by_run.get(run.id)
        if outcome is not None and outcome.status != "trained" and run.status in (
                "pending", "running"):
            run.status, run.reason = outcome.status, outcome.reason
            run.finished_at, run.duration_s = utcnow(), outcome.duration_s
        elif run.status in ("pending", "running"):
            run.status, run.reason = "failed", "the worker ended without reporting an outcome"
            run.finished_at = utcnow()
    trained = sum(1 for run in runs if run.status == "trained")
    job.status = "succeeded" if trained == len(runs) else ("partial" if trained else "failed")
    if not trained:
        job.error = "no product could be trained"
    job.finished_at = utcnow()
    if job.started_at is not None:
        TRAINING_JOB_DURATION.observe((job.finished_at - job.started_at).total_seconds())
    await session.flush()
    log.info("training.job.finished", job_id=job.id, status=job.status, trained=trained,
             products=len(runs))
    return job
