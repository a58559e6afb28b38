"""One product's training, run inside a worker process of the pool.

Order of operations, chosen so that a crash at any point leaves no corrupted state:
take the (tenant, product) lock -> mark the run running -> fit and evaluate (pure core) ->
write the artifact atomically -> in one transaction record the version, make it active and
mark the run trained. A kill before the transaction commits leaves the previous active
version untouched (at worst an unreferenced artifact file); the parent then records the
run as timed out or failed.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import os
import resource
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ovencast.db.base import utcnow
from ovencast.db.session import DATABASE_ERRORS, session_factory, unit_of_work
from ovencast.db.tables import Tenant
from ovencast.errors import OvencastError, failure_reason
from ovencast.events.progress import EventSink, Finished, Started, run_ended
from ovencast.forecasting.families.base import FitContext
from ovencast.forecasting.frame import DATE
from ovencast.jobs import repository as jobs_repository
from ovencast.jobs.states import JobStatus, RunStatus
from ovencast.models import repository as models_repository
from ovencast.models.service import NewVersion, load_verified, record_version
from ovencast.observability.logs import configure_logging, get_logger
from ovencast.observability.metrics import PRODUCT_TRAINING_DURATION, product_ended
from ovencast.settings import Settings
from ovencast.store import StoredArtifact, artifact_key, store_for, unique_key
from ovencast.training import channel
from ovencast.training.fitting import fit_product
from ovencast.training.locks import product_lock
from ovencast.training.plan import FitPlan, FitResult, PriorFit
from ovencast.training.process_state import task_engine, task_global_fits
from ovencast.training.promotion import Promotion, decide
from ovencast.training.task import ProductOutcome, ProductTask, time_limit_reason

log = get_logger(__name__)
# Which process trained a run: host and pid (several workers on several machines).
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
LIBRARIES = ("ovencast", "numpy", "pandas", "prophet", "optuna", "holidays", "statsforecast",
             "lightgbm")


@functools.cache  # importlib.metadata parses every METADATA, 15 ms: read once a process
def library_versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class ProductTimedOut(Exception):
    """Raised by a fitter that stopped a fit at the product's time limit."""


# (tenant_id, product) -> an async context manager holding the training lock.
LockFactory = Callable[[int, str], AbstractAsyncContextManager[Any]]
# Fits one product; the embedded shape fits inline (it already runs in a pool process),
# the service shape in a killable child process.
Fitter = Callable[[ProductTask, FitPlan, "PriorFit | None", EventSink], Awaitable[FitResult]]


def run_product_task(task: ProductTask) -> ProductOutcome:
    """Entry point in an embedded pool process; progress events go to the process's
    channel (training/channel.py)."""
    configure_logging(level=task.settings.log_level,
                      log_file=task.settings.ovencast_home / "logs" / "ovencast.log",
                      stderr_level="ERROR")

    async def main() -> ProductOutcome:
        engine, shared = task_engine(task.settings)
        try:
            return await train_one(task, session_factory(engine), channel.send,
                                   lock=_file_lock(task.settings), fit=_fit_inline)
        finally:
            if not shared:
                await engine.dispose()

    return asyncio.run(main())


def _file_lock(settings: Settings) -> LockFactory:
    @asynccontextmanager
    async def lock(tenant_id: int, product: str) -> AsyncIterator[float]:
        with product_lock(settings.lock_dir, tenant_id, product,
                          timeout_s=settings.lock_wait_timeout_seconds) as waited:
            yield waited

    return lock


async def _fit_inline(task: ProductTask, plan: FitPlan, prior: PriorFit | None,
                      emit: EventSink) -> FitResult:
    return fit_product(task.history, plan, prior=prior, emit=emit)


def fit_plan(task: ProductTask) -> FitPlan:
    global_fits = task_global_fits(task)
    return FitPlan(families=task.families, product_class=task.product_class,
                   country=task.country, subdivision=task.subdivision,
                   regressors=task.regressors,
                   time_limit_s=task.settings.max_training_time_seconds,
                   context=FitContext(product=task.product, global_fits=global_fits),
                   job_id=task.job_id)


async def train_one(task: ProductTask, sessions: async_sessionmaker[AsyncSession],
                    emit: EventSink, *, lock: LockFactory, fit: Fitter) -> ProductOutcome:
    """Lock, mark running, fit, store, record: one product, every path ending in a
    recorded run status (trained, failed or timed_out) with its reason, except a
    database error, which is raised for the caller to retry."""
    settings = task.settings
    started = time.monotonic()
    bound = log.bind(job_id=task.job_id, tenant=task.tenant_name, product=task.product)
    status = RunStatus.FAILED
    try:
        async with lock(task.tenant_id, task.product):
            async with unit_of_work(sessions) as session:
                run = await jobs_repository.get_run(session, task.run_id)
                assert run is not None, f"training run {task.run_id} vanished"
                if run.status.ended:
                    # A second delivery of the same task (its first worker was slow to
                    # send a heartbeat, not dead): the first one has recorded it.
                    bound.warning("training.product.already_ended", status=run.status)
                    return ProductOutcome(product=task.product, run_id=task.run_id,
                                          status=run.status, reason=run.reason)
                run.status, run.started_at, run.reason = RunStatus.RUNNING, utcnow(), None
                run.details = {**(run.details or {}), "worker": WORKER_ID}
            emit(Started(job_id=task.job_id, product=task.product))
            bound.info("training.product.started", families=list(task.families))
            prior = await _prior_fit(task, sessions)
            plan = fit_plan(task)
            result = await fit(task, plan, prior, emit)
            # Active, challenger or kept: the promotion gate (training/promotion.py).
            promotion = await decide(task, sessions, result, plan)
            outcome = await _store_and_record(task, sessions, result, promotion,
                                              time.monotonic() - started)
            bound.info("training.product.finished", family=outcome.family,
                       version=outcome.version, wape=outcome.metrics.get("wape"),
                       duration_s=outcome.duration_s)
            PRODUCT_TRAINING_DURATION.labels(family=outcome.family or "").observe(
                outcome.duration_s or 0.0)
            product_ended(RunStatus.TRAINED, family=outcome.family, asked=task.families)
            emit(Finished(job_id=task.job_id, product=task.product, family=outcome.family,
                          version=outcome.version, metrics=outcome.metrics,
                          model=(outcome.details.get("selection") or {}).get("chosen")))
            return outcome
    except ProductTimedOut:
        status = RunStatus.TIMED_OUT
        reason = time_limit_reason(settings)
    except DATABASE_ERRORS:
        # The database, not the product: the caller retries (the queue task) or records
        # the run as failed once it can (the embedded pool's parent).
        raise
    except Exception as exc:
        reason = failure_reason(exc)
        bound.error("training.product.failed", reason=reason, exc_info=exc)
    duration = time.monotonic() - started
    async with unit_of_work(sessions) as session:
        run = await jobs_repository.get_run(session, task.run_id)
        if run is not None:
            run.status, run.reason = status, reason
            run.finished_at, run.duration_s = utcnow(), duration
    emit(run_ended(task.job_id, task.product, status, reason))
    product_ended(status, family=None, asked=task.families)
    return ProductOutcome(product=task.product, run_id=task.run_id, status=status,
                          reason=reason, duration_s=duration)


async def _prior_fit(task: ProductTask, sessions: Any) -> PriorFit | None:
    """The hyper-parameter cache: the product's latest Prophet version, if any (only the
    Optuna search of Prophet alone uses it)."""
    if tuple(task.families) != ("prophet",):
        return None
    async with unit_of_work(sessions) as session:
        previous = await models_repository.latest_of_family(
            session, task.tenant_id, task.product, "prophet")
    if previous is None:
        return None
    search = previous.details.get("search") or {}
    model = None
    try:
        store = store_for(task.settings)
        model = load_verified(store, previous)
    except OvencastError as exc:  # a refused artifact only costs the warm start
        log.warning("training.warm_start.unavailable", product=task.product, reason=str(exc))
    return PriorFit(params=search.get("best_params") or previous.params,
                    best_mape=search.get("best_mape"), model=model)


async def _store_and_record(task: ProductTask, sessions: Any, result: FitResult,
                            promotion: Promotion, elapsed: float) -> ProductOutcome:
    """Write the artifact under a key of its own, then record it in one transaction.

    The new artifact never overwrites anything, so until the transaction commits the
    active version's file is untouched, whatever happens (an exception, a kill at the
    time limit). If recording fails the new file is removed; once it has committed, the
    file the row pointed to before (versioning disabled: the row is updated in place) is
    retired: moved to the backups when MODEL_BACKUP_ENABLED, else deleted.
    """
    settings = task.settings
    best = result.best
    store = store_for(settings)
    payload = best.model.to_bytes()
    history_dates = task.history[DATE]
    artifact: StoredArtifact | None = None
    replaced_key: str | None = None
    try:
        async with unit_of_work(sessions) as session:
            tenant = await session.get(Tenant, task.tenant_id)
            assert tenant is not None
            job = await jobs_repository.get_job(session, task.job_id, reports=False)
            # A product of a cancelled job that finishes anyway is kept, not made active.
            if job is None or job.status is JobStatus.CANCELLED:
                promotion = promotion.as_cancelled()
            activate = promotion.activate
            active = await models_repository.get_active(session, tenant.id, task.product)
            if settings.model_versioning_enabled or active is None or not activate:
                version = await models_repository.next_version(session, tenant.id,
                                                               task.product)
            else:
                version, replaced_key = active.version, active.artifact_key
            artifact = store.save(unique_key(
                artifact_key(tenant.name, task.product, best.family, version)), payload)
            row = await record_version(session, tenant, NewVersion(
                product=task.product, family=best.family, params=best.model.params,
                metrics=best.metrics.to_dict(),
                baseline_metrics=best.baseline_metrics.to_dict(), details=result.details,
                regressors=list(best.model.regressors),
                data_start=history_dates.min().date(), data_end=history_dates.max().date(),
                library_versions=dict(library_versions()), training_job_id=task.job_id,
            ), artifact, version=version, versioning_enabled=settings.model_versioning_enabled,
                activate=activate, challenger=promotion.challenger,
                promotion=promotion.to_dict())
            run = await jobs_repository.get_run(session, task.run_id)
            assert run is not None
            run.status, run.model_version_id = RunStatus.TRAINED, row.id
            run.finished_at, run.duration_s = utcnow(), elapsed
            await session.flush()
    except BaseException:
        if artifact is not None:
            store.delete(artifact.key)
        raise
    if replaced_key is not None and replaced_key != artifact.key:
        store.retire(replaced_key, keep_backup=settings.model_backup_enabled)
    return ProductOutcome(
        product=task.product, run_id=task.run_id, status=RunStatus.TRAINED, family=best.family,
        version=version, metrics=best.metrics.to_dict(),
        baseline_metrics=best.baseline_metrics.to_dict(), duration_s=elapsed,
        peak_rss_mb=peak_rss_mb(), details={**result.details,
                                            "promotion": promotion.to_dict()})
