"""Importing datasets: all or nothing, and re-importing overlapping dates replaces them."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, select

from conftest import (
    copy_dataset,
    import_directory,
    in_thread,
    make_settings,
    one_line,
    run_async,
)
from ovencast.datasets import repository
from ovencast.datasets import service as datasets_service
from ovencast.datasets.reader import read_dataset_dir
from ovencast.db import migrate
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import DatasetImport, RegressorObservation, SalesObservation, Tenant
from ovencast.errors import InvalidRequest
from ovencast.tenants import service as tenants_service


async def _count(database: Database, table: type, tenant: str | None = None) -> int:
    async with unit_of_work(database.sessions) as session:
        query = select(func.count()).select_from(table)
        if tenant is not None:
            query = query.join(Tenant, Tenant.id == table.tenant_id).where(  # type: ignore[attr-defined]
                Tenant.name == tenant)
        return int(await session.scalar(query) or 0)


async def _sales(database: Database, tenant: str) -> pd.DataFrame:
    async with unit_of_work(database.sessions) as session:
        row = await tenants_service.get_tenant(session, tenant)
        return await repository.load_sales(session, row.id)


def _rewrite_quantity(sales_csv: Path, day: str, product: str, quantity: str) -> None:
    lines = sales_csv.read_text(encoding="utf-8").splitlines()
    hits = [i for i, line in enumerate(lines) if line.startswith(f"{day},{product},")]
    assert len(hits) == 1
    lines[hits[0]] = f"{day},{product},{quantity}"
    sales_csv.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------- CLI
def test_cli_import_with_one_bad_row_stores_nothing(kiel_dir: Path, tmp_path: Path,
                                                    tiny_dataset: Callable[..., Path],
                                                    run_cli: Any) -> None:
    settings = make_settings(tmp_path / "home")
    settings.ovencast_home.mkdir(parents=True)
    in_thread(migrate.upgrade, settings.resolved_database_url)
    # Another tenant's data is already there and must stay untouched.
    other = tiny_dataset(("bread",), days=40)

    async def seed() -> int:
        database = Database.open(settings)
        try:
            summary = await import_directory(database, "other", other)
            return summary.sales_rows
        finally:
            await database.close()

    other_rows = run_async(seed)

    dataset = copy_dataset(kiel_dir, tmp_path / "kiel")
    sales = dataset / "sales.csv"
    lines = sales.read_text(encoding="utf-8").splitlines()
    bad_line = 5000  # 1-based, as an editor shows it
    day, product, _ = lines[bad_line - 1].split(",")
    lines[bad_line - 1] = f"{day},{product},12.5kg"
    sales.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = run_cli(["import", str(dataset), "--tenant", "kiel", "--country", "DE",
                      "--subdivision", "SH"], settings)

    assert result.returncode != 0
    message = one_line(result.stderr)
    assert f"sales.csv line {bad_line}, column 'quantity'" in message
    assert "12.5kg" in message
    assert "Traceback" not in result.stderr
    assert "imported" not in result.stdout

    async def stored() -> dict[str, Any]:
        database = Database.open(settings)
        try:
            async with unit_of_work(database.sessions) as session:
                tenants = list((await session.scalars(select(Tenant.name))).all())
            return {
                "tenants": tenants,
                "sales": await _count(database, SalesObservation),
                "regressors": await _count(database, RegressorObservation),
                "imports": await _count(database, DatasetImport),
            }
        finally:
            await database.close()

    assert run_async(stored) == {"tenants": ["other"], "sales": other_rows,
                                 "regressors": 0, "imports": 1}


# ---------------------------------------------------------------------- service level
async def test_import_stores_every_row_and_an_audit_record(
        database: Database, tiny_dataset: Callable[..., Path]) -> None:
    directory = tiny_dataset(("bread", "rolls", "cake"), days=50, weather=True, calendar=True)
    summary = await import_directory(database, "t1", directory, country="DE")

    assert summary.sales_rows == 150
    assert summary.products == 3
    assert sorted(summary.regressor_columns) == ["public_holiday", "temperature_c"]
    assert await _count(database, SalesObservation, "t1") == 150
    # weather and calendar: 50 + 60 days each, one row per column and day
    assert await _count(database, RegressorObservation, "t1") == 2 * 110
    async with unit_of_work(database.sessions) as session:
        record = await session.scalar(select(DatasetImport))
    assert record is not None
    assert (record.sales_rows, record.first_date, record.last_date) == (
        150, date(2024, 1, 1), date(2024, 2, 19))
    assert set(record.files) == {"sales.csv", "weather.csv", "calendar.csv"}


async def test_reimport_is_idempotent_and_updates_changed_quantities(
        database: Database, tiny_dataset: Callable[..., Path]) -> None:
    directory = tiny_dataset(("bread", "rolls"), days=60, weather=True)
    await import_directory(database, "t1", directory)
    first = await _sales(database, "t1")
    regressor_rows = await _count(database, RegressorObservation, "t1")

    await import_directory(database, "t1", directory)
    again = await _sales(database, "t1")
    pd.testing.assert_frame_equal(first, again)
    assert await _count(database, RegressorObservation, "t1") == regressor_rows

    _rewrite_quantity(directory / "sales.csv", "2024-01-15", "rolls", "123.25")
    await import_directory(database, "t1", directory)
    changed = await _sales(database, "t1")
    assert len(changed) == len(first) == 120
    is_row = (changed["product"] == "rolls") & (changed["date"] == "2024-01-15")
    assert changed.loc[is_row, "quantity"].tolist() == [123.25]
    pd.testing.assert_frame_equal(changed.loc[~is_row], first.loc[~is_row])


async def test_reimport_of_an_overlapping_span_keeps_the_rest(
        database: Database, tiny_dataset: Callable[..., Path]) -> None:
    # 2024-01-01 .. 2024-03-30, then 2024-03-01 .. 2024-04-29 with other quantities.
    await import_directory(database, "t1", tiny_dataset(("bread",), days=90, name="a"))
    later = tiny_dataset(("bread",), days=60, start=date(2024, 3, 1), seed=99, name="b")
    await import_directory(database, "t1", later)

    sales = await _sales(database, "t1")
    assert len(sales) == 120  # 60 days only in the first file + 60 from the second
    assert sales["date"].is_unique
    second = read_dataset_dir(later).sales
    stored = sales.set_index("date")["quantity"]
    assert all(stored[pd.Timestamp(r.date)] == r.quantity for r in second)


async def test_tenants_do_not_see_each_others_data(
        database: Database, tiny_dataset: Callable[..., Path]) -> None:
    directory = tiny_dataset(("bread",), days=30)
    await import_directory(database, "north", directory)
    await import_directory(database, "south", directory)
    await import_directory(database, "south", directory)
    assert await _count(database, SalesObservation, "north") == 30
    assert await _count(database, SalesObservation, "south") == 30


async def test_kiel_import_round_trips(database: Database, kiel_dir: Path) -> None:
    summary = await import_directory(database, "kiel", kiel_dir, country="DE",
                                     subdivision="SH")
    expected = pd.read_csv(kiel_dir / "sales.csv", parse_dates=["date"])
    stored = await _sales(database, "kiel")
    assert summary.sales_rows == len(expected) == len(stored)
    merged = expected.merge(stored, on=["product", "date"], suffixes=("_csv", "_db"))
    assert len(merged) == len(expected)
    assert all(math.isclose(a, b) for a, b in zip(merged["quantity_csv"],
                                                  merged["quantity_db"], strict=True))
    async with unit_of_work(database.sessions) as session:
        row = await tenants_service.get_tenant(session, "kiel")
        assert (row.country, row.subdivision, row.time_zone) == ("DE", "SH", "Europe/Berlin")
        regressors, sources = await repository.load_regressors(session, row.id)
    assert sources["temperature_c"] == "weather"
    assert sources["kieler_woche"] == "calendar"
    # An empty cell of the source file stays unknown, it does not become 0.
    weather = pd.read_csv(kiel_dir / "weather.csv", parse_dates=["date"])
    empty_days = weather.loc[weather["weather_code"].isna(), "date"]
    assert len(empty_days) > 0
    by_day = regressors.set_index("date")["weather_code"]
    assert by_day.loc[empty_days].isna().all()


@pytest.mark.parametrize("bad", ["country", "time_zone"])
async def test_unknown_locale_is_refused_before_anything_is_stored(
        database: Database, tiny_dataset: Callable[..., Path], bad: str) -> None:
    options = {"country": "XX"} if bad == "country" else {"time_zone": "Mars/Olympus"}
    dataset = read_dataset_dir(tiny_dataset(("bread",), days=30))
    async def create_and_import() -> None:
        async with unit_of_work(database.sessions) as session:
            await tenants_service.ensure_tenant(session, "t1", **options)
            await datasets_service.import_dataset(session, await tenants_service.get_tenant(
                session, "t1"), dataset, source="x")

    with pytest.raises(InvalidRequest, match="unknown"):
        await create_and_import()
    assert await _count(database, Tenant) == 0
    assert await _count(database, SalesObservation) == 0
