"""API keys on both backends: created with only a hash stored, listed without secrets,
revoked; `authenticate` accepts exactly the valid, unrevoked keys."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import ApiKey
from ovencast.errors import InvalidRequest, NotFound, TenantNotFound, Unauthenticated
from ovencast.keys import service, tokens
from ovencast.keys.access import Caller
from ovencast.keys.roles import Role
from ovencast.tenants import service as tenants_service


@pytest.fixture
async def tenants(database: Database) -> Database:
    async with unit_of_work(database.sessions) as session:
        for name in ("kiel", "husum"):
            await tenants_service.create_tenant(session, name)
    return database


async def create(database: Database, tenant: str | None, role: Role,
                 name: str | None = None) -> service.IssuedKey:
    async with unit_of_work(database.sessions) as session:
        return await service.create_key(session, tenant=tenant, role=role, name=name)


async def authenticate(database: Database, key: str | None) -> Caller:
    async with unit_of_work(database.sessions) as session:
        return await service.authenticate(session, key)


async def stored(database: Database, key_id: int) -> ApiKey:
    async with unit_of_work(database.sessions) as session:
        row = await session.get(ApiKey, key_id)
        assert row is not None
        return row


async def test_a_key_is_shown_once_and_stored_as_a_hash(tenants: Database) -> None:
    issued = await create(tenants, "kiel", Role.TRAIN, name="  till in the shop ")
    parsed = tokens.parse_key(issued.key)
    assert parsed is not None
    assert parsed.key_id == issued.row.id
    row = await stored(tenants, issued.row.id)
    assert row.secret_sha256 == tokens.hash_secret(parsed.secret)
    assert row.secret_prefix == parsed.secret[:tokens.DISPLAY_CHARS]
    assert (row.role, row.name, row.revoked_at, row.last_used_at) == (
        Role.TRAIN, "till in the shop", None, None)
    # The secret is in no column.
    for column in ApiKey.__table__.columns:
        assert parsed.secret not in str(getattr(row, column.key)), column.key


async def test_authenticate_gives_the_keys_tenant_and_role(tenants: Database) -> None:
    kiel = await create(tenants, "kiel", Role.READ)
    every = await create(tenants, None, Role.ADMIN)

    caller = await authenticate(tenants, kiel.key)
    assert caller == Caller(key_id=kiel.row.id, role=Role.READ,
                            tenant_id=kiel.row.tenant_id, tenant="kiel")
    assert await authenticate(tenants, every.key) == Caller(key_id=every.row.id,
                                                            role=Role.ADMIN)
    assert (await stored(tenants, kiel.row.id)).last_used_at is not None


async def test_last_used_is_written_at_most_once_a_minute(tenants: Database) -> None:
    issued = await create(tenants, "kiel", Role.READ)
    await authenticate(tenants, issued.key)
    first = (await stored(tenants, issued.row.id)).last_used_at
    await authenticate(tenants, issued.key)
    assert (await stored(tenants, issued.row.id)).last_used_at == first
    async with unit_of_work(tenants.sessions) as session:  # a minute later
        assert first is not None
        await session.execute(update(ApiKey).where(ApiKey.id == issued.row.id).values(
            last_used_at=first - service.LAST_USED_RESOLUTION - timedelta(seconds=1)))
    await authenticate(tenants, issued.key)
    later = (await stored(tenants, issued.row.id)).last_used_at
    assert later is not None
    assert later >= first


async def test_bad_keys_are_unauthenticated_all_alike(tenants: Database) -> None:
    issued = await create(tenants, "kiel", Role.ADMIN)
    secret = issued.key.split("_", 2)[2]
    with pytest.raises(Unauthenticated, match="an API key is required"):
        await authenticate(tenants, None)
    messages = set()
    for bad in (issued.key[:-1] + ("A" if issued.key[-1] != "A" else "B"),  # wrong secret
                f"ovk_{issued.row.id + 100}_{secret}",  # unknown id
                "ovk_nonsense", "Bearer " + issued.key, issued.key + " "):
        with pytest.raises(Unauthenticated) as raised:
            await authenticate(tenants, bad)
        messages.add(raised.value.message)
    assert messages == {service.INVALID_KEY}


async def test_a_revoked_key_is_refused_and_stays_revoked_once(tenants: Database) -> None:
    issued = await create(tenants, "kiel", Role.ADMIN)
    await authenticate(tenants, issued.key)
    async with unit_of_work(tenants.sessions) as session:
        first = await service.revoke_key(session, issued.row.id)
    assert not first.already
    assert first.row.revoked_at is not None
    with pytest.raises(Unauthenticated, match="unknown or revoked"):
        await authenticate(tenants, issued.key)
    async with unit_of_work(tenants.sessions) as session:
        again = await service.revoke_key(session, issued.row.id)
    assert again.already
    assert again.row.revoked_at == first.row.revoked_at
    async with unit_of_work(tenants.sessions) as session:
        with pytest.raises(NotFound, match="API key 999 does not exist"):
            await service.revoke_key(session, 999)


async def test_list_keys_of_all_or_one_tenant_never_their_secrets(tenants: Database) -> None:
    kiel = await create(tenants, "kiel", Role.READ, name="pos")
    husum = await create(tenants, "husum", Role.TRAIN)
    every = await create(tenants, None, Role.ADMIN)
    async with unit_of_work(tenants.sessions) as session:
        listed = await service.list_keys(session)
        of_kiel = await service.list_keys(session, tenant="kiel")
    assert [(k.row.id, k.tenant) for k in listed] == [
        (kiel.row.id, "kiel"), (husum.row.id, "husum"), (every.row.id, None)]
    assert [k.row.id for k in of_kiel] == [kiel.row.id]
    for listing, issued in zip(listed, (kiel, husum, every), strict=True):
        assert listing.display == issued.key[:len(listing.display) - 3] + "..."
        assert issued.key not in listing.display


async def test_create_refuses_an_unknown_tenant_and_a_bad_name(tenants: Database) -> None:
    with pytest.raises(TenantNotFound):
        await create(tenants, "nobody", Role.READ)
    with pytest.raises(InvalidRequest, match="name must be 1-100"):
        await create(tenants, "kiel", Role.READ, name="x" * 101)
    async with unit_of_work(tenants.sessions) as session:
        assert (await session.scalars(select(ApiKey))).all() == []


async def test_the_database_refuses_a_role_outside_the_enum(tenants: Database) -> None:
    await create(tenants, "kiel", Role.READ)
    with pytest.raises(IntegrityError, match="ck_api_keys_role"):
        async with unit_of_work(tenants.sessions) as session:
            await session.execute(text("UPDATE api_keys SET role = 'owner'"))


async def test_a_tenants_keys_go_with_it(tenants: Database) -> None:
    issued = await create(tenants, "husum", Role.READ)
    async with unit_of_work(tenants.sessions) as session:
        await session.execute(text("DELETE FROM tenants WHERE name = 'husum'"))
    with pytest.raises(Unauthenticated):
        await authenticate(tenants, issued.key)
    async with unit_of_work(tenants.sessions) as session:
        assert await session.get(ApiKey, issued.row.id) is None
