"""SHA-256 digests of model artifacts.

The digest is computed by the store on save, recorded in the database by the caller and
checked by the store on every load. Digests are lowercase hexadecimal strings of 64
characters, the form `hashlib.sha256(...).hexdigest()` produces.
"""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO

SHA256_HEX_LENGTH = 64
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Large enough to keep syscall overhead negligible, small enough to stay cache-friendly.
_READ_CHUNK_BYTES = 1 << 20


def sha256_hex(data: bytes | bytearray | memoryview) -> str:
    """Lowercase hex SHA-256 digest of `data`."""
    return hashlib.sha256(data).hexdigest()


def sha256_stream(stream: BinaryIO, *, chunk_bytes: int = _READ_CHUNK_BYTES) -> str:
    """Lowercase hex SHA-256 digest of everything left in `stream`, read in chunks so a
    large file never has to be held in memory at once."""
    digest = hashlib.sha256()
    while chunk := stream.read(chunk_bytes):
        digest.update(chunk)
    return digest.hexdigest()


def is_sha256_hex(value: str) -> bool:
    """True when `value` is a well-formed digest as returned by `sha256_hex`
    (64 hex characters; upper case is accepted)."""
    return _SHA256_HEX.fullmatch(value.lower()) is not None
