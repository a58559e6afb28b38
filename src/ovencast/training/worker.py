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
import importlib.metadata
import time
import traceback
from collections.abc import Callable
from typing import Any

from ovencast.db.base import utcnow
from ovencast.db.session import create_engine, session_factory, unit_of_work
from ovencast.db.tables import Tenant
from ovencast.errors import OvencastError
from ovencast.forecasting.frame import DATE
from ovencast.jobs import repository as jobs_repository
from ovencast.models import repository as models_repository
from ovencast.models.service import NewVersion, load_verified, record_version
from ovencast.observability.logs import configure_logging, get_logger
from ovencast.observability.metrics import PRODUCT_TRAINING_DURATION
from ovencast.store import ModelStore, StoredArtifact, artifact_key, open_store
from ovencast.training.fitting import FitPlan, FitResult, PriorFit, fit_product
from ovencast.training.locks import product_lock
from ovencast.training.task import ProductOutcome, ProductTask

log = get_logger(__name__)

EventSink = Callable[[str, dict[str, Any]], None]
LIBRARIES = ("ovencast", "numpy", "pandas", "prophet", "optuna", "holidays")


def library_versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def run_product_task(task: ProductTask, events: Any = None) -> ProductOutcome:
    """Entry point in the worker process. `events` is an optional queue (a Manager queue
    in the embedded shape) that receives `(product, event, fields)` tuples."""
    configure_logging(level=task.settings.log_level,
                      log_file=task.settings.ovencast_home / "logs" / "ovencast.log",
                      stderr_level="ERROR")

    def emit(event: str, fields: dict[str, Any]) -> None:
        if events is not None:
            events.put((task.product, event, fields))

    return asyncio.run(_run(task, emit))


async def _run(task: ProductTask, emit: EventSink) -> ProductOutcome:
    settings = task.settings
    engine = create_engine(settings)
    sessions = session_factory(engine)
    started = time.monotonic()
    bound = log.bind(job_id=task.job_id, tenant=task.tenant_name, product=task.product)
    try:
        with product_lock(settings.lock_dir, task.tenant_id, task.product,
                          timeout_s=settings.lock_wait_timeout_seconds):
            async with unit_of_work(sessions) as session:
                run = await jobs_repository.get_run(session, task.run_id)
                assert run is not None, f"training run {task.run_id} vanished"
                run.status, run.started_at = "running", utcnow()
            emit("started", {})
            bound.info("training.product.started", families=list(task.families))
            prior = await _prior_fit(task, sessions)
            result = fit_product(task.history, FitPlan(
                families=task.families, product_class=task.product_class,
                country=task.country, subdivision=task.subdivision,
                regressors=task.regressors, time_limit_s=settings.max_training_time_seconds,
            ), prior=prior, emit=emit)
            outcome = await _store_and_record(task, sessions, result,
                                              time.monotonic() - started)
            bound.info("training.product.finished", family=outcome.family,
                       version=outcome.version, wape=outcome.metrics.get("wape"),
                       duration_s=outcome.duration_s)
            PRODUCT_TRAINING_DURATION.labels(family=outcome.family or "").observe(
                outcome.duration_s or 0.0)
            emit("finished", {"family": outcome.family, "metrics": outcome.metrics})
            return outcome
    except Exception as exc:
        reason = str(exc) if isinstance(exc, OvencastError) else (
            f"{type(exc).__name__}: {exc}")
        bound.error("training.product.failed", reason=reason,
                    traceback=traceback.format_exc(limit=8))
        duration = time.monotonic() - started
        async with unit_of_work(sessions) as session:
            run = await jobs_repository.get_run(session, task.run_id)
            if run is not None:
                run.status, run.reason = "failed", reason
                run.finished_at, run.duration_s = utcnow(), duration
        emit("failed", {"reason": reason})
        return ProductOutcome(product=task.product, run_id=task.run_id, status="failed",
                              reason=reason, duration_s=duration)
    finally:
        await engine.dispose()


async def _prior_fit(task: ProductTask, sessions: Any) -> PriorFit | None:
    """The hyper-parameter cache: the product's latest Prophet version, if any."""
    if "prophet" not in task.families:
        return None
    async with unit_of_work(sessions) as session:
        previous = await models_repository.latest_of_family(
            session, task.tenant_id, task.product, "prophet")
    if previous is None:
        return None
    search = previous.details.get("search") or {}
    model = None
    try:
        store = open_store(task.settings.resolved_model_storage_path,
                           backup_enabled=task.settings.model_backup_enabled)
        model = load_verified(store, previous)
    except OvencastError as exc:  # a refused artifact only costs the warm start
        log.warning("training.warm_start.unavailable", product=task.product, reason=str(exc))
    return PriorFit(params=search.get("best_params") or previous.params,
                    best_mape=search.get("best_mape"), model=model)


async def _store_and_record(task: ProductTask, sessions: Any, result: FitResult,
                            elapsed: float) -> ProductOutcome:
    settings = task.settings
    best = result.best
    store = open_store(settings.resolved_model_storage_path,
                       backup_enabled=settings.model_backup_enabled)
    payload = best.model.to_bytes()
    async with unit_of_work(sessions) as session:
        tenant = await session.get(Tenant, task.tenant_id)
        assert tenant is not None
        active = await models_repository.get_active(session, tenant.id, task.product)
        if settings.model_versioning_enabled or active is None:
            version = await models_repository.next_version(session, tenant.id, task.product)
        else:
            version = active.version
        artifact = store.save(
            artifact_key(tenant.name, task.product, best.family, version), payload)
        try:
            history_dates = task.history[DATE]
            row = await record_version(session, tenant, NewVersion(
                product=task.product, family=best.family, params=best.model.params,
                metrics=best.metrics.to_dict(), baseline_metrics=best.baseline_metrics.to_dict(),
                details=result.details,
                regressors=list(best.model.regressors),
                data_start=history_dates.min().date(), data_end=history_dates.max().date(),
                library_versions=library_versions(), training_job_id=task.job_id,
            ), artifact, version=version, versioning_enabled=settings.model_versioning_enabled)
            run = await jobs_repository.get_run(session, task.run_id)
            assert run is not None
            duration = elapsed
            run.status, run.model_version_id = "trained", row.id
            run.finished_at, run.duration_s = utcnow(), duration
            await session.flush()
        except BaseException:
            _undo_save(store, artifact, active_sha256=active.sha256 if active else None)
            raise
    return ProductOutcome(
        product=task.product, run_id=task.run_id, status="trained", family=best.family,
        version=version, metrics=best.metrics.to_dict(),
        baseline_metrics=best.baseline_metrics.to_dict(), duration_s=duration)


def _undo_save(store: ModelStore, artifact: StoredArtifact, *, active_sha256: str | None
               ) -> None:
    """The version was not recorded. A new key: remove the unreferenced artifact. An
    overwritten key (versioning disabled): put the replaced bytes back from the backup, so
    that the key matches the checksum the database still holds."""
    if artifact.replaced_backup_uri is None:
        store.delete(artifact.uri)
    elif active_sha256 is not None:
        previous = store.load(artifact.replaced_backup_uri, expected_sha256=active_sha256)
        store.save(artifact.key, previous)
