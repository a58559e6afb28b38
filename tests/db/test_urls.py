"""DATABASE_URL as operators write it: `postgresql://` (or `postgres://`) means asyncpg,
the driver ovencast is written against; another backend or driver is refused when the
settings load, with what to write instead, not at the first import (db/urls.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import make_settings, pg_url, run_async
from ovencast.datasets import service as datasets_service
from ovencast.datasets.reader import parse_dataset
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.db.urls import async_database_url
from ovencast.errors import Misconfigured
from ovencast.settings import Settings, get_settings
from ovencast.tenants import service as tenants_service


@pytest.mark.parametrize(("written", "used"), [
    ("postgresql://u:p%40ss@db:5432/ovencast", "postgresql+asyncpg://u:p%40ss@db:5432/ovencast"),
    ("postgres://u@db/ovencast", "postgresql+asyncpg://u@db/ovencast"),
    ("postgresql+asyncpg://u@db/ovencast", "postgresql+asyncpg://u@db/ovencast"),
    ("sqlite:////var/lib/ovencast/ovencast.db", "sqlite+aiosqlite:////var/lib/ovencast/ovencast.db"),
    ("sqlite+aiosqlite:///ovencast.db", "sqlite+aiosqlite:///ovencast.db"),
])
def test_a_url_without_its_async_driver_gets_the_one_ovencast_uses(written: str,
                                                                   used: str) -> None:
    assert async_database_url(written) == used
    assert Settings(database_url=written).resolved_database_url == used


@pytest.mark.parametrize(("written", "reason"), [
    ("postgresql+psycopg://u@db/ovencast", "names the driver 'psycopg'"),
    ("sqlite+pysqlite:///x.db", "names the driver 'pysqlite'"),
    ("mysql://u@db/ovencast", "names the backend 'mysql'"),
    ("db.example.com:5432", "is not a database URL"),
])
def test_another_backend_or_driver_is_refused_with_what_to_write(
        written: str, reason: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=reason):
        async_database_url(written)
    monkeypatch.setenv("DATABASE_URL", written)
    get_settings.cache_clear()
    try:
        with pytest.raises(Misconfigured, match=f"DATABASE_URL: {reason}"):
            get_settings()
    finally:
        get_settings.cache_clear()


def test_every_bad_variable_is_named_in_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_TRAINING_TIME_MINUTES", "half an hour")
    monkeypatch.setenv("DB_POOL_SIZE", "ten")
    get_settings.cache_clear()
    try:
        with pytest.raises(Misconfigured) as raised:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert "MAX_TRAINING_TIME_MINUTES: Input should be a valid number" in raised.value.message
    assert "DB_POOL_SIZE: Input should be a valid integer" in raised.value.message


def test_a_plain_postgresql_url_imports_through_copy(pg_migrated_url: str,
                                                     tmp_path: Path) -> None:
    """The regression: `postgresql://` used to load psycopg, and the first import large
    enough for COPY (datasets/repository.py) failed with a 500."""
    plain = pg_migrated_url.replace("postgresql+asyncpg://", "postgresql://")
    assert plain == pg_url(plain.rsplit("/", 1)[1], driver="")
    settings = make_settings(tmp_path, plain)
    days = 800  # over COPY_MIN_ROWS sales rows and history rows
    sales = "date,product,quantity\n" + "".join(
        f"2021-{1 + d // 28 % 12:02d}-{1 + d % 28:02d},p{d // 336},{d % 17}\n"
        for d in range(days))

    async def body() -> int:
        database = Database.open(settings)
        try:
            async with unit_of_work(database.sessions) as session:
                tenant = await tenants_service.ensure_tenant(session, "plain-url")
                summary = await datasets_service.import_dataset(
                    session, tenant, parse_dataset({"sales.csv": sales}), source="test")
            return summary.sales.added
        finally:
            await database.close()

    assert run_async(body) == days
