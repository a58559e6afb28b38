"""Bulk statements stay under the drivers' parameter limits (asyncpg: 32,767 per
statement): an import of 100,000 products, and loading their sales by name, work on both
backends (issue 15: `number of query arguments cannot exceed 32767`)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from sqlalchemy import text as text_sql

from ovencast.datasets import repository
from ovencast.datasets import service as datasets_service
from ovencast.datasets.history import ChangeCounts, ImportMode
from ovencast.datasets.reader import parse_dataset
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import DatasetImportChange
from ovencast.tenants import service as tenants_service

PRODUCTS = 100_000
REPLACED_PRODUCTS = 2 * repository.NAMES_PER_QUERY + 500


def _one_day_of(products: int, day: str, quantity: int) -> str:
    return "date,product,quantity\n" + "".join(
        f"{day},p{i:06d},{quantity}\n" for i in range(products))


async def _import(database: Database, text: str, mode: ImportMode
                  ) -> datasets_service.ImportSummary:
    dataset = parse_dataset({"sales.csv": text})
    async with unit_of_work(database.sessions) as session:
        tenant = await tenants_service.ensure_tenant(session, "many")
        return await datasets_service.import_dataset(session, tenant, dataset, source="t",
                                                     mode=mode)


async def test_one_hundred_thousand_products_in_one_import(database: Database) -> None:
    first = await _import(database, _one_day_of(PRODUCTS, "2024-01-01", 1), ImportMode.MERGE)
    assert (first.products, first.sales) == (PRODUCTS, ChangeCounts(added=PRODUCTS))

    # A replace of a few thousand of them: their names are looked up in chunks.
    replaced = REPLACED_PRODUCTS
    second = await _import(database, _one_day_of(replaced, "2024-01-02", 2),
                           ImportMode.REPLACE)
    assert second.sales == ChangeCounts(added=replaced, removed=replaced)

    async with unit_of_work(database.sessions) as session:
        tenant = await tenants_service.get_tenant(session, "many")
        names = [f"p{i:06d}" for i in range(PRODUCTS)]
        sales = await repository.load_sales(session, tenant.id, products=names)
        history = await session.scalar(select(func.count()).select_from(DatasetImportChange))
    assert len(sales) == PRODUCTS
    assert sales["product"].is_monotonic_increasing
    by_day = sales.groupby(sales["date"].dt.date)["quantity"].agg(["count", "min", "max"])
    assert by_day.to_dict(orient="index") == {
        date(2024, 1, 1): {"count": PRODUCTS - replaced, "min": 1.0, "max": 1.0},
        date(2024, 1, 2): {"count": replaced, "min": 2.0, "max": 2.0}}
    assert history == PRODUCTS + 2 * replaced


@pytest.mark.parametrize("backend", ["sqlite"])  # the Core query is PostgreSQL's only path
async def test_sqlite_reads_what_the_core_query_reads(database: Database) -> None:
    """On SQLite the sales are read on the driver with hand-written SQL (for speed): the
    same frame as SQLAlchemy's query, with `until` and a product filter."""
    text = "date,product,quantity\n" + "".join(
        f"2024-01-{day:02d},{name},{day * 1.5 + i}\n"
        for i, name in enumerate(("b", "a", "c")) for day in range(1, 11))
    await _import(database, text, ImportMode.MERGE)
    async with unit_of_work(database.sessions) as session:
        tenant = await tenants_service.get_tenant(session, "many")
        connection = await session.connection()
        for until, products in ((None, None), (date(2024, 1, 6), ["c", "a"]),
                                (date(2023, 1, 1), None)):
            fast = await repository.load_sales(session, tenant.id, until=until,
                                               products=products)
            core = [chunk async for chunk in repository._core_sales(
                connection, tenant.id, until, products, {})]
            expected = (pd.concat(core, ignore_index=True) if core
                        else fast.iloc[0:0])
            pd.testing.assert_frame_equal(fast, expected)
        assert len(fast) == 0
        everything = await repository.load_sales(session, tenant.id)
    assert len(everything) == 30
    assert list(everything["product"].unique()) == ["a", "b", "c"]
    assert everything["date"].dtype == "datetime64[ns]"
    assert everything.loc[everything["product"] == "c", "quantity"].tolist()[:2] == [3.5, 5.0]


async def test_a_driver_error_reading_sales_is_a_database_error(database: Database,
                                                               backend: str) -> None:
    """A failure of the driver read is raised as SQLAlchemy raises its own, so that
    callers tell a database fault from bad data (db/session.DATABASE_ERRORS)."""
    async with unit_of_work(database.sessions) as session:
        await session.execute(text_sql("DROP TABLE sales_observations"))
        with pytest.raises(sa_exc.OperationalError if backend == "sqlite"
                           else sa_exc.ProgrammingError) as raised:
            await repository.load_sales(session, 1)
        await session.rollback()
    assert "sales_observations" in str(raised.value)
