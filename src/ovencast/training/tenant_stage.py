"""The tenant stage of a job, around the pure `forecasting.global_stage`: train the
tenant's global models once for all its trainable products, before any product, store
them as one artifact of the job (its key and SHA-256 in `training_jobs.global_models`),
hand them to each product's fit, and delete the artifact once the job has ended.

Beside it the stage stores the *serving* copy: the boosters of the cut-offs the
products' final models adopt (`GlobalFits.serving_copy`), which every product artifact
refers to (key, SHA-256) instead of holding them. It is kept after the job, as long as the
versions that refer to it (forever today: versions are never deleted), except when the
job trained no product. docs/decisions/017-shared-serving-boosters.md."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ovencast.db.tables import Tenant, TrainingJob
from ovencast.errors import ChecksumMismatch, OvencastError
from ovencast.forecasting.families.global_fits import LIGHTGBM, GlobalFits, ServingRef
from ovencast.forecasting.frame import CLOSED, DATE, PRODUCT, Y
from ovencast.forecasting.global_stage import (
    final_cutoffs,
    needs_global_stage,
    train_tenant_models,
    weigh_partner,
)
from ovencast.forecasting.selection import AUTO
from ovencast.observability.logs import get_logger
from ovencast.observability.metrics import CHECKSUM_FAILURES
from ovencast.settings import Settings
from ovencast.sources.base import DataSource
from ovencast.store import StoredArtifact, artifact_key, store_for, unique_key
from ovencast.training.dask_stage import dask_trainer
from ovencast.training.data import TenantData, load_and_validate
from ovencast.training.fitting import plan_candidates
from ovencast.training.plan import FitPlan

log = get_logger(__name__)

# The "product" component of the key of a job's global-models artifact:
# <tenant>/global-models-<digest>/lightgbm/v<job id>-<random>.json
GLOBAL_MODELS_KEY = "global-models"
# ... and of its serving copy: <tenant>/serving-models-<digest>/lightgbm/v<job id>-<random>.json
SERVING_MODELS_KEY = "serving-models"
MAX_STAGE_THREADS = 8


async def load_tenant_data(source: DataSource, tenant: Tenant, job: TrainingJob, *,
                           settings: Settings) -> TenantData | None:
    """For a job of some products only whose choice uses the global model: every product
    of the tenant (the model is the tenant's, whichever products a job retrains). None
    when not needed, or when it cannot be had (the job's products alone then)."""
    if not job.products or not needs_global_stage(job.models):
        return None
    try:
        return await load_and_validate(source, tenant, settings=settings, until=job.until,
                                       products=None)
    except OvencastError as exc:  # e.g. the sales service: the job's products alone
        log.warning("training.global.products_only", job_id=job.id, reason=exc.message)
        return None


async def train_global_models(tenant: Tenant, job: TrainingJob,
                              histories: dict[str, pd.DataFrame],
                              regressors: tuple[str, ...], settings: Settings,
                              tenant_data: TenantData | None,
                              classes: Mapping[str, str] | None = None
                              ) -> tuple[bytes, dict[str, Any]] | str | None:
    """Train the global models for all trainable products (`histories`, plus the other
    valid products of `tenant_data`) and store them; for a large tenant under `auto`
    (`classes`: each trainable product's class), weigh the blend partner too
    (`_weigh_partner`). Returns the payload (what the tasks carry) and the job's record
    of it; None when the job's model choice uses no global model; a warning when they
    could not be trained or stored (the "lightgbm" candidate then trains on each product
    alone)."""
    if not histories or not needs_global_stage(job.models):
        return None
    try:
        tenant_histories = _tenant_histories(histories, regressors, tenant_data)
        fits = await asyncio.to_thread(_train, tenant_histories, regressors,
                                       list(histories), settings)
        fits = await asyncio.to_thread(_weigh_partner, fits, histories, classes or {},
                                       tenant, job, regressors, settings)
        fits, payload, artifact = await asyncio.to_thread(_store, fits, tenant, job,
                                                          histories, settings)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        log.warning("training.global.failed", job_id=job.id, reason=reason)
        return (f"the tenant's global model could not be trained or stored ({reason}); "
                "lightgbm was fitted per product instead")
    engine = "dask" if settings.dask_scheduler_address else "local"
    log.info("training.global.finished", job_id=job.id, products=len(tenant_histories),
             boosters=len(fits.boosters), seconds=round(fits.seconds, 2), engine=engine)
    return payload, {**fits.summary(), "engine": engine, "key": artifact.key,
                     "sha256": artifact.sha256}


def _store(fits: GlobalFits, tenant: Tenant, job: TrainingJob,
           histories: Mapping[str, pd.DataFrame], settings: Settings
           ) -> tuple[GlobalFits, bytes, StoredArtifact]:
    """Store the serving copy of `fits` (the final cut-offs' boosters), then `fits`
    naming it: (those fits, their payload, their artifact). Nothing is left behind when
    either save fails."""
    store = store_for(settings)
    copy = fits.serving_copy(final_cutoffs(histories))
    serving = store.save(unique_key(artifact_key(tenant.name, SERVING_MODELS_KEY, LIGHTGBM,
                                                 job.id)), copy.to_bytes())
    try:
        fits = fits.with_serving(ServingRef(serving.key, serving.sha256,
                                            tuple(sorted(copy.boosters))))
        payload = fits.to_bytes()
        artifact = store.save(unique_key(artifact_key(tenant.name, GLOBAL_MODELS_KEY,
                                                      LIGHTGBM, job.id)), payload)
    except BaseException:
        store.delete(serving.key)
        raise
    return fits, payload, artifact


def stage_threads() -> int:
    """Threads of the tenant stage (boosters, the partner's weighing): one per core, at
    most `MAX_STAGE_THREADS`. Not `MAX_CONCURRENT_TRAINING_JOBS`, which bounds the
    products a process trains at once (SPEC): nothing else of the job runs before the
    stage ends, and a service worker run with 1 would train on one core (measured:
    docs/BENCHMARKS.md, "Scale, service shape"). Threads beyond the cores add no speed
    (one OpenMP thread per booster), only one more booster's dataset in memory (bounded
    by GLOBAL_MODEL_MAX_ROWS)."""
    return max(1, min(os.cpu_count() or 1, MAX_STAGE_THREADS))


def _train(histories: dict[str, pd.DataFrame], regressors: tuple[str, ...],
           cutoffs_for: list[str], settings: Settings) -> GlobalFits:
    """The stage's boosters: on the Dask cluster of DASK_SCHEDULER_ADDRESS when set
    (training/dask_stage.py), else in threads of this process."""
    with dask_trainer(settings.dask_scheduler_address) as trainer:
        return train_tenant_models(histories, regressors, cutoffs_for=cutoffs_for,
                                   workers=stage_threads(), trainer=trainer,
                                   max_rows=settings.global_model_max_rows or None)


def _weigh_partner(fits: GlobalFits, histories: Mapping[str, pd.DataFrame],
                   classes: Mapping[str, str], tenant: Tenant, job: TrainingJob,
                   regressors: tuple[str, ...], settings: Settings) -> GlobalFits:
    """`fits` with the blend partner's tenant-wide weight when the job trains at least
    TENANT_BLEND_MIN_PRODUCTS regular products under `auto` (each with a partner to
    blend); else unchanged. The candidates are those a product's fit would build
    (`fitting.plan_candidates`: the tenant's regressors, country and holidays)."""
    if tuple(job.models) != (AUTO,):
        return fits
    regular: dict[str, pd.DataFrame] = {}
    plan: FitPlan | None = None
    for product, history in histories.items():
        product_plan = FitPlan(families=(AUTO,), product_class=classes.get(product, ""),
                               country=tenant.country, subdivision=tenant.subdivision,
                               regressors=regressors,
                               time_limit_s=settings.max_training_time_seconds)
        if product_plan.candidates.blend_for(product_plan.product_class) is not None:
            regular[product], plan = history, product_plan
    if plan is None or len(regular) < settings.tenant_blend_min_products:
        return fits
    candidates = {c.name: c for c in plan_candidates(plan)}
    preferred = plan.candidates.preferred_for(plan.product_class)
    partner = plan.candidates.blend_for(plan.product_class)
    if preferred not in candidates or partner not in candidates:
        return fits
    weighed = weigh_partner(fits, regular, preferred=candidates[preferred],
                            partner=candidates[partner], holdout=plan.holdout,
                            backtest=plan.backtest,
                            workers=stage_threads())
    log.info("training.global.partner", job_id=job.id, regular=len(regular),
             **(weighed.partner.to_dict() if weighed.partner else {"weight": None}))
    return weighed


def _tenant_histories(histories: dict[str, pd.DataFrame], regressors: tuple[str, ...],
                      tenant_data: TenantData | None) -> dict[str, pd.DataFrame]:
    """The job's products, and every other product of `tenant_data` that passes
    validation (same cut-off date, the job's regressor columns). If the other products
    lack one of the job's regressors there, the job's products alone."""
    found = dict(histories)
    if tenant_data is None:
        return found
    columns = [DATE, Y, CLOSED, *regressors]
    if any(column not in tenant_data.frame.columns for column in columns):
        return found
    for product, rows in tenant_data.frame.groupby(PRODUCT):
        name = str(product)
        if name not in found and not tenant_data.report.errors_for(name) and not rows.empty:
            found[name] = rows[columns].reset_index(drop=True)
    return found


def global_models_key(job: TrainingJob) -> tuple[str, str] | None:
    """Where the job stored its global models: (artifact key, sha256); None when it has
    none."""
    record = job.global_models or {}
    if not record.get("key"):
        return None
    return str(record["key"]), str(record["sha256"])


def load_stored_models(key: str, sha256: str, settings: Settings, *, job_id: int
                       ) -> bytes | None:
    """The global models stored under `key`, checksum verified; None (logged) when they
    are refused or gone."""
    try:
        return store_for(settings).load(key, expected_sha256=sha256)
    except (OvencastError, ValueError, OSError) as exc:  # ValueError: not this store's key
        if isinstance(exc, ChecksumMismatch):
            CHECKSUM_FAILURES.inc()
        log.warning("training.global.unavailable", job_id=job_id, reason=str(exc))
        return None


def retire(job: TrainingJob, settings: Settings) -> None:
    """After the job's end has committed (`jobs.service.mark_job_artifacts_retired`):
    delete its global-models artifact, and its serving copy when no product was trained
    (no version refers to it). Idempotent; a failure only leaves the file behind
    (logged)."""
    record = job.global_models or {}
    if not record.get("retired"):
        return
    serving = record.get("serving") or {}
    _delete(settings, job.id, [record.get("key"),
                               serving.get("key") if serving.get("retired") else None])


def discard(record: Mapping[str, Any] | None, settings: Settings, *, job_id: int) -> None:
    """Delete what one preparation's stage stored (`record`: its global models and their
    serving copy, as `train_global_models` returned it) when that preparation is not the
    job's: another delivery of the task prepared the job, the job was cancelled meanwhile,
    or the preparation failed. No run or version refers to them. A failure only leaves
    them behind (logged)."""
    record = record or {}
    _delete(settings, job_id, [record.get("key"), (record.get("serving") or {}).get("key")])


def _delete(settings: Settings, job_id: int, keys: list[Any]) -> None:
    for key in filter(None, keys):
        try:
            store_for(settings).delete(key)
        except (OvencastError, ValueError, OSError) as exc:
            log.warning("training.global.not_deleted", job_id=job_id, key=key,
                        reason=str(exc))
