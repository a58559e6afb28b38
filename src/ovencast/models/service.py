"""Recording, listing, activating and loading model versions."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.db.tables import ModelVersion, Tenant
from ovencast.errors import ChecksumMismatch, Conflict, ModelNotFound
from ovencast.models import repository
from ovencast.observability.logs import get_logger
from ovencast.observability.metrics import CHECKSUM_FAILURES
from ovencast.store.base import ModelStore, StoredArtifact

if TYPE_CHECKING:
    from ovencast.forecasting.families import ForecastModel

log = get_logger(__name__)


@dataclass(frozen=True)
class NewVersion:
    """What a finished training hands over to be recorded."""

    product: str
    family: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    baseline_metrics: dict[str, Any]
    details: dict[str, Any]
    regressors: list[str]
    data_start: date
    data_end: date
    library_versions: dict[str, str]
    training_job_id: int | None


MAX_CHALLENGERS = 2
"""Challengers kept per product: a newer one retires the oldest (each forecasts in shadow
in every saved run, so each costs a forecast per run)."""


async def record_version(session: AsyncSession, tenant: Tenant, new: NewVersion,
                         artifact: StoredArtifact, *, version: int,
                         versioning_enabled: bool, activate: bool = True,
                         challenger: bool = False,
                         promotion: dict[str, Any] | None = None) -> ModelVersion:
    """Record `new` and make it the active version of its product (`activate`), or keep
    it beside the active one: as a `challenger` (the promotion gate found it worse, or
    the job said never to activate), or retired (a cancelled job's late product).
    `promotion`: how the gate decided (training/promotion.py), stored with it.

    With versioning enabled a new row is added and the previous active one deactivated
    (kept for roll-back). With versioning disabled the active row is overwritten in place
    (the store keeps the replaced artifact as a backup when backups are enabled)."""
    fields = dict(
        family=new.family, params=new.params, metrics=new.metrics,
        baseline_metrics=new.baseline_metrics, details=new.details,
        regressors=new.regressors, artifact_key=artifact.key, sha256=artifact.sha256,
        size_bytes=artifact.size_bytes, data_start=new.data_start, data_end=new.data_end,
        library_versions=new.library_versions, training_job_id=new.training_job_id,
        promotion=promotion)
    await repository.lock_product(session, tenant.id, new.product)
    if not activate:
        row = await repository.add(session, ModelVersion(
            tenant_id=tenant.id, product=new.product, version=version, is_active=False,
            is_challenger=challenger, **fields))
        if challenger:
            await _retire_old_challengers(session, tenant, new.product)
        return row
    if not versioning_enabled:
        current = await repository.get_version(session, tenant.id, new.product, version)
        if current is not None:
            for key, value in fields.items():
                setattr(current, key, value)
            current.is_active = True
            await session.flush()
            return current
    await repository.deactivate_all(session, tenant.id, new.product)
    row = ModelVersion(tenant_id=tenant.id, product=new.product, version=version,
                       is_active=True, **fields)
    return await repository.add(session, row)


async def list_versions(session: AsyncSession, tenant: Tenant, *, product: str | None = None
                        ) -> Sequence[ModelVersion]:
    return await repository.list_versions(session, tenant.id, product=product)


async def activate(session: AsyncSession, tenant: Tenant, product: str, version: int
                   ) -> ModelVersion:
    """Roll back or forward: make `version` the active one. Concurrent activations of one
    product take turns (the last one wins); a race the database still refuses is a
    `Conflict`, never a server error."""
    await repository.lock_product(session, tenant.id, product)
    row = await repository.get_version(session, tenant.id, product, version)
    if row is None:
        raise ModelNotFound(f"no version {version} of product {product!r} for tenant "
                            f"{tenant.name!r}")
    try:
        await repository.deactivate_all(session, tenant.id, product)
        row.is_active, row.is_challenger = True, False
        await session.flush()
    except IntegrityError:
        raise Conflict(f"{product!r} is being activated by another request; try again"
                       ) from None
    log.info("model.activated", tenant=tenant.name, product=product, version=version)
    return row


async def trained_past_their_data(session: AsyncSession, tenant: Tenant) -> list[str]:
    """One warning per group of products whose active version was trained on sales the
    tenant no longer has (an import undone or replaced): such a version forecasts only
    the days after its own data, so the tenant's next days are refused until it is
    retrained or an earlier version is activated."""
    groups: dict[tuple[date, date | None], list[str]] = {}
    for product, data_end, last in await repository.active_past_sales(session, tenant.id):
        groups.setdefault((data_end, last), []).append(product)
    return [f"{', '.join(products)}: the active version was trained on sales up to "
            f"{data_end.isoformat()}, and "
            + (f"the sales now end {last.isoformat()}" if last else "no sales are left")
            + ": it forecasts only the days after its own data; retrain (ovencast train) "
            "or activate a version trained on the data there is (ovencast activate)"
            for (data_end, last), products in groups.items()]


async def _retire_old_challengers(session: AsyncSession, tenant: Tenant, product: str
                                  ) -> None:
    challengers = await repository.list_challengers(session, tenant.id, products=[product])
    for old in challengers[MAX_CHALLENGERS:]:
        old.is_challenger = False
        log.info("model.challenger_retired", tenant=tenant.name, product=product,
                 version=old.version)
    await session.flush()


async def list_challengers(session: AsyncSession, tenant: Tenant, *,
                           products: Sequence[str] | None = None) -> Sequence[ModelVersion]:
    return await repository.list_challengers(session, tenant.id, products=products)


# Deserialised models by the SHA-256 of their artifact: a forecast request re-reads and
# re-checks the bytes every time (cheap), but parses them (JSON, LightGBM's model text:
# the expensive part) once per process. Thread-safe: forecasts run in threads.
MODEL_CACHE_SIZE = 256
_models: OrderedDict[str, ForecastModel] = OrderedDict()
_models_lock = threading.Lock()


def _verified_bytes(store: ModelStore, version: ModelVersion, key: str, sha256: str
                    ) -> bytes:
    """`key`'s bytes (the version's artifact, or one it refers to), checksum verified; a
    mismatch is logged, counted and re-raised naming the version."""
    try:
        return store.load(key, expected_sha256=sha256)
    except ChecksumMismatch as exc:
        CHECKSUM_FAILURES.inc()
        log.error("model.checksum_failed", product=version.product, version=version.version,
                  key=key, error=str(exc))
        raise ChecksumMismatch(
            f"product {version.product!r} version {version.version}: {exc}") from exc


def load_verified(store: ModelStore, version: ModelVersion) -> ForecastModel:
    """Load an artifact; the store verifies the SHA-256 recorded in the database before a
    single byte is deserialised, on every call. A mismatch is logged, counted and
    re-raised; so are those of the artifacts a model refers to (a job's serving boosters).
    The deserialised model is shared by every call with the same digest (read only:
    predicting never changes a model)."""
    payload = _verified_bytes(store, version, version.artifact_key, version.sha256)
    digest = version.sha256.lower()
    with _models_lock:
        if digest in _models:
            _models.move_to_end(digest)
            return _models[digest]
    # Imported here: listing or activating versions (`ovencast models`) needs no model
    # family, and the families import pandas and the forecasting stack (0.6 s).
    from ovencast.forecasting.families.registry import load_model

    def stored(key: str, sha256: str) -> bytes:
        return _verified_bytes(store, version, key, sha256)

    model = load_model(payload, stored=stored)
    with _models_lock:
        _models[digest] = model
        while len(_models) > MODEL_CACHE_SIZE:
            _models.popitem(last=False)
    return model
