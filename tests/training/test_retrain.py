"""Retraining with Prophet: the hyper-parameter cache and warm start, end to end through the
embedded pipeline (worker processes, database, store)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import import_directory, make_settings, train_in_process
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import ModelVersion
from ovencast.forecasting.classes import trials_for


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_retrain_enqueues_the_cached_parameters_first(
        tmp_path: Path, database_url: str, tiny_dataset: Callable[..., Path]) -> None:
    settings = make_settings(tmp_path / "home", database_url)
    database = Database.open(settings)
    try:
        await database.ready()
        await import_directory(database, "t1", tiny_dataset(("bread",), days=150))
        first = await train_in_process(database, "t1", models=("prophet",),
                                       until=date(2024, 5, 22))
        second = await train_in_process(database, "t1", models=("prophet",))
        async with unit_of_work(database.sessions) as session:
            versions = list((await session.scalars(
                select(ModelVersion).order_by(ModelVersion.version))).all())
    finally:
        await database.close()

    assert first.job.status == second.job.status == "succeeded"
    cold, warm = (v.details["search"] for v in versions)
    product_class = versions[0].details["product_class"]
    assert cold["warm_started"] is False and cold["enqueued_params"] is None
    assert cold["n_trials"] == cold["trial_budget"] == trials_for(product_class)
    # The retrain found the first version's best parameters in the cache and tried them
    # first; the optimiser was warm-started from the first version's fitted model.
    assert warm["warm_started"] is True
    assert warm["enqueued_params"] == cold["best_params"]
    assert warm["n_trials"] <= warm["trial_budget"]
    if warm["stopped_early"]:
        assert warm["n_trials"] == 1
        assert warm["best_params"] == cold["best_params"]
    assert versions[1].data_end > versions[0].data_end
