"""The model artifact store: the interface, its guarantees, and artifact keys.

A store keeps opaque byte payloads (serialised models) under *keys* and hands out *uris*.
It holds no database code: the caller records `StoredArtifact.key` (relative to the
store's root, so that a store moved elsewhere keeps working) and `StoredArtifact.sha256`
in the database and passes both back to `load`.

Guarantees of every `ModelStore` (checked by the contract suite in `tests/store`):

- **Atomic save.** A reader sees either the previous artifact under a key or the
  complete new one, never a half-written one. A crash (exception, SIGKILL, power loss)
  in the middle of `save` leaves the previous artifact under that key intact and
  loadable; no partial payload is ever visible under a key or in `list`.
- **Verified load.** `load` checks the SHA-256 of the bytes against the expected digest
  on every call and raises `ChecksumMismatch` instead of returning bytes that do not
  match, so nothing unverified can reach a deserialiser. A missing artifact raises
  `ArtifactMissing`.
- **Backups.** With `backup_enabled`, saving over an existing artifact first copies the
  old one to `backups/<key>/<UTC timestamp>` (a copy, so a crash in between never loses
  the original) and reports that copy's uri in `StoredArtifact.replaced_backup_uri`.
- **Safe keys.** Keys are relative, `/`-separated paths of components made of
  `[A-Za-z0-9._-]` that start with a letter, digit or `_` (so no `.`/`..`, no hidden
  names, no absolute paths, no backslashes); anything else is a `ValueError`. The
  top-level `backups/` prefix is reserved for backups and cannot be saved to directly.

Concurrent saves to one key are each atomic; the last one to finish wins. (Training
holds a per-(tenant, product) lock, and versioned keys differ anyway.)
"""

from __future__ import annotations

import builtins
import hashlib
import re
import unicodedata
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import final

import structlog

from ovencast.errors import ArtifactMissing, ChecksumMismatch
from ovencast.store.checksum import is_sha256_hex, sha256_hex

log = structlog.get_logger(__name__)

BACKUP_PREFIX = "backups"
MAX_KEY_LENGTH = 1024  # the S3 limit; local filesystems allow more
MAX_COMPONENT_LENGTH = 255  # the usual file-name limit of local filesystems
_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
# Length of the digest suffix that keeps sanitised names apart ("Brot/Weiß" and
# "Brot Weiß" both slugify to "brot-weiss").
_NAME_HASH_LENGTH = 10
_MAX_SLUG_LENGTH = 48


@dataclass(frozen=True, slots=True)
class StoredArtifact:
    """What `ModelStore.save` wrote. Record `key` and `sha256` in the database; `uri`
    says where it is now, for people."""

    key: str
    uri: str
    sha256: str
    size_bytes: int
    # Where the artifact that this save replaced was copied to; None when nothing was
    # replaced or backups are disabled.
    replaced_backup_uri: str | None = None


def validate_key(key: str) -> str:
    """Return `key` unchanged if it is a safe store key, else raise `ValueError` saying
    what is wrong with it (see the module docstring for the rules)."""
    if not isinstance(key, str):
        raise ValueError(f"store key must be a string, got {type(key).__name__}")
    if not key:
        raise ValueError("store key must not be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"store key is {len(key)} characters long, at most {MAX_KEY_LENGTH}")
    if key.startswith("/") or "://" in key or re.match(r"[A-Za-z]:", key):
        raise ValueError(f"store key {key!r} must be a relative path, not absolute or a URL")
    if "\\" in key:
        raise ValueError(f"store key {key!r} must use '/' as separator, not '\\'")
    for component in key.split("/"):
        if component in ("", ".", ".."):
            raise ValueError(
                f"store key {key!r} has an empty, '.' or '..' path component; "
                "keys are plain relative paths like 'tenant/product/family/v000001.json'"
            )
        if len(component) > MAX_COMPONENT_LENGTH:
            raise ValueError(
                f"store key {key!r} has a component longer than {MAX_COMPONENT_LENGTH}"
            )
        if not _COMPONENT.fullmatch(component):
            raise ValueError(
                f"store key {key!r} has an unsafe component {component!r}: components use "
                "only letters, digits, '.', '_' and '-', and start with a letter, digit or '_'"
            )
    return key


def validate_prefix(prefix: str) -> str:
    """Return `prefix` unchanged if it can start a valid key ('' and a trailing '/' are
    allowed), else raise `ValueError`."""
    if prefix == "":
        return prefix
    # A prefix may end after a "/" ("acme/") or in the middle of a component ("acme/cro").
    validate_key(prefix.removesuffix("/"))
    return prefix


def is_backup_key(key: str) -> bool:
    """True for keys under the reserved `backups/` prefix."""
    return key == BACKUP_PREFIX or key.startswith(BACKUP_PREFIX + "/")


def backup_key(key: str, at: datetime) -> str:
    """Key of the backup of `key` taken at `at` (timezone-aware):
    `backups/<key>/<YYYYmmddTHHMMSSffffff>Z`, so that listing `backups/<key>/` gives the
    backups of one key in time order."""
    if at.tzinfo is None:
        raise ValueError("backup timestamp must be timezone-aware")
    stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return validate_key(f"{BACKUP_PREFIX}/{key}/{stamp}")


def artifact_key(
    tenant: str, product: str, family: str, version: int, *, extension: str = "json"
) -> str:
    """The stable key of one model version:
    `<tenant>/<product>/<family>/v<version, 6 digits>.<extension>`.

    Tenant and product names are free text (they come from uploaded data), so each is
    turned into an ASCII slug plus the first 10 hex digits of the SHA-256 of the exact
    name: readable, the same on every call, and distinct for distinct names even when
    their slugs agree ('Brot Weiß' -> 'brot-weiss-<digest>'). `family` and `extension`
    are code identifiers and must already be safe key components.
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"model version must be an integer >= 1, got {version!r}")
    for what, value in (("model family", family), ("extension", extension)):
        if not _COMPONENT.fullmatch(value) or "." in value:
            raise ValueError(f"{what} {value!r} is not a safe key component")
    tenant_part, product_part = _name_component(tenant), _name_component(product)
    return validate_key(f"{tenant_part}/{product_part}/{family}/v{version:06d}.{extension}")


JOB_DATA = "job-data"
"""The second component of a job's data-snapshot keys (never a product's: product
components end in a digest or start with '_')."""


def job_data_prefix(tenant: str, job_id: int) -> str:
    """`<tenant>/job-data/v<job id, 6 digits>/`: the prefix of one job's data snapshot."""
    if isinstance(job_id, bool) or not isinstance(job_id, int) or job_id < 1:
        raise ValueError(f"job id must be an integer >= 1, got {job_id!r}")
    return validate_prefix(f"{_name_component(tenant)}/{JOB_DATA}/v{job_id:06d}/")


def job_data_key(tenant: str, job_id: int, product: str) -> str:
    """`<tenant>/job-data/v<job id>/<product>.parquet`: one product's history as the job
    validated it (training/snapshot.py)."""
    return validate_key(f"{job_data_prefix(tenant, job_id)}{_name_component(product)}.parquet")


def unique_key(key: str) -> str:
    """`.../v000003.json` -> `.../v000003-<random>.json`: every save gets a fresh key, so
    a save never overwrites the artifact a database row still points at."""
    stem, dot, extension = key.rpartition(".")
    return validate_key(f"{stem}-{uuid.uuid4().hex[:12]}{dot}{extension}")


def _name_component(name: str) -> str:
    if not name or not name.strip():
        raise ValueError("tenant and product names must not be empty")
    folded = unicodedata.normalize("NFKD", name.casefold())
    ascii_only = folded.encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_only).strip("-")[:_MAX_SLUG_LENGTH].strip("-")
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:_NAME_HASH_LENGTH]
    return f"{slug}-{digest}" if slug else f"_{digest}"


class ModelStore(ABC):
    """Keeps model artifacts under safe keys; see the module docstring for the guarantees.

    The public methods are implemented here once, so that key validation, checksum
    verification and the backup-before-replace order are the same for every backend.
    A backend implements the `_`-prefixed primitives, whose contracts are stated on each.
    Every public method that takes a `uri` also accepts the bare key; an unsafe key or a
    uri outside this store is a `ValueError`.
    """

    def __init__(self, *, backup_enabled: bool = True) -> None:
        self.backup_enabled = backup_enabled

    # -- public API -------------------------------------------------------------------
    @property
    @abstractmethod
    def root_uri(self) -> str:
        """The location of the store, e.g. `file:///srv/ovencast/models`."""

    @abstractmethod
    def uri_for(self, key: str) -> str:
        """The uri of `key` in this store (validates the key)."""

    @abstractmethod
    def key_for(self, uri: str) -> str:
        """The key of `uri`; a bare key is returned validated. `ValueError` if `uri` is not
        inside this store."""

    @final
    def save(self, key: str, payload: bytes) -> StoredArtifact:
        """Store `payload` under `key` atomically and return its uri, SHA-256 and size.

        If an artifact already exists under `key` and backups are enabled, it is copied
        to a backup key first; its uri is in `replaced_backup_uri`. If the write fails,
        the previous artifact is left as it was (and the just-made backup is removed).
        """
        validate_key(key)
        if is_backup_key(key):
            raise ValueError(f"store key {key!r} is under the reserved prefix '{BACKUP_PREFIX}/'")
        payload = bytes(payload)
        digest = sha256_hex(payload)

        backup: str | None = None
        if self.backup_enabled and self._exists(key):
            backup = self._free_backup_key(key)
            # Copy, never move: until the new payload is in place, the old artifact must
            # stay where the database says it is.
            self._copy(key, backup)
        try:
            self._put_atomic(key, payload)
        except BaseException:
            if backup is not None:
                self._delete_quietly(backup)
            raise
        if backup is not None:
            log.info("store.artifact.backed_up", key=key, backup_uri=self.uri_for(backup))
        return StoredArtifact(
            key=key,
            uri=self.uri_for(key),
            sha256=digest,
            size_bytes=len(payload),
            replaced_backup_uri=self.uri_for(backup) if backup is not None else None,
        )

    @final
    def retire(self, uri: str, *, keep_backup: bool) -> str | None:
        """Take a replaced artifact out of service: with `keep_backup`, move it under the
        backup prefix and return the backup's uri; otherwise delete it. Call this only
        after the database no longer points at `uri`."""
        key = self.key_for(uri)
        if not self._exists(key):
            return None
        backup: str | None = None
        if keep_backup:
            backup = self._free_backup_key(key)
            self._copy(key, backup)
            log.info("store.artifact.backed_up", key=key, backup_uri=self.uri_for(backup))
        self._delete(key)
        return self.uri_for(backup) if backup is not None else None

    @final
    def load(self, uri: str, *, expected_sha256: str) -> bytes:
        """The bytes at `uri`, only if their SHA-256 equals `expected_sha256` (the digest
        recorded in the database; compared case-insensitively).

        Raises `ChecksumMismatch` (naming the uri, the expected and the actual digest) on
        a mismatch and `ArtifactMissing` if nothing is stored there. A malformed
        `expected_sha256` is a `ValueError`: it can never match anything.
        """
        if not is_sha256_hex(expected_sha256):
            raise ValueError(f"expected_sha256 must be 64 hex characters, got {expected_sha256!r}")
        key = self.key_for(uri)
        payload = self._get(key)
        actual = sha256_hex(payload)
        expected = expected_sha256.lower()
        if actual != expected:
            # The message names the key, never the server's path (it reaches API clients);
            # the log has the full uri.
            log.error(
                "store.checksum.mismatch",
                uri=self.uri_for(key),
                expected_sha256=expected,
                actual_sha256=actual,
            )
            raise ChecksumMismatch(
                f"model artifact {key} failed its checksum: expected sha256 {expected}, "
                f"got {actual}; the artifact is refused"
            )
        return payload

    @final
    def exists(self, uri: str) -> bool:
        """True if an artifact is stored at `uri`."""
        return self._exists(self.key_for(uri))

    @final
    def delete(self, uri: str) -> bool:
        """Remove the artifact at `uri`. Idempotent: returns True if something was
        removed, False if nothing was there. Backups of it are kept."""
        return self._delete(self.key_for(uri))

    @final
    def list(self, prefix: str = "") -> builtins.list[str]:
        """Uris of all artifacts whose key starts with `prefix` (a plain string prefix, as
        in S3: 'acme/' lists one tenant, 'backups/' the backups), sorted by key.
        Temporary files of unfinished writes are never listed."""
        validate_prefix(prefix)
        keys = [k for k in self._list_keys(prefix) if k.startswith(prefix)]
        return [self.uri_for(k) for k in sorted(keys)]

    # -- what a backend implements ------------------------------------------------------
    @abstractmethod
    def _put_atomic(self, key: str, payload: bytes) -> None:
        """Make `payload` the content of `key`, all or nothing: until this returns, readers
        see the previous content (or nothing); if it raises or the process dies, the
        previous content stays in place and nothing partial is visible under `key`."""

    @abstractmethod
    def _get(self, key: str) -> bytes:
        """The complete content of `key`; `ArtifactMissing` if there is none."""

    @abstractmethod
    def _exists(self, key: str) -> bool:
        """True if `key` holds an artifact (a directory or prefix does not count)."""

    @abstractmethod
    def _delete(self, key: str) -> bool:
        """Remove `key`; True if it existed."""

    @abstractmethod
    def _copy(self, source: str, target: str) -> None:
        """Copy `source` to the new key `target`, atomically like `_put_atomic`."""

    @abstractmethod
    def _list_keys(self, prefix: str) -> builtins.list[str]:
        """Keys of stored artifacts, at least all that start with `prefix` (the caller
        filters). Only names that are valid keys; never temporary files."""

    # -- shared helpers -----------------------------------------------------------------
    def _free_backup_key(self, key: str) -> str:
        candidate = backup_key(key, datetime.now(UTC))
        suffix = 1
        unique = candidate
        while self._exists(unique):  # two replacements in the same microsecond
            unique = f"{candidate}-{suffix}"
            suffix += 1
        return unique

    def _delete_quietly(self, key: str) -> None:
        try:
            self._delete(key)
        except Exception as exc:  # cleanup must not hide the original error
            log.warning("store.backup.cleanup_failed", key=key, error=str(exc))


def missing(key: str) -> ArtifactMissing:
    """The error for an absent artifact, worded the same by every backend (by key: the
    message may reach an API client, the store's location must not)."""
    return ArtifactMissing(f"model artifact {key} does not exist")
