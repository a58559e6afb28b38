"""Tenant names: a defined character set and length, refused with a reason (422 through
`InvalidRequest`); a lookup of a name that cannot exist finds nothing instead of failing
in the database driver."""

from __future__ import annotations

import pytest

from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.errors import InvalidRequest, TenantNotFound
from ovencast.tenants import service as tenants_service


@pytest.mark.parametrize("name", ["kiel", "Bäckerei Nord", "north-sea_2", "Café & Co.",
                                  "x" * 100])
def test_valid_tenant_names(name: str) -> None:
    tenants_service.check_name(name)


@pytest.mark.parametrize(("name", "reason"), [
    ("", "1-100 characters"),
    ("x" * 101, "1-100 characters"),
    ("a/b", "must not contain '/'"),
    ("a\\b", "must not contain '\\\\'"),
    (".", "must not be '.' or '..'"),
    ("..", "must not be '.' or '..'"),
    (" kiel", "starts or ends with a space"),
    ("kiel\n", "U+000A"),
    ("ki\x00el", "NUL"),
    ("ki\x1bel", "U+001B"),
    ("kiel\u200b", "U+200B"),
])
def test_refused_tenant_names(name: str, reason: str) -> None:
    with pytest.raises(InvalidRequest, match="tenant name") as raised:
        tenants_service.check_name(name)
    assert reason in raised.value.message


async def test_a_refused_name_creates_nothing(database: Database) -> None:
    for create in (tenants_service.create_tenant, tenants_service.ensure_tenant):
        with pytest.raises(InvalidRequest, match="NUL"):
            async with unit_of_work(database.sessions) as session:
                await create(session, "bad\x00name")
    async with unit_of_work(database.sessions) as session:
        assert list(await tenants_service.list_tenants(session)) == []


@pytest.mark.parametrize("name", ["ki\x00el", "ki\udc80el"])
async def test_looking_up_a_name_that_cannot_exist_is_not_found(database: Database,
                                                               name: str) -> None:
    """PostgreSQL refuses NUL in text and a lone surrogate cannot be encoded: the lookup
    must answer 'not found', not fail in the driver (a 500 over HTTP)."""
    async with unit_of_work(database.sessions) as session:
        await tenants_service.create_tenant(session, "kiel")
    with pytest.raises(TenantNotFound):
        async with unit_of_work(database.sessions) as session:
            await tenants_service.get_tenant(session, name)
