"""One contract suite for both data sources: the database (after `ovencast import` of the
Kiel directory, SQLite in a tmp OVENCAST_HOME) and the upstream services (the data server
serving the same directory). Both must give the same frames."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from conftest import UPSTREAM_TENANT as TENANT
from conftest import import_directory, make_settings, run_async, upstream_settings
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.errors import NotFound
from ovencast.settings import Settings
from ovencast.sources.base import DataSource, SourceData
from ovencast.sources.database import DatabaseSource
from ovencast.sources.http import HttpSource
from ovencast.sources.service import open_data_source, resolve_tenant
from ovencast.tenants import repository as tenants_repository
from ovencast.testing.upstream_server import RunningServer

Opener = Callable[[], AbstractAsyncContextManager[DataSource]]
CASES = [
    pytest.param(None, None, id="everything"),
    pytest.param(date(2015, 3, 31), None, id="until"),
    pytest.param(date(2017, 1, 15), ["seasonal_bread", "bread"], id="until+products"),
    pytest.param(None, ["croissant"], id="one-product"),
]


@pytest.fixture(scope="module")
def kiel_imported(tmp_path_factory: pytest.TempPathFactory, kiel_dir: Path) -> Settings:
    """SQLite under a tmp OVENCAST_HOME with the Kiel directory imported, once per module
    (the tests only read it)."""
    settings = make_settings(tmp_path_factory.mktemp("kiel") / "home")

    async def setup() -> None:
        database = Database.open(settings)
        try:
            await database.ready()
            await import_directory(database, TENANT, kiel_dir, country="DE",
                                   subdivision="SH")
        finally:
            await database.close()

    run_async(setup)
    return settings


@pytest.fixture
async def kiel_database(kiel_imported: Settings) -> AsyncIterator[Database]:
    database = Database.open(kiel_imported)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def open_database_source(kiel_database: Database) -> Opener:
    @asynccontextmanager
    async def opener() -> AsyncIterator[DataSource]:
        async with unit_of_work(kiel_database.sessions) as session, open_data_source(
                session, settings=kiel_database.settings) as source:
            assert isinstance(source, DatabaseSource)
            yield source

    return opener


@pytest.fixture
def open_http_source(http_source: Callable[..., HttpSource]) -> Opener:
    @asynccontextmanager
    async def opener() -> AsyncIterator[DataSource]:
        async with http_source(upstream_page_size=700) as source:
            yield source

    return opener


@pytest.fixture(params=["database", "upstream"])
def open_source(request: pytest.FixtureRequest) -> Opener:
    """Each contract test runs once per implementation."""
    opener: Opener = request.getfixturevalue(f"open_{request.param}_source".replace(
        "upstream", "http"))
    return opener


# ----------------------------------------------------------------- shared contract
@pytest.mark.parametrize(("until", "products"), CASES[:2])
async def test_frames_follow_the_contract(open_source: Opener, until: date | None,
                                          products: list[str] | None) -> None:
    async with open_source() as source:
        data = await source.load(TENANT, until=until, products=products)
    sales = data.sales
    assert list(sales.columns) == ["product", "date", "quantity"]
    assert pd.api.types.is_datetime64_any_dtype(sales["date"])
    assert sales["quantity"].dtype == float
    assert sales.equals(sales.sort_values(["product", "date"]).reset_index(drop=True))
    assert not sales.duplicated(["product", "date"]).any()
    if until is not None:
        assert sales["date"].max() <= pd.Timestamp(until)
    regressors = data.regressors
    assert list(regressors.columns) == ["date", *sorted(regressors.columns[1:])]
    assert regressors["date"].is_monotonic_increasing
    assert regressors["date"].is_unique
    assert all(regressors[c].dtype == float for c in regressors.columns[1:])
    assert set(data.regressor_sources) == set(regressors.columns[1:])
    assert data.warnings == []


async def test_products_are_listed_sorted(open_source: Opener) -> None:
    async with open_source() as source:
        assert await source.list_products(TENANT) == [
            "bread", "cake", "confectionery", "croissant", "rolls", "seasonal_bread"]
        profile = await source.describe_tenant(TENANT)
    assert (profile.country, profile.subdivision) == ("DE", "SH")


async def test_unknown_tenant_is_a_404(open_source: Opener) -> None:
    async with open_source() as source:
        with pytest.raises(NotFound) as caught:
            await source.load("nobody")
    assert isinstance(caught.value, NotFound)
    assert "nobody" in str(caught.value)


# ------------------------------------------------------------ the two agree exactly
@pytest.mark.parametrize(("until", "products"), CASES)
async def test_http_source_gives_the_same_frames_as_the_database(
        open_database_source: Opener, open_http_source: Opener, until: date | None,
        products: list[str] | None) -> None:
    results: list[SourceData] = []
    for opener in (open_database_source, open_http_source):
        async with opener() as source:
            results.append(await source.load(TENANT, until=until, products=products))
    from_db, from_http = results
    assert len(from_db.sales) > 0
    pd.testing.assert_frame_equal(from_http.sales, from_db.sales, check_exact=True)
    pd.testing.assert_frame_equal(from_http.regressors, from_db.regressors,
                                  check_exact=True)
    assert from_http.regressor_sources == from_db.regressor_sources


# ------------------------------------------------------------ tenant on first use
async def test_tenant_known_only_upstream_is_created_on_first_use(
        tmp_path: Path, data_server: RunningServer) -> None:
    settings = upstream_settings(tmp_path / "home", data_server.url)
    database = Database.open(settings)
    await database.ready()
    try:
        async with unit_of_work(database.sessions) as session:
            assert await tenants_repository.get_by_name(session, TENANT) is None
            async with open_data_source(session, settings=settings) as source:
                assert isinstance(source, HttpSource)
                tenant = await resolve_tenant(session, source, TENANT)
        assert (tenant.name, tenant.country, tenant.subdivision) == (TENANT, "DE", "SH")
        async with unit_of_work(database.sessions) as session:
            again = await tenants_repository.get_by_name(session, TENANT)
            assert again is not None
            assert again.id == tenant.id
            source = DatabaseSource(session)
            with pytest.raises(NotFound, match="does not exist"):
                await resolve_tenant(session, source, "nobody")
    finally:
        await database.close()
