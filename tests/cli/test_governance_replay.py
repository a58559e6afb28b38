"""Model governance replayed on real data (North Sea, two products, cheap families), from
the command line as an operator would run it:

1. train up to 2023-08-31 (TSB active; seasonal naive trained as a challenger), save a
   28-day forecast, import the sales of September up to the 28th: `ovencast accuracy`
   reports each product's realised WAPE exactly as this test computes it from the saved
   rows (read from the database file) and the sales file;
2. four more weeks, a 7-day run saved and its sales imported each week: the challenger
   has forecast 8 weeks in shadow; `ovencast compare` says whether it is significantly
   better (and this test checks the days and WAPEs it compares), `--promote` activates it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import (
    SETTINGS_ENV_VARS,
    import_directory,
    make_settings,
    one_line,
    run_cli_process,
)
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.forecast_runs import service as runs_service
from ovencast.models.states import RunTrigger
from ovencast.settings import Settings
from ovencast.tenants import service as tenants_service

PRODUCTS = ["item_10", "item_20"]
TRAINED_UNTIL = date(2023, 8, 31)
FIRST_SCORED = date(2023, 9, 28)
WEEKS_AFTER = 4  # 28 days of the first run + 4 weekly runs: 8 weeks in shadow


@dataclass(frozen=True)
class Replay:
    settings: Settings
    cwd: Path
    sales: pd.DataFrame  # the products' real sales, every date
    data: Path

    def cli(self, *args: object) -> tuple[int, str, str]:
        result = run_cli_process([str(a) for a in args], self.settings, cwd=self.cwd)
        return result.returncode, result.stdout, result.stderr

    def sales_dir(self, name: str, first: date, last: date, *, regressors: Path | None = None
                  ) -> Path:
        directory = self.data / name
        directory.mkdir()
        days = self.sales["date"].dt.date
        self.sales.loc[(days >= first) & (days <= last)].assign(
            date=lambda f: f["date"].dt.date).to_csv(directory / "sales.csv", index=False)
        for file in ("calendar.csv", "weather.csv", "traffic.csv"):
            if regressors is not None:
                (directory / file).write_bytes((regressors / file).read_bytes())
        return directory

    def stored_rows(self, run_id: int | None = None) -> pd.DataFrame:
        """The saved rows, read straight from the database file (not through ovencast)."""
        query = ("SELECT run_id, product, version, role, date, forecast, closed "
                 "FROM forecast_rows" + (f" WHERE run_id = {run_id}" if run_id else ""))
        with sqlite3.connect(self.settings.ovencast_home / "ovencast.db") as connection:
            frame = pd.read_sql_query(query, connection)
        return frame.assign(date=pd.to_datetime(frame["date"]).dt.date)

    def actual(self) -> dict[tuple[str, date], float]:
        return {(p, d.date()): float(q) for p, d, q in
                self.sales[["product", "date", "quantity"]].itertuples(index=False)}


@pytest.fixture(scope="module")
def replay(northsea_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Replay:
    with pytest.MonkeyPatch.context() as patch:
        for name in SETTINGS_ENV_VARS:
            patch.delenv(name, raising=False)
        root = tmp_path_factory.mktemp("governance")
        settings = make_settings(root / "home")
    sales = pd.read_csv(northsea_dir / "sales.csv", parse_dates=["date"])
    sales = sales.loc[sales["product"].isin(PRODUCTS)].reset_index(drop=True)
    (root / "data").mkdir()
    state = Replay(settings, root, sales, root / "data")
    first = state.sales_dir("until-august", date(2019, 1, 1), TRAINED_UNTIL,
                            regressors=northsea_dir)
    steps = [
        ("import", first, "--tenant", "ns", "--country", "DE", "--subdivision", "NI"),
        ("train", "--tenant", "ns", "--models", "tsb"),
        ("train", "--tenant", "ns", "--models", "seasonal_naive", "--activate", "never"),
    ]
    for step in steps:
        code, out, err = state.cli(*step)
        assert code == 0, (step, out, err)
    return state


def test_realised_wape_per_product_is_what_the_saved_rows_and_the_sales_say(
        replay: Replay) -> None:
    code, out, err = replay.cli("forecast", "--tenant", "ns", "--days", 28, "--save",
                                "--format", "json")
    assert code == 0, err
    answered = pd.DataFrame(json.loads(out))
    assert set(answered["version"]) == {1}  # the champion's forecast is the answer
    assert "saved forecast run 1: 2 products, 28 days from 2023-09-01" in one_line(err)
    assert "challengers in shadow: item_10 v2, item_20 v2" in one_line(err)

    september = replay.sales_dir("september", TRAINED_UNTIL + timedelta(days=1),
                                 FIRST_SCORED)
    code, _, err = replay.cli("import", september, "--tenant", "ns")
    assert code == 0, err
    code, out, err = replay.cli("accuracy", "--tenant", "ns", "--format", "json")
    assert code == 0, err
    reported = {r["product"]: r for r in json.loads(out) if r["role"] == "all"}
    assert sorted(reported) == PRODUCTS

    rows = replay.stored_rows(run_id=1)
    actual = replay.actual()
    for product in PRODUCTS:
        mine = rows.loc[(rows["product"] == product) & (rows["role"] == "champion")
                        & (rows["closed"] == 0)]
        y = np.array([actual[(product, d)] for d in mine["date"]])
        expected = float(np.abs(y - mine["forecast"].to_numpy()).sum() / y.sum())
        assert abs(reported[product]["wape"] - expected) <= 1e-9
        assert reported[product]["n_days"] == len(mine) >= 24
    leads = {r["lead"] for r in json.loads(out) if r["version"] == 1}
    assert leads == {"all", "1-7", "8-14", "15-28"}


def test_a_challenger_in_shadow_for_eight_weeks_is_compared_and_promoted(
        replay: Replay) -> None:
    async def weekly_runs() -> None:
        database = Database.open(replay.settings)
        try:
            for week in range(WEEKS_AFTER):
                origin = FIRST_SCORED + timedelta(days=7 * week)
                async with unit_of_work(database.sessions) as session:
                    tenant = await tenants_service.get_tenant(session, "ns")
                    saved = await runs_service.save_run(
                        session, tenant, settings=replay.settings, days=7,
                        trigger=RunTrigger.SCHEDULE)
                assert saved.run.origin == origin
                await import_directory(database, "ns", replay.sales_dir(
                    f"week-{week}", origin + timedelta(days=1), origin + timedelta(days=7)))
        finally:
            await database.close()

    asyncio.run(weekly_runs())
    code, out, err = replay.cli("compare", "--tenant", "ns", "--format", "json")
    assert code == 0, err
    found = {c["product"]: c for c in json.loads(out)}
    assert sorted(found) == PRODUCTS

    # The pairs, independently: per day the latest run's champion and challenger rows.
    rows = replay.stored_rows()
    actual = replay.actual()
    rows = rows.loc[rows["closed"] == 0]
    for product in PRODUCTS:
        mine = rows.loc[rows["product"] == product]
        latest = mine.groupby("date")["run_id"].transform("max") == mine["run_id"]
        mine = mine.loc[latest]
        champion = mine.loc[mine["role"] == "champion"].set_index("date")["forecast"]
        challenger = mine.loc[mine["role"] == "challenger"].set_index("date")["forecast"]
        days = sorted(set(champion.index) & set(challenger.index))
        y = np.array([actual[(product, d)] for d in days])
        result = found[product]
        assert result["n_days"] == len(days) >= 50  # 8 weeks less the closed days
        assert (result["first_day"], result["last_day"]) == ("2023-09-01", "2023-10-26")
        assert result["champion_wape"] == pytest.approx(
            np.abs(y - champion[days].to_numpy()).sum() / y.sum(), rel=1e-12)
        assert result["challenger_wape"] == pytest.approx(
            np.abs(y - challenger[days].to_numpy()).sum() / y.sum(), rel=1e-12)
        # The verdict: seasonal naive beats a flat TSB level significantly on a bakery
        # with a weekly rhythm.
        assert result["challenger_wape"] < result["champion_wape"]
        assert result["significant"] is True
        assert result["p_value"] < 0.05
        assert result["winner"] == "challenger"
        assert result["verdict"].startswith("challenger significantly better")

    code, out, err = replay.cli("compare", "--tenant", "ns", "--promote")
    assert code == 0, err
    text = one_line(out)
    for product in PRODUCTS:
        assert f"promoted {product}: version 2 is now active (was 1)" in text
    with sqlite3.connect(replay.settings.ovencast_home / "ovencast.db") as connection:
        standing = connection.execute(
            "SELECT product, version, is_active, is_challenger FROM model_versions "
            "ORDER BY product, version").fetchall()
    assert standing == [("item_10", 1, 0, 0), ("item_10", 2, 1, 0),
                        ("item_20", 1, 0, 0), ("item_20", 2, 1, 0)]
    # Nothing left to promote: said, not an error.
    code, _, err = replay.cli("compare", "--tenant", "ns", "--promote")
    assert code == 0
    assert "nothing promoted" in one_line(err)
