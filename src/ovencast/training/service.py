"""Training jobs in the embedded shape: prepare (validate, record the job), run every
product in a process pool, finish (close the job with its outcome).

`prepare_job` and `finish_job` are services (they take a session and flush); `run_tasks`
is the process pool. The CLI is the edge that opens the units of work around them.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.forkserver
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import pandas as pd
from pebble import ProcessExpired, ProcessPool
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.db.base import utcnow
from ovencast.db.tables import Tenant, TrainingJob, TrainingRun
from ovencast.errors import InvalidDataset, InvalidRequest, NotFound, OvencastError
from ovencast.forecasting.classes import ClassThresholds
from ovencast.forecasting.families.lightgbm_global import LIGHTGBM
from ovencast.forecasting.features import AlignmentReport, build_tenant_frame
from ovencast.forecasting.frame import CLOSED, DATE, PRODUCT, Y
from ovencast.forecasting.global_stage import needs_global_stage, train_tenant_models
from ovencast.forecasting.selection import AUTO, resolve_candidate
from ovencast.forecasting.validation import ValidationReport, validate_sales
from ovencast.jobs import repository as jobs_repository
from ovencast.observability.logs import get_logger
from ovencast.observability.metrics import TRAINING_JOB_DURATION
from ovencast.settings import Settings
from ovencast.sources.base import DataSource
from ovencast.sources.database import DatabaseSource
from ovencast.store import artifact_key, store_for
from ovencast.training.task import ProductOutcome, ProductTask
from ovencast.training.worker import run_product_task, unique_key

log = get_logger(__name__)

# Automatic selection among the product class's candidates by a rolling-origin backtest
# (forecasting/selection.py); seasonal naive is always scored beside the choice as the
# baseline. `--models prophet` is the original system's model (Prophet tuned by Optuna).
DEFAULT_FAMILIES = (AUTO,)
# The "product" component of the key of a job's global-models artifact:
# <tenant>/global-models-<digest>/lightgbm/v<job id>-<random>.json
GLOBAL_MODELS_KEY = "global-models"
# (product, event, fields) -> None; called in the parent for events from the workers.
EventCallback = Callable[[str, str, dict[str, Any]], None]


@dataclass(frozen=True, repr=False)
class PreparedJob:
    """What `prepare_job` hands to the pool. Its repr is a summary (see ProductTask)."""

    job_id: int
    tasks: list[ProductTask]
    validation: ValidationReport
    alignment: AlignmentReport
    rejected: dict[str, str]  # product -> reason it will not train
    global_models: dict[str, Any] | None = None  # what the tenant stage trained, if any

    def __repr__(self) -> str:
        return (f"PreparedJob(job_id={self.job_id}, tasks={len(self.tasks)}, "
                f"rejected={sorted(self.rejected)})")


def parse_families(models: Sequence[str] | None) -> tuple[str, ...]:
    """The model choice of a job: ("auto",) (the default), or the named candidates (a
    registered family or a variant such as "mstl_weekly") to select among. "auto" does
    not combine with names."""
    families = tuple(dict.fromkeys(m.strip() for m in (models or DEFAULT_FAMILIES) if m.strip()))
    if AUTO in families and len(families) > 1:
        raise InvalidRequest(f"'{AUTO}' selects among the product class's candidates; it "
                             "cannot be combined with named families")
    for family in families:
        if family == AUTO:
            continue
        try:
            resolve_candidate(family)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
    return families or DEFAULT_FAMILIES


async def new_job(session: AsyncSession, tenant: Tenant, *,
                  products: Sequence[str] | None = None, until: date | None = None,
                  models: Sequence[str] | None = None, source: DataSource | None = None
                  ) -> TrainingJob:
    """Check the request (families, products) and record a queued job. `source`: where
    the data comes from (default: imported data; see sources.service.open_data_source)."""
    families = parse_families(models)
    known = await (source or DatabaseSource(session)).list_products(tenant.name)
    if not known:
        raise InvalidDataset(f"tenant {tenant.name!r} has no sales data; import a dataset")
    selected = list(dict.fromkeys(products)) if products else None
    unknown = [p for p in selected or () if p not in known]
    if unknown:
        raise InvalidDataset(f"unknown product(s) {unknown} for tenant {tenant.name!r}; "
                             f"known: {', '.join(known)}")
    job = TrainingJob(tenant_id=tenant.id, status="queued", products=selected,
                      models=list(families), until=until, warnings=[])
    session.add(job)
    await session.flush()
    return job


async def get_job(session: AsyncSession, job_id: int) -> TrainingJob:
    job = await jobs_repository.get_job(session, job_id)
    if job is None:
        raise NotFound(f"training job {job_id} does not exist")
    return job


async def fail_job(session: AsyncSession, job_id: int, reason: str) -> TrainingJob:
    """A job that could not even start (its data could not be had): failed, with why."""
    job = await get_job(session, job_id)
    job.status, job.error, job.finished_at = "failed", reason, utcnow()
    await session.flush()
    log.warning("training.job.failed", job_id=job_id, reason=reason)
    return job


async def prepare_job(session: AsyncSession, tenant: Tenant, job: TrainingJob, *,
                      settings: Settings, source: DataSource | None = None) -> PreparedJob:
    """Validate the tenant's data, store the reports with the job and add one run per
    selected product. Products with validation errors get a failed run with the errors as
    reason; the others a pending run and a task. Sales the source cannot deliver raise
    (an `UpstreamError`: "sales service unavailable: ..."); weather or traffic it could
    not get become job warnings."""
    source = source or DatabaseSource(session)
    selected = job.products or await source.list_products(tenant.name)
    long, report, alignment, source_warnings = await _load_and_validate(
        source, tenant, settings=settings, until=job.until, products=selected)
    verdicts: list[tuple[str, str | None, str]] = []  # product, rejection, class
    histories: dict[str, pd.DataFrame] = {}  # the products that will train
    for product in selected:
        history = long.loc[long[PRODUCT] == product].drop(columns=[PRODUCT])
        reason = _rejection(product, history, report, alignment, job.until)
        verdicts.append((product, reason, _product_class(product, history, report)))
        if not reason:
            histories[product] = history.reset_index(drop=True)
    # The tenant stage (seconds) runs before this unit of work writes anything, so that
    # no write lock (SQLite) or row lock (the job's, PostgreSQL) is held while it trains.
    trained = await _train_global_models(tenant, job, histories,
                                         tuple(alignment.used_regressors), settings, source)
    job.status, job.started_at = "running", utcnow()
    job.validation_report, job.alignment_report = report.to_dict(), alignment.to_dict()
    job.warnings = [*job.warnings, *source_warnings,
                    *(f"{issue.product}: {issue.message}" if issue.product else issue.message
                      for issue in report.warnings)]
    tasks: list[ProductTask] = []
    rejected: dict[str, str] = {}
    for product, reason, product_class in verdicts:
        run = TrainingRun(job_id=job.id, product=product, product_class=product_class,
                          status="failed" if reason else "pending", reason=reason,
                          finished_at=utcnow() if reason else None)
        session.add(run)
        await session.flush()
        if reason:
            rejected[product] = reason
            continue
        tasks.append(_task(settings, tenant, job, run, histories[product], alignment))
    if trained is not None:
        payload, job.global_models = trained
        tasks = [replace(task, global_fits=payload) for task in tasks]
    await session.flush()
    log.info("training.job.started", job_id=job.id, tenant=tenant.name,
             products=len(selected), trainable=len(tasks), families=list(job.models))
    return PreparedJob(job_id=job.id, tasks=tasks, validation=report, alignment=alignment,
                       rejected=rejected, global_models=job.global_models)


async def product_task(session: AsyncSession, tenant: Tenant, job: TrainingJob,
                       run: TrainingRun, *, settings: Settings,
                       source: DataSource | None = None) -> ProductTask:
    """Rebuild one run's task from the database (the service shape's worker task gets ids
    only). The frame is built exactly as `prepare_job` built it: same products, same
    cut-off, hence the same regressor selection."""
    source = source or DatabaseSource(session)
    selected = job.products or await source.list_products(tenant.name)
    long, _report, alignment, _warnings = await _load_and_validate(
        source, tenant, settings=settings, until=job.until, products=selected)
    prepared_with = list((job.alignment_report or {}).get("used_regressors", []))
    if prepared_with and list(alignment.used_regressors) != prepared_with:
        raise InvalidDataset(
            f"the regressors available now ({', '.join(alignment.used_regressors) or 'none'}) "
            f"differ from those the job was prepared with ({', '.join(prepared_with)}); "
            "an upstream service may have gone down meanwhile")
    history = long.loc[long[PRODUCT] == run.product].drop(columns=[PRODUCT])
    if history.empty:
        raise InvalidDataset(f"no data left for {run.product!r}")
    return replace(_task(settings, tenant, job, run, history, alignment),
                   global_fits=_load_global_models(job, settings))


async def _train_global_models(tenant: Tenant, job: TrainingJob,
                               histories: dict[str, pd.DataFrame], regressors: tuple[str, ...],
                               settings: Settings, source: DataSource
                               ) -> tuple[bytes, dict[str, Any]] | None:
    """The tenant stage (forecasting/global_stage.py): train the global models once for
    all trainable products (`histories`), store them as one artifact of the job. Returns
    the payload (what the tasks carry) and the job's record of it; None when the job's
    model choice uses no global model. A failure costs the global boosters only: the
    "lightgbm" candidate then trains on each product alone, and the job says so in its
    warnings."""
    if not histories or not needs_global_stage(job.models):
        return None
    try:
        tenant_histories = await _tenant_histories(source, tenant, job, histories,
                                                   regressors, settings)
        fits = await asyncio.to_thread(
            train_tenant_models, tenant_histories, regressors, cutoffs_for=list(histories),
            workers=settings.max_concurrent_training_jobs)
        payload = fits.to_bytes()
        store = store_for(settings)
        artifact = store.save(unique_key(artifact_key(
            tenant.name, GLOBAL_MODELS_KEY, LIGHTGBM, job.id)), payload)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        job.warnings = [*job.warnings, f"the tenant's global model could not be trained "
                        f"or stored ({reason}); lightgbm was fitted per product instead"]
        log.warning("training.global.failed", job_id=job.id, reason=reason)
        return None
    log.info("training.global.finished", job_id=job.id, products=len(tenant_histories),
             boosters=len(fits.boosters), seconds=round(fits.seconds, 2))
    return payload, {**fits.summary(), "uri": artifact.uri, "sha256": artifact.sha256}


async def _tenant_histories(source: DataSource, tenant: Tenant, job: TrainingJob,
                            histories: dict[str, pd.DataFrame], regressors: tuple[str, ...],
                            settings: Settings) -> dict[str, pd.DataFrame]:
    """What the global model trains on: the job's products, and for a job of some products
    only, every other product of the tenant that passes validation (same cut-off date,
    the job's regressor columns): the model is the tenant's, whichever products a job
    retrains. If the other products lack one of the job's regressors there, the job's
    products alone."""
    found = dict(histories)
    if not job.products:
        return found
    try:
        long, report, _alignment, _warnings = await _load_and_validate(
            source, tenant, settings=settings, until=job.until, products=None)
    except OvencastError as exc:  # e.g. the sales service: the job's products alone
        log.warning("training.global.products_only", job_id=job.id, reason=exc.message)
        return found
    columns = [DATE, Y, CLOSED, *regressors]
    if any(column not in long.columns for column in columns):
        return found
    for product, rows in long.groupby(PRODUCT):
        name = str(product)
        if name not in found and not report.errors_for(name) and not rows.empty:
            found[name] = rows[columns].reset_index(drop=True)
    return found


def mark_global_models_retired(job: TrainingJob) -> bool:
    """Record that the job's global-models artifact is no longer read (every product
    artifact holds its booster; the record stays); `retire_global_models` deletes it once
    this has committed. False when the job has none or it was already retired."""
    record = job.global_models or {}
    if not record.get("uri") or record.get("retired"):
        return False
    job.global_models = {**record, "retired": True}
    return True


def retire_global_models(job: TrainingJob, settings: Settings) -> None:
    """After the job's end has committed: delete its global-models artifact (the stored
    product models embed their boosters, nothing else reads it). Idempotent; a failure
    only leaves the file behind (logged)."""
    record = job.global_models or {}
    if not (record.get("retired") and record.get("uri")):
        return
    store = store_for(settings)
    try:
        store.delete(record["uri"])
    except (OvencastError, ValueError, OSError) as exc:
        log.warning("training.global.not_deleted", job_id=job.id, reason=str(exc))


def _load_global_models(job: TrainingJob, settings: Settings) -> bytes | None:
    """The job's stored global models, checksum verified; None (logged: lightgbm then
    trains on the product alone) when the job has none or its artifact is refused."""
    record = job.global_models or {}
    if not record.get("uri"):
        return None
    store = store_for(settings)
    try:
        return store.load(record["uri"], expected_sha256=record["sha256"])
    except (OvencastError, ValueError) as exc:  # ValueError: a uri outside this store
        log.warning("training.global.unavailable", job_id=job.id, reason=str(exc))
        return None


def _task(settings: Settings, tenant: Tenant, job: TrainingJob, run: TrainingRun,
          history: pd.DataFrame, alignment: AlignmentReport) -> ProductTask:
    return ProductTask(
        settings=settings, job_id=job.id, run_id=run.id, tenant_id=tenant.id,
        tenant_name=tenant.name, product=run.product,
        product_class=run.product_class or "", history=history.reset_index(drop=True),
        regressors=tuple(alignment.used_regressors), families=tuple(job.models),
        country=tenant.country, subdivision=tenant.subdivision)


def _rejection(product: str, history: pd.DataFrame, report: ValidationReport,
               alignment: AlignmentReport, until: date | None) -> str | None:
    errors = report.errors_for(product)
    if errors:
        return "; ".join(issue.message for issue in errors)
    if history.empty:
        clipped = alignment.clipped.get(product)
        if clipped is not None and clipped.remaining_days == 0:
            return (f"all {clipped.n_days} days clipped: the regressors "
                    f"{', '.join(alignment.used_regressors)} are not available there")
        return f"no data up to {until}" if until else "no data"
    return None


def _product_class(product: str, history: pd.DataFrame, report: ValidationReport) -> str:
    stats = report.products.get(product)
    if stats is not None:
        return str(stats.product_class)
    return str(ClassThresholds().classify(history.loc[~history[CLOSED], Y].to_numpy()))


async def _load_and_validate(
    source: DataSource, tenant: Tenant, *, settings: Settings, until: date | None,
    products: Sequence[str] | None,
) -> tuple[pd.DataFrame, ValidationReport, AlignmentReport, list[str]]:
    data = await source.load(tenant.name, until=until, products=products)
    long, alignment = build_tenant_frame(data.sales, data.regressors, country=tenant.country,
                                         subdivision=tenant.subdivision)
    report = validate_sales(long, min_days=settings.min_training_data_days,
                            recommended_days=settings.recommended_training_data_days)
    return long, report, alignment, data.warnings


async def validate_tenant(session: AsyncSession, tenant: Tenant, *, settings: Settings,
                          until: date | None = None, source: DataSource | None = None
                          ) -> tuple[ValidationReport, AlignmentReport]:
    """The validation report of all the tenant's data (what a job would store)."""
    source = source or DatabaseSource(session)
    if not await source.list_products(tenant.name):
        raise InvalidDataset(f"tenant {tenant.name!r} has no sales data; import a dataset")
    _, report, alignment, _warnings = await _load_and_validate(
        source, tenant, settings=settings, until=until, products=None)
    return report, alignment


async def job_runs(session: AsyncSession, job_id: int) -> Sequence[TrainingRun]:
    return await jobs_repository.runs_of(session, job_id)


WORKER_PRELOAD = ("ovencast.cli.main", "ovencast.training.worker", "statsforecast.models",
                  "lightgbm")
"""What the embedded pool's worker processes import before they are forked (about 3 s
of imports: pandas, SQLAlchemy, statsforecast with statsmodels and scipy, LightGBM).
`ovencast.cli.main`: every process the pool starts (the Manager's and each worker) first
re-runs the parent's main script as `__mp_main__`, and the `ovencast` console script
imports `ovencast.cli.main` at its top (0.3 s per process, about 0.9 s before the first
product of every `ovencast train`, when that module still imported the services at its
top; typer and rich still). Preloaded, that re-run finds the module imported. (The
documented way, a `"__main__"` preload, does nothing on Python 3.11: its fork server is
never given the main script's path.)"""


def worker_context() -> Any:
    """The multiprocessing context of the embedded pool: `forkserver`, with
    `WORKER_PRELOAD` imported once in the fork server, so that every worker process starts
    as a fork of an interpreter that has imported them instead of importing them itself
    (as `spawn` does). The fork server is single-threaded, so forking it is safe where
    forking this process (threads: the event pump, SQLite's, LightGBM's) is not.
    Consequence: workers inherit the environment of the moment the fork server started,
    not of the moment they are forked; everything a task needs travels in its
    `ProductTask` (settings included)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(WORKER_PRELOAD))
    return context


def start_workers_early() -> None:
    """Start the fork server now (it imports `WORKER_PRELOAD` in the background), so that
    its imports overlap the job's data loading and tenant stage instead of delaying the
    first product. Idempotent; the server lives as long as this process."""
    worker_context()
    multiprocessing.forkserver.ensure_running()


def stop_workers() -> None:
    """Stop the fork server, so that the next job starts one afresh, as a new `ovencast
    train` process would (the benchmarks time every run from cold). The standard library
    has no public call for it; `_stop` is what its own tests use."""
    multiprocessing.forkserver._forkserver._stop()  # type: ignore[attr-defined]


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
    context = worker_context()
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
    await conclude_job(session, job, runs)
    return job


async def conclude_job(session: AsyncSession, job: TrainingJob, runs: Sequence[TrainingRun]
                       ) -> None:
    """Every run has ended: succeeded (all trained), partial, or failed (none)."""
    trained = sum(1 for run in runs if run.status == "trained")
    mark_global_models_retired(job)
    job.status = "succeeded" if trained == len(runs) else ("partial" if trained else "failed")
    if not trained:
        job.error = "no product could be trained"
    job.finished_at = utcnow()
    if job.started_at is not None:
        TRAINING_JOB_DURATION.observe((job.finished_at - job.started_at).total_seconds())
    await session.flush()
    log.info("training.job.finished", job_id=job.id, status=job.status, trained=trained,
             products=len(runs))
