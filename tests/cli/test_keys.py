"""`ovencast keys create|list|revoke` in subprocesses, on both backends: the key is printed
once (alone on stdout, so `KEY=$(ovencast keys create ...)` works), listings never show
it, a revoked key no longer authenticates."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from conftest import one_line, run_async
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.errors import Unauthenticated
from ovencast.keys import service as keys_service
from ovencast.keys.access import Caller
from ovencast.settings import Settings
from ovencast.tenants import service as tenants_service

RunCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def with_tenant(settings: Settings) -> Settings:
    async def create() -> None:
        database = Database.open(settings)
        try:
            async with unit_of_work(database.sessions) as session:
                await tenants_service.create_tenant(session, "kiel")
        finally:
            await database.close()

    run_async(create)
    return settings


def authenticate(settings: Settings, key: str) -> Caller:
    async def run() -> Caller:
        database = Database.open(settings)
        try:
            async with unit_of_work(database.sessions) as session:
                return await keys_service.authenticate(session, key)
        finally:
            await database.close()

    return run_async(run)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


def test_create_list_revoke(with_tenant: Settings, run_cli: RunCli) -> None:
    settings = with_tenant
    created = ok(run_cli(["keys", "create", "--tenant", "kiel", "--role", "read",
                          "--name", "shop till"], settings))
    [key] = created.stdout.splitlines()
    assert key.startswith("ovk_1_")
    message = one_line(created.stderr)
    assert "API key 1 created: tenant 'kiel', role read" in message
    assert "cannot be shown again" in message
    assert key not in created.stderr
    assert authenticate(settings, key).tenant == "kiel"

    admin = ok(run_cli(["keys", "create", "--admin", "--role", "admin"], settings))
    admin_key = admin.stdout.strip()
    assert "every tenant (global), role admin" in one_line(admin.stderr)
    assert authenticate(settings, admin_key).is_global

    listed = ok(run_cli(["keys", "list"], settings)).stdout
    assert "ovk_1_" + key.split("_", 2)[2][:6] + "..." in listed
    assert "shop till" in listed
    assert "(every tenant)" in listed
    for secret in (key, admin_key):
        assert secret not in listed
        assert secret.split("_", 2)[2] not in listed
    only_kiel = ok(run_cli(["keys", "list", "--tenant", "kiel"], settings)).stdout
    assert "shop till" in only_kiel
    assert "(every tenant)" not in only_kiel

    revoked = ok(run_cli(["keys", "revoke", "--id", "1"], settings))
    assert one_line(revoked.stdout).startswith("API key 1 revoked")
    with pytest.raises(Unauthenticated):
        authenticate(settings, key)
    again = ok(run_cli(["keys", "revoke", "--id", "1"], settings))
    assert "API key 1 was already revoked" in one_line(again.stdout)
    assert authenticate(settings, admin_key).is_global  # the other key is untouched


@pytest.mark.parametrize(("args", "code", "message"), [
    (["keys", "create", "--role", "read"], 2, "give either --tenant T or --admin"),
    (["keys", "create", "--role", "read", "--tenant", "kiel", "--admin"], 2,
     "give either --tenant T or --admin"),
    (["keys", "create", "--role", "owner", "--admin"], 2, "'owner' is not one of"),
    (["keys", "create", "--role", "read", "--tenant", "nobody"], 1,
     "tenant 'nobody' does not exist"),
    (["keys", "revoke", "--id", "99"], 1, "API key 99 does not exist"),
    (["keys", "list", "--tenant", "nobody"], 1, "tenant 'nobody' does not exist"),
])
def test_usage_and_unknown_things_are_one_clear_line(with_tenant: Settings, run_cli: RunCli,
                                                     args: list[str], code: int,
                                                     message: str) -> None:
    result = run_cli(args, with_tenant)
    assert result.returncode == code, result.stdout + result.stderr
    assert message in one_line(result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout.strip() == ""


def test_list_without_keys_says_how_to_make_one(with_tenant: Settings, run_cli: RunCli
                                                ) -> None:
    listed = ok(run_cli(["keys", "list"], with_tenant))
    assert "no API keys (create one: ovencast keys create)" in one_line(listed.stdout)
