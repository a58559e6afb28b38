"""Model artifact store: checksummed, atomically written, optionally backed-up payloads.

Usage::

    store = store_for(settings)  # open_store(MODEL_STORAGE_PATH, backup_enabled=...)
    stored = store.save(artifact_key(tenant, product, family, version), model.to_bytes())
    # record stored.key (relative to the store, so the store can move) and stored.sha256
    # in the database, then later:
    payload = store.load(key, expected_sha256=recorded_sha256)  # verified bytes
"""

from ovencast.store.base import (
    BACKUP_PREFIX,
    ModelStore,
    StoredArtifact,
    artifact_key,
    unique_key,
    validate_key,
)
from ovencast.store.checksum import sha256_hex, sha256_stream
from ovencast.store.fs import FsspecModelStore, open_store, store_for

__all__ = [
    "BACKUP_PREFIX",
    "FsspecModelStore",
    "ModelStore",
    "StoredArtifact",
    "artifact_key",
    "open_store",
    "sha256_hex",
    "sha256_stream",
    "store_for",
    "unique_key",
    "validate_key",
]
