"""API keys: create (the key is returned once, only its hash is stored), list, revoke,
and `authenticate`: a presented key -> the `Caller` the API checks."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.db.base import utcnow
from ovencast.db.tables import ApiKey
from ovencast.errors import InvalidRequest, NotFound, Unauthenticated
from ovencast.keys import repository, tokens
from ovencast.keys.access import Caller
from ovencast.keys.roles import Role
from ovencast.observability.logs import get_logger
from ovencast.tenants import service as tenants_service

log = get_logger(__name__)

# `last_used_at` is kept to this resolution: one write per key and minute at most.
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_NAME_LENGTH = 100

MISSING_KEY = "an API key is required: send `Authorization: Bearer <key>`"
INVALID_KEY = "the API key is not valid (unknown or revoked)"
SESSION_ENDED = "the console session has ended (signed out, expired or key revoked)"
# A console session names its key by id and these first characters of the key's stored
# hash: a forged session would need the database's hash as well as the server's secret.
FINGERPRINT_CHARS = 16


@dataclass(frozen=True)
class IssuedKey:
    """A key just created: `key` is the only time its secret exists outside the client."""

    row: ApiKey
    tenant: str | None
    key: str


@dataclass(frozen=True)
class KeyListing:
    """A stored key as listings show it: never its secret."""

    row: ApiKey
    tenant: str | None

    @property
    def display(self) -> str:
        return tokens.display_prefix(self.row.id, self.row.secret_prefix)


@dataclass(frozen=True)
class Revocation:
    row: ApiKey
    already: bool  # it had been revoked before


async def create_key(session: AsyncSession, *, tenant: str | None, role: Role,
                     name: str | None = None) -> IssuedKey:
    """A new key for `tenant` (None: a global key, which reaches every tenant)."""
    if name is not None and not 0 < len(name.strip()) <= MAX_NAME_LENGTH:
        raise InvalidRequest(f"a key's name must be 1-{MAX_NAME_LENGTH} characters")
    tenant_row = await tenants_service.get_tenant(session, tenant) if tenant else None
    secret = tokens.new_secret()
    row = await repository.add(session, ApiKey(
        tenant_id=tenant_row.id if tenant_row else None, role=role,
        name=name.strip() if name else None,
        secret_prefix=secret[:tokens.DISPLAY_CHARS],
        secret_sha256=tokens.hash_secret(secret)))
    log.info("api_key.created", key_id=row.id, tenant=tenant, role=str(role))
    return IssuedKey(row=row, tenant=tenant, key=tokens.format_key(row.id, secret))


async def list_keys(session: AsyncSession, *, tenant: str | None = None
                    ) -> list[KeyListing]:
    """Every key, or those of one tenant, revoked ones included, oldest first."""
    tenant_id = (await tenants_service.get_tenant(session, tenant)).id if tenant else None
    found: Sequence[tuple[ApiKey, str | None]] = await repository.list_with_tenants(
        session, tenant_id=tenant_id)
    return [KeyListing(row=row, tenant=name) for row, name in found]


async def revoke_key(session: AsyncSession, key_id: int) -> Revocation:
    """Revoke a key from now on; a key already revoked keeps its first revocation time."""
    row = await repository.get(session, key_id)
    if row is None:
        raise NotFound(f"API key {key_id} does not exist")
    if row.revoked_at is not None:
        return Revocation(row=row, already=True)
    row.revoked_at = utcnow()
    await session.flush()
    log.info("api_key.revoked", key_id=key_id)
    return Revocation(row=row, already=False)


async def authenticate(session: AsyncSession, presented: str | None) -> Caller:
    """The caller a presented key stands for; `Unauthenticated` for no key, a malformed,
    unknown or revoked one (one message for all but the missing key: nothing to learn
    about which keys exist)."""
    if not presented:
        raise Unauthenticated(MISSING_KEY)
    parsed = tokens.parse_key(presented)
    if parsed is None:
        raise Unauthenticated(INVALID_KEY)
    found = await repository.get_with_tenant(session, parsed.key_id)
    if found is None:
        raise Unauthenticated(INVALID_KEY)
    row, tenant = found
    if not tokens.secret_matches(parsed.secret, row.secret_sha256) or row.revoked_at:
        raise Unauthenticated(INVALID_KEY)
    return await _used(session, row, tenant)


async def _used(session: AsyncSession, row: ApiKey, tenant: str | None) -> Caller:
    now = utcnow()
    await repository.touch(session, row.id, now=now, older_than=now - LAST_USED_RESOLUTION)
    return Caller(key_id=row.id, role=row.role, tenant_id=row.tenant_id, tenant=tenant)


@dataclass(frozen=True)
class SignedIn:
    """A key presented at the console's sign-in: the caller, and the fingerprint its
    session carries (console/session.py)."""

    caller: Caller
    fingerprint: str


async def sign_in(session: AsyncSession, presented: str | None) -> SignedIn:
    """`authenticate`, for a console session: also the key's fingerprint."""
    caller = await authenticate(session, presented)
    row = await repository.get(session, caller.key_id)
    assert row is not None  # authenticate just found it
    return SignedIn(caller=caller, fingerprint=row.secret_sha256[:FINGERPRINT_CHARS])


async def resume(session: AsyncSession, key_id: int, fingerprint: str) -> Caller:
    """The caller of a console session (its signature already checked): the key must
    still exist, be unrevoked and match the fingerprint; else `Unauthenticated`. A key
    revoked ends its sessions at their next request."""
    found = await repository.get_with_tenant(session, key_id)
    if found is None:
        raise Unauthenticated(SESSION_ENDED)
    row, tenant = found
    if row.revoked_at or not hmac.compare_digest(
            row.secret_sha256[:FINGERPRINT_CHARS], fingerprint):
        raise Unauthenticated(SESSION_ENDED)
    return await _used(session, row, tenant)
