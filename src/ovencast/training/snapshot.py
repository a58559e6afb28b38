"""A job's data snapshot: every product trains on the data the job validated.

Preparing a job loads and validates the tenant's data once. The embedded shape hands each
product's history to the pool in memory. The service shape's workers get ids only, and the
tenant's data may change while the job runs (an upload between two products): so the
preparing worker stores each trainable product's validated history in the artifact store
(`<tenant>/job-data/v<job>/<product>-<random>.parquet`, its key and SHA-256 on the
run), and a worker reads that, checksum verified, instead of the tables. The job records
the tenant's data version (its newest import) it was prepared from. The snapshot is deleted with the
job's other artifacts once every run has ended (`training/job_artifacts.py`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ovencast.db.tables import TrainingJob
from ovencast.errors import OvencastError
from ovencast.observability.logs import get_logger
from ovencast.settings import Settings
from ovencast.store import store_for
from ovencast.store.base import job_data_key, job_data_prefix, unique_key

log = get_logger(__name__)


def to_bytes(history: pd.DataFrame) -> bytes:
    """Parquet: typed columns (dates, floats, booleans) round-trip exactly, compressed."""
    buffer = io.BytesIO()
    history.to_parquet(buffer, index=False)
    return buffer.getvalue()


def from_bytes(payload: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(payload))


def save_histories(settings: Settings, tenant: str, job_id: int,
                   histories: dict[str, pd.DataFrame]) -> dict[str, dict[str, str]]:
    """Store each product's history under a key of this preparation's own (under the
    job's prefix); product -> {"key", "sha256"} (recorded on its run). Two preparations
    of one job (a retry after a database error, or a preparation taken as stalled while
    it ran) never touch each other's files; what a failed save stored is deleted."""
    store = store_for(settings)
    records: dict[str, dict[str, str]] = {}
    try:
        for product, history in histories.items():
            stored = store.save(unique_key(job_data_key(tenant, job_id, product)),
                                to_bytes(history))
            records[product] = {"key": stored.key, "sha256": stored.sha256}
    except BaseException:
        discard_saved(settings, records, job_id)
        raise
    return records


def record(tenant: str, job_id: int, data_version: int | None, *, stored: bool
           ) -> dict[str, Any]:
    """What the job keeps: the data version and, when histories were stored, their
    prefix."""
    found: dict[str, Any] = {"data_version": data_version}
    if stored:
        found["prefix"] = job_data_prefix(tenant, job_id)
    return found


def load_history(settings: Settings, run_record: dict[str, Any]) -> pd.DataFrame:
    """The run's history as the job validated it; raises `ChecksumMismatch` or
    `ArtifactMissing` (the run then fails with the reason)."""
    payload = store_for(settings).load(run_record["key"], expected_sha256=run_record["sha256"])
    return from_bytes(payload)


def retire(job: TrainingJob, settings: Settings) -> None:
    """After the job's end has committed (`jobs.service.mark_job_artifacts_retired`):
    delete its stored histories. Idempotent; a failure only leaves files behind (logged)."""
    found = job.data_snapshot or {}
    if found.get("retired") and found.get("prefix"):
        _delete(settings, job.id, prefix=found["prefix"])


def discard(settings: Settings, tenant: str, job_id: int) -> None:
    """Delete every preparation's files of a job that none prepared (it failed)."""
    _delete(settings, job_id, prefix=job_data_prefix(tenant, job_id))


def discard_saved(settings: Settings, records: dict[str, dict[str, str]], job_id: int
                  ) -> None:
    """Delete one preparation's files (`save_histories`' records): it found the job
    cancelled, or prepared by another preparation whose runs read their own files."""
    _delete(settings, job_id, keys=[record["key"] for record in records.values()])


def _delete(settings: Settings, job_id: int, *, prefix: str | None = None,
            keys: Sequence[str] = ()) -> None:
    """Delete what lies under `prefix`, or `keys`; a failure only leaves files behind
    (logged)."""
    store = store_for(settings)
    try:
        for key in (store.list(prefix) if prefix is not None else keys):
            store.delete(key)
    except (OvencastError, ValueError, OSError) as exc:
        log.warning("training.snapshot.not_deleted", job_id=job_id, reason=str(exc))
