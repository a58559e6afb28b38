"""Saved forecast runs (forecast_runs/service.py): the champions' rows are the answer,
challengers forecast the same dates in shadow, each row knows its version, lead time and
the seasonal naive forecast from the same sales; scored once the sales arrive."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import import_directory
from ovencast.accuracy import service as accuracy_service
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.errors import ForecastRunNotFound, ModelNotFound
from ovencast.forecast_runs import service as runs_service
from ovencast.forecast_runs.service import SavedRun
from ovencast.models.states import ActivationPolicy, ForecastRole, RunTrigger
from ovencast.tenants import service as tenants_service
from ovencast.training import pool
from ovencast.training.embedded import finish_training, prepare_training

START = date(2024, 1, 1)
DAYS = 120
CUT = START + timedelta(days=DAYS - 29)  # the last day known when the run is saved
FACTORS = (0.6, 0.7, 0.8, 0.9, 1.2, 1.9, 1.5)


def _sales(products: Sequence[str]) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    rows = [(START + timedelta(days=i), product, float(rng.poisson(
        (60 + 30 * k) * FACTORS[(START + timedelta(days=i)).weekday()])))
        for k, product in enumerate(products) for i in range(DAYS)]
    return pd.DataFrame(rows, columns=["date", "product", "quantity"])


def _write(directory: Path, sales: pd.DataFrame) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    sales.to_csv(directory / "sales.csv", index=False)
    return directory


async def _train(database: Database, tenant: str, models: Sequence[str],
                 activation: ActivationPolicy) -> None:
    prepared = await prepare_training(database, tenant, models=models, activation=activation)
    outcomes = await asyncio.to_thread(pool.run_tasks, prepared.tasks,
                                       settings=database.settings)
    await finish_training(database, prepared.job_id, outcomes)


async def _save(database: Database, tenant: str, days: int) -> SavedRun:
    async with unit_of_work(database.sessions) as session:
        row = await tenants_service.get_tenant(session, tenant)
        return await runs_service.save_run(session, row, settings=database.settings,
                                           days=days, trigger=RunTrigger.CLI)


async def test_a_run_stores_the_answer_and_the_challengers_in_shadow(
        database: Database, tmp_path: Path) -> None:
    sales = _sales(["bread", "rolls"])
    await import_directory(database, "runs",
                           _write(tmp_path / "first", sales.loc[sales["date"] <= CUT]))
    with pytest.raises(ModelNotFound, match="no trained models"):
        await _save(database, "runs", 7)
    await _train(database, "runs", ["seasonal_naive"], ActivationPolicy.IF_BETTER)
    await _train(database, "runs", ["croston"], ActivationPolicy.NEVER)

    saved = await _save(database, "runs", 14)
    run = saved.run
    assert (run.origin, run.start, run.days) == (CUT, CUT + timedelta(days=1), 14)
    assert run.products == ["bread", "rolls"]
    # The answer is the champions' (version 1); the challengers (version 2) ran alongside.
    assert set(saved.forecast.forecast["version"]) == {1}
    assert sorted((r.product, r.version) for r in saved.shadow) == [("bread", 2),
                                                                      ("rolls", 2)]
    async with unit_of_work(database.sessions) as session:
        tenant = await tenants_service.get_tenant(session, "runs")
        stored_run, rows = await runs_service.get_run(session, tenant, run.id)
        other = await tenants_service.ensure_tenant(session, "someone-else")
        with pytest.raises(ForecastRunNotFound, match=f"forecast run {run.id} does not"):
            await runs_service.get_run(session, other, run.id)
    assert (stored_run.id, stored_run.trigger) == (run.id, RunTrigger.CLI)
    frame = pd.DataFrame([{c: getattr(r, c) for c in (
        "product", "version", "role", "date", "lead_days", "forecast", "baseline")}
        for r in rows])
    assert len(frame) == 2 * 2 * 14
    champion = frame.loc[frame["role"] == ForecastRole.CHAMPION]
    assert set(champion["version"]) == {1}
    assert sorted(set(champion["lead_days"])) == list(range(1, 15))
    answer = saved.forecast.forecast
    assert champion.sort_values(["product", "date"])["forecast"].tolist() == pytest.approx(
        answer.sort_values(["product", "date"])["forecast"].tolist())
    # The baseline is last week's same weekday before the origin, computed here anew.
    bread = sales.loc[sales["product"] == "bread"]
    last_week = bread.loc[(bread["date"] > CUT - timedelta(days=7)) & (bread["date"] <= CUT)]
    by_weekday = {d.weekday(): q for d, q in zip(last_week["date"], last_week["quantity"],
                                                 strict=True)}
    rows_bread = champion.loc[champion["product"] == "bread"]
    assert rows_bread["baseline"].tolist() == [by_weekday[d.weekday()]
                                               for d in rows_bread["date"]]
    # Seasonal naive is the champion here: the same numbers.
    assert rows_bread["forecast"].tolist() == rows_bread["baseline"].tolist()

    # The sales arrive: scored per product (champion), version and lead time.
    await import_directory(database, "runs",
                           _write(tmp_path / "later", sales.loc[sales["date"] > CUT]))
    async with unit_of_work(database.sessions) as session:
        tenant = await tenants_service.get_tenant(session, "runs")
        report = await accuracy_service.realised_accuracy(session, tenant,
                                                          settings=database.settings)
    by_product = {p.product: p for p in report.products}
    actual = sales.assign(date=sales["date"]).set_index(["product", "date"])["quantity"]
    for product, result in by_product.items():
        mine = frame.loc[frame["product"] == product]
        for version in (1, 2):
            rows_v = mine.loc[mine["version"] == version]
            y = np.array([actual[(product, d)] for d in rows_v["date"]])
            expected = np.abs(y - rows_v["forecast"].to_numpy()).sum() / y.sum()
            got = next(v for v in result.versions if v.version == version)
            assert got.overall.wape == pytest.approx(expected, rel=1e-12)
            assert sorted(got.by_lead) == ["1-7", "8-14"]
            assert got.by_lead["1-7"].n_days == 7
        assert result.overall.wape == pytest.approx(
            next(v for v in result.versions if v.version == 1).overall.wape)
