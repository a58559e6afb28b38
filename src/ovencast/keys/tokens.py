"""The API key format: `ovk_<id>_<secret>`.

`ovk_` makes a key recognisable (secret scanners, log redaction in
`observability/logs.py`); `<id>` is the row's primary key, so a key is looked up without
scanning; `<secret>` is 32 random bytes from `secrets` (256 bits), URL-safe base64.

Only `sha256(secret)` is stored. A fast hash is right here: slow password hashes (bcrypt,
argon2) exist to make guessing *low-entropy* human passwords expensive; a 256-bit random
secret cannot be guessed at any hash speed, and a slow hash would cost tens of
milliseconds of CPU on every request. Comparison is constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_PREFIX = "ovk_"
SECRET_BYTES = 32
# Characters of the secret kept in clear for display (`ovencast keys list`): 36 of 256
# bits, enough to tell keys apart, far too few to help guessing the rest.
DISPLAY_CHARS = 6
# Longer than any key we issue; a longer "key" is refused before hashing.
MAX_KEY_LENGTH = 128
MAX_KEY_ID = 2**31 - 1


@dataclass(frozen=True)
class PresentedKey:
    """A key as a client sent it, split into its parts (not yet checked)."""

    key_id: int
    secret: str


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str, stored_sha256: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_sha256)


def format_key(key_id: int, secret: str) -> str:
    return f"{KEY_PREFIX}{key_id}_{secret}"


def display_prefix(key_id: int, secret_prefix: str) -> str:
    """What a listing shows of a key: `ovk_12_AbC123...`."""
    return f"{KEY_PREFIX}{key_id}_{secret_prefix}..."


def parse_key(text: str) -> PresentedKey | None:
    """The parts of `ovk_<id>_<secret>`; None for anything else."""
    if len(text) > MAX_KEY_LENGTH or not text.startswith(KEY_PREFIX):
        return None
    id_text, separator, secret = text.removeprefix(KEY_PREFIX).partition("_")
    if not separator or not secret or not id_text.isascii() or not id_text.isdigit():
        return None
    key_id = int(id_text)
    # Beyond the id column's INTEGER no row can have it (and the driver would refuse it).
    if not 0 < key_id <= MAX_KEY_ID:
        return None
    return PresentedKey(key_id=key_id, secret=secret)
