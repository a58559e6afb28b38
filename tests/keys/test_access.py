"""Roles and the checks of a `Caller` (keys/access.py), as a table."""

from __future__ import annotations

import pytest

from ovencast.errors import Forbidden
from ovencast.keys.access import Caller
from ovencast.keys.roles import Role


@pytest.mark.parametrize(("role", "needed", "allowed"), [
    (Role.READ, Role.READ, True), (Role.READ, Role.TRAIN, False),
    (Role.READ, Role.ADMIN, False),
    (Role.TRAIN, Role.READ, True), (Role.TRAIN, Role.TRAIN, True),
    (Role.TRAIN, Role.ADMIN, False),
    (Role.ADMIN, Role.READ, True), (Role.ADMIN, Role.TRAIN, True),
    (Role.ADMIN, Role.ADMIN, True),
])
def test_each_role_includes_the_ones_before_it(role: Role, needed: Role,
                                               allowed: bool) -> None:
    assert role.includes(needed) is allowed
    caller = Caller(key_id=1, role=role, tenant_id=3, tenant="kiel")
    if allowed:
        caller.require_role(needed)
    else:
        with pytest.raises(Forbidden, match=f"role is '{role}'.*needs role '{needed}'"):
            caller.require_role(needed)


def test_a_tenant_key_reaches_its_own_tenant_only() -> None:
    caller = Caller(key_id=1, role=Role.ADMIN, tenant_id=3, tenant="kiel")
    assert caller.reaches_tenant("kiel")
    assert not caller.reaches_tenant("Kiel")
    assert not caller.reaches_tenant("husum")
    assert caller.reaches_tenant_id(3)
    assert not caller.reaches_tenant_id(4)
    assert not caller.is_global
    with pytest.raises(Forbidden, match="without tenant"):
        caller.require_global(Role.READ)


def test_a_global_key_reaches_every_tenant() -> None:
    caller = Caller(key_id=9, role=Role.READ)
    assert caller.is_global
    assert caller.reaches_tenant("kiel")
    assert caller.reaches_tenant_id(12345)
    caller.require_global(Role.READ)
    with pytest.raises(Forbidden, match="needs role 'admin'"):
        caller.require_global(Role.ADMIN)


def test_a_tenants_keys_share_one_rate_limit_a_global_key_has_its_own() -> None:
    assert (Caller(key_id=1, role=Role.READ, tenant_id=3, tenant="kiel").rate_limit_bucket
            == Caller(key_id=2, role=Role.TRAIN, tenant_id=3, tenant="kiel").rate_limit_bucket
            == "tenant:3")
    assert Caller(key_id=9, role=Role.ADMIN).rate_limit_bucket == "key:9"
