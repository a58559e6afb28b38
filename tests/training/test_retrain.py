"""Retraining with Prophet: the hyper-parameter cache and warm start, end to end through the
embedded pipeline (worker processes, database, store)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from conftest import import_directory, make_settings, train_in_process
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import ModelVersion
from ovencast.forecasting.classes import trials_for
from ovencast.forecasting.frame import CLOSED, DATE, Y
from ovencast.training.fitting import RETRAIN_TRIAL_FRACTION, FitPlan, fit_product


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
    assert warm["n_trials"] <= math.ceil(warm["trial_budget"] * RETRAIN_TRIAL_FRACTION)
    if warm["stopped_early"]:
        assert warm["n_trials"] == 1
        assert warm["best_params"] == cold["best_params"]
    assert versions[1].data_end > versions[0].data_end


def test_prophet_without_a_defined_objective_falls_back_to_its_defaults() -> None:
    """An intermittent product with no sale in the search's validation window has no MAPE
    to minimise: it gets Prophet's default parameters, not "no model"."""
    days = pd.date_range("2024-01-01", periods=240, freq="D")
    rng = np.random.default_rng(3)
    y = rng.poisson(2.0, size=len(days)).astype(float)
    y[-56:-28] = 0.0  # the 28 days before the holdout: the search's validation window
    history = pd.DataFrame({DATE: days, Y: y, CLOSED: False})
    result = fit_product(history, FitPlan(
        families=("prophet",), product_class="low_volume", country="DE", subdivision=None,
        regressors=(), time_limit_s=120))
    search = result.details["search"]
    assert result.best.family == "prophet"
    assert search["n_trials"] == 0 and "MAPE" in search["skipped"]
