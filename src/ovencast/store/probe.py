"""Is the model store reachable and writable? `check_store` writes one small object
under `_probe/`, reads it back checksum-verified and deletes it: what `/ready` and
`ovencast db check` report.

A readiness probe calls this every few seconds; `StoreProbe` keeps a good answer for
`ttl_s` (an object store then sees three requests per pod per half minute, not per
probe) and never keeps a bad one, so a store that comes back is seen at once.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

from ovencast.store.base import ModelStore

PROBE_PREFIX = "_probe"


@dataclass(frozen=True)
class StoreCheck:
    uri: str
    ok: bool
    # "writable", or what failed: "write failed: PermissionError: ..."
    detail: str


def check_store(store: ModelStore) -> StoreCheck:
    """Write, read back (verified) and delete a probe object. Never raises."""
    key = f"{PROBE_PREFIX}/{uuid.uuid4().hex}"
    payload = f"ovencast store probe {key}".encode()
    step = "write"
    try:
        stored = store.save(key, payload)
        step = "read"
        if store.load(stored.key, expected_sha256=stored.sha256) != payload:
            return StoreCheck(store.root_uri, False, "read failed: other bytes came back")
        step = "delete"
        store.delete(stored.key)
    except Exception as exc:  # the answer is the error, whatever it is
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return StoreCheck(store.root_uri, False, f"{step} failed: {message}")
    return StoreCheck(store.root_uri, True, "writable")


class StoreProbe:
    """`check_store` with a good answer kept for `ttl_s` seconds (thread-safe)."""

    def __init__(self, store: ModelStore, *, ttl_s: float = 30.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._good: tuple[float, StoreCheck] | None = None

    def check(self) -> StoreCheck:
        with self._lock:
            if self._good is not None and time.monotonic() - self._good[0] < self.ttl_s:
                return self._good[1]
        result = check_store(self.store)
        with self._lock:
            self._good = (time.monotonic(), result) if result.ok else None
        return result
