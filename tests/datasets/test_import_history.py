"""An upload changes only the rows it contains (merge, the default) or, when it says so,
replaces the history of its products (replace); either way what it changed is kept in
the import history and can be undone (datasets/service.py, datasets/history.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select

from conftest import import_directory, make_settings, one_line
from ovencast.datasets import repository
from ovencast.datasets import service as datasets_service
from ovencast.datasets.history import ChangeCounts, ImportMode, RowChange, SeriesKind
from ovencast.datasets.reader import parse_dataset
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import DatasetImport, DatasetImportChange
from ovencast.errors import Conflict, NotFound
from ovencast.sources.database import DatabaseSource
from ovencast.tenants import service as tenants_service

# The reproduction of issue 15: an upload of two rows, on the first and last day of
# Kiel's bread history, deleted the 1,817 days between them.
TWO_BREAD_ROWS = "date,product,quantity\n2013-07-01,bread,1\n2018-07-31,bread,2\n"


async def _import(database: Database, tenant: str, texts: dict[str, str], *,
                  mode: ImportMode = ImportMode.MERGE) -> datasets_service.ImportSummary:
    dataset = parse_dataset(texts)
    async with unit_of_work(database.sessions) as session:
        row = await tenants_service.ensure_tenant(session, tenant)
        return await datasets_service.import_dataset(session, row, dataset, source="test",
                                                     mode=mode)


async def _sales(database: Database, tenant: str) -> pd.DataFrame:
    async with unit_of_work(database.sessions) as session:
        row = await tenants_service.get_tenant(session, tenant)
        return await repository.load_sales(session, row.id)


async def _regressors(database: Database, tenant: str) -> pd.DataFrame:
    """The stored regressors, as the database source gives them to forecasts (kept per
    data version): every import and restore must show through."""
    async with unit_of_work(database.sessions) as session:
        row = await tenants_service.get_tenant(session, tenant)
        stored, _ = await repository.load_regressors(session, row.id)
        source = DatabaseSource(session)
        kept = (await source.regressors(tenant)).regressors
        assert await source.last_sales_date(tenant) == (
            await repository.last_sales_date(session, row.id))
    pd.testing.assert_frame_equal(kept, stored)
    return kept


async def _history(database: Database, import_id: int) -> list[tuple[Any, ...]]:
    async with unit_of_work(database.sessions) as session:
        changes = await session.scalars(select(DatasetImportChange).where(
            DatasetImportChange.import_id == import_id).order_by(DatasetImportChange.id))
        return [(c.series, c.name, c.date, c.change, c.previous) for c in changes]


async def _restore(database: Database, tenant: str, import_id: int) -> DatasetImport:
    async with unit_of_work(database.sessions) as session:
        row = await tenants_service.get_tenant(session, tenant)
        return await datasets_service.restore_import(session, row, import_id)


def _bread(sales: pd.DataFrame) -> pd.DataFrame:
    return sales[sales["product"] == "bread"].reset_index(drop=True)


async def test_a_two_row_upload_changes_only_those_two_rows(database: Database,
                                                            kiel_dir: Path) -> None:
    await import_directory(database, "kiel", kiel_dir)
    before = await _sales(database, "kiel")
    assert len(_bread(before)) == 1819

    summary = await _import(database, "kiel", {"sales.csv": TWO_BREAD_ROWS})

    after = await _sales(database, "kiel")
    assert len(after) == len(before)
    changed = (after["product"] == "bread") & after["date"].isin(
        pd.to_datetime(["2013-07-01", "2018-07-31"]))
    assert after.loc[changed, "quantity"].tolist() == [1.0, 2.0]
    pd.testing.assert_frame_equal(after[~changed], before[~changed])
    assert (summary.mode, summary.sales, summary.regressors) == (
        ImportMode.MERGE, ChangeCounts(changed=2), ChangeCounts())
    old = before.loc[changed, "quantity"].tolist()
    assert await _history(database, summary.import_id) == [
        (SeriesKind.SALES, "bread", date(2013, 7, 1), RowChange.CHANGED, old[0]),
        (SeriesKind.SALES, "bread", date(2018, 7, 31), RowChange.CHANGED, old[1])]


async def test_replace_makes_the_products_history_the_upload_and_keeps_the_old_one(
        database: Database, kiel_dir: Path) -> None:
    await import_directory(database, "kiel", kiel_dir)
    before = await _sales(database, "kiel")

    summary = await _import(database, "kiel", {"sales.csv": TWO_BREAD_ROWS},
                            mode=ImportMode.REPLACE)

    after = await _sales(database, "kiel")
    assert _bread(after)["quantity"].tolist() == [1.0, 2.0]
    others = before[before["product"] != "bread"].reset_index(drop=True)
    pd.testing.assert_frame_equal(after[after["product"] != "bread"].reset_index(drop=True),
                                  others)
    assert summary.sales == ChangeCounts(changed=2, removed=1817)
    history = await _history(database, summary.import_id)
    removed = {(day, previous) for _, name, day, change, previous in history
               if change is RowChange.REMOVED and name == "bread"}
    kept = _bread(before).iloc[1:-1]
    assert removed == {(d.date(), q) for d, q in zip(kept["date"], kept["quantity"],
                                                       strict=True)}

    # The old history is recoverable: undoing the replace puts all 1,819 rows back.
    await _restore(database, "kiel", summary.import_id)
    pd.testing.assert_frame_equal(await _sales(database, "kiel"), before)


async def test_reimporting_the_same_data_records_nothing(
        database: Database, tiny_dataset: Callable[..., Path]) -> None:
    directory = tiny_dataset(("bread", "rolls"), days=40, weather=True)
    first = await import_directory(database, "t1", directory)
    again = await import_directory(database, "t1", directory)
    assert first.sales == ChangeCounts(added=80)
    assert first.regressors == ChangeCounts(added=100)  # 40 + 60 days of temperature_c
    assert (again.sales, again.regressors) == (ChangeCounts(), ChangeCounts())
    assert await _history(database, again.import_id) == []


async def test_regressor_values_merge_or_replace_per_column(database: Database) -> None:
    sales = "date,product,quantity\n2024-01-01,bread,1\n"
    weather = "date,temperature_c,wind\n2024-01-01,1,5\n2024-01-02,2,\n2024-01-03,3,7\n"
    await _import(database, "t1", {"sales.csv": sales, "weather.csv": weather})

    merged = await _import(database, "t1", {
        "sales.csv": sales, "weather.csv": "date,temperature_c\n2024-01-02,20\n2024-01-04,4\n"})
    assert merged.regressors == ChangeCounts(added=1, changed=1)
    wide = (await _regressors(database, "t1")).set_index("date")
    assert wide["temperature_c"].tolist() == [1.0, 20.0, 3.0, 4.0]
    assert wide["wind"].dropna().to_dict() == {pd.Timestamp("2024-01-01"): 5.0,
                                               pd.Timestamp("2024-01-03"): 7.0}

    replaced = await _import(database, "t1", {
        "sales.csv": sales, "weather.csv": "date,wind\n2024-01-03,8\n"},
        mode=ImportMode.REPLACE)
    assert replaced.regressors == ChangeCounts(changed=1, removed=2)
    wide = (await _regressors(database, "t1")).set_index("date")
    assert wide["temperature_c"].tolist() == [1.0, 20.0, 3.0, 4.0]  # another column
    assert wide["wind"].dropna().to_dict() == {pd.Timestamp("2024-01-03"): 8.0}

    await _restore(database, "t1", replaced.import_id)
    wide = (await _regressors(database, "t1")).set_index("date")
    assert wide["wind"].dropna().to_dict() == {pd.Timestamp("2024-01-01"): 5.0,
                                               pd.Timestamp("2024-01-03"): 7.0}
    # The empty cell of 2024-01-02 is back as an empty cell, not as a missing row.
    assert pd.Timestamp("2024-01-02") in wide.index


async def test_a_restore_undoes_exactly_one_import_and_can_be_undone(
        database: Database) -> None:
    await _import(database, "t1", {"sales.csv": "date,product,quantity\n"
                                                "2024-01-01,bread,1\n2024-01-02,bread,2\n"})
    first = await _sales(database, "t1")
    second = await _import(database, "t1", {"sales.csv": "date,product,quantity\n"
                                                         "2024-01-02,bread,20\n"
                                                         "2024-01-03,bread,3\n"
                                                         "2024-01-01,rolls,4\n"})
    assert second.sales == ChangeCounts(added=2, changed=1)
    after_second = await _sales(database, "t1")

    restore = await _restore(database, "t1", second.import_id)
    pd.testing.assert_frame_equal(await _sales(database, "t1"), first)
    assert (restore.restores_import_id, restore.sales_changed, restore.sales_removed) == (
        second.import_id, 1, 2)

    await _restore(database, "t1", restore.id)  # undo the undo
    pd.testing.assert_frame_equal(await _sales(database, "t1"), after_second)

    async with unit_of_work(database.sessions) as session:
        row = await tenants_service.get_tenant(session, "t1")
        listed = await datasets_service.list_imports(session, row)
    assert [(r.mode, r.restores_import_id, r.sales_added, r.sales_changed, r.sales_removed)
            for r in listed] == [
        (ImportMode.MERGE, restore.id, 2, 1, 0),
        (ImportMode.MERGE, second.import_id, 0, 1, 2),
        (ImportMode.MERGE, None, 2, 1, 0),
        (ImportMode.MERGE, None, 2, 0, 0)]


async def test_restore_refuses_another_tenants_import_and_one_without_history(
        database: Database) -> None:
    text = {"sales.csv": "date,product,quantity\n2024-01-01,bread,1\n"}
    theirs = await _import(database, "other", text)
    await _import(database, "t1", text)
    with pytest.raises(NotFound, match=f"import {theirs.import_id} is not one of tenant"):
        await _restore(database, "t1", theirs.import_id)
    async with unit_of_work(database.sessions) as session:
        row = await tenants_service.get_tenant(session, "t1")
        legacy = DatasetImport(tenant_id=row.id, source="before 0008", files={},
                               sales_rows=1, first_date=date(2024, 1, 1),
                               last_date=date(2024, 1, 1))
        session.add(legacy)
        await session.flush()
        legacy_id = legacy.id
    with pytest.raises(Conflict, match="cannot be undone"):
        await _restore(database, "t1", legacy_id)


# ------------------------------------------------------------------------------- CLI
def test_cli_import_modes_history_and_restore(tmp_path: Path, run_cli: Any) -> None:
    settings = make_settings(tmp_path / "home")
    directory = tmp_path / "data"
    directory.mkdir()
    sales = directory / "sales.csv"
    sales.write_text("date,product,quantity\n2024-01-01,bread,1\n2024-01-02,bread,2\n"
                     "2024-01-01,rolls,5\n", encoding="utf-8")
    assert run_cli(["import", str(directory), "--tenant", "t1"], settings).returncode == 0

    sales.write_text("date,product,quantity\n2024-01-02,bread,9\n", encoding="utf-8")
    replaced = run_cli(["import", str(directory), "--tenant", "t1", "--mode", "replace"],
                       settings)
    assert replaced.returncode == 0, replaced.stderr
    assert "import 2 (replace): sales +0 ~1 -1" in one_line(replaced.stdout)

    listed = run_cli(["imports", "--tenant", "t1"], settings)
    assert listed.returncode == 0, listed.stderr
    rows = [[cell.strip() for cell in line.split("│")[1:6]]
            for line in listed.stdout.splitlines() if line.startswith("│ ")]
    assert [[row[0], *row[2:]] for row in rows] == [  # (row[1]: when)
        ["2", "replace", "1", "+0 ~1 -1"], ["1", "merge", "3", "+3 ~0 -0"]]

    restored = run_cli(["imports", "restore", "--tenant", "t1", "--id", "2"], settings)
    assert restored.returncode == 0, restored.stderr
    assert "import 2 undone by import 3: sales +1 ~1 -0" in one_line(restored.stdout)

    missing = run_cli(["imports", "restore", "--tenant", "t1", "--id", "99"], settings)
    assert missing.returncode == 1
    assert "import 99 is not one of tenant 't1'" in one_line(missing.stderr)

    # Validation at the door, at the CLI: one line naming file, line and column.
    sales.write_text("date,product,quantity\n0001-01-01,bread,1\n2024-01-03,br\x00ead,1e308\n",
                     encoding="utf-8")
    refused = run_cli(["import", str(directory), "--tenant", "t1"], settings)
    assert refused.returncode == 1
    message = one_line(refused.stderr)
    assert "sales.csv line 2, column 'date': 0001-01-01 is outside the accepted dates" in (
        message)
    assert "sales.csv line 3, column 'product': contains NUL" in message
    assert "sales.csv line 3, column 'quantity': 1e308 is larger than" in message
    assert "Traceback" not in refused.stderr


def test_undoing_the_sales_a_model_was_trained_on_is_told_at_the_undo_and_the_forecast(
        tmp_path: Path, tiny_dataset: Callable[..., Path], run_cli: Any) -> None:
    """After an undo the tenant's next day lies inside the active versions' data, which
    they refuse to forecast: the undo warns, and the refusal says what happened."""
    settings = make_settings(tmp_path / "home")
    first = tiny_dataset(["bread", "rolls"], days=60)  # 2024-01-01 .. 02-29
    assert run_cli(["import", str(first), "--tenant", "t1"], settings).returncode == 0
    later = tmp_path / "later"
    later.mkdir()
    (later / "sales.csv").write_text(
        "date,product,quantity\n2024-03-01,bread,5\n2024-03-02,bread,6\n"
        "2024-03-01,rolls,7\n2024-03-02,rolls,8\n", encoding="utf-8")
    assert run_cli(["import", str(later), "--tenant", "t1"], settings).returncode == 0
    trained = run_cli(["train", "--tenant", "t1", "--models", "seasonal_naive"], settings)
    assert trained.returncode == 0, trained.stderr

    restored = run_cli(["imports", "restore", "--tenant", "t1", "--id", "2"], settings)

    assert restored.returncode == 0, restored.stderr
    assert one_line(restored.stderr) == (
        "warning: bread, rolls: the active version was trained on sales up to 2024-03-02, "
        "and the sales now end 2024-02-29: it forecasts only the days after its own "
        "data; retrain (ovencast train) or activate a version trained on the data there "
        "is (ovencast activate)")
    refused = run_cli(["forecast", "--tenant", "t1", "--days", "3"], settings)
    assert refused.returncode == 1
    assert ("which ends 2024-03-02; asked from 2024-03-01 (the tenant's sales now end "
            "2024-02-29: retrain" in one_line(refused.stderr)), refused.stderr
    # Restoring the sales again: nothing to warn of.
    again = run_cli(["imports", "restore", "--tenant", "t1", "--id", "3"], settings)
    assert again.returncode == 0, again.stderr
    assert "warning" not in again.stderr
    # An upload that replaces bread's history with one ending earlier: the same warning.
    (later / "sales.csv").write_text("date,product,quantity\n2024-02-27,bread,5\n"
                                     "2024-02-28,bread,6\n", encoding="utf-8")
    replaced = run_cli(["import", str(later), "--tenant", "t1", "--mode", "replace"],
                       settings)
    assert replaced.returncode == 0, replaced.stderr
    assert one_line(replaced.stderr).startswith(
        "warning: bread: the active version was trained on sales up to 2024-03-02, and "
        "the sales now end 2024-02-28:")
