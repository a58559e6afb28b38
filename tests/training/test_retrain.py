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
from ovencast.forecasting.classes import SearchClassRule, trials_for
from ovencast.forecasting.frame import CLOSED, DATE, ZERO_SALES, Y
from ovencast.training.fitting import fit_product
from ovencast.training.original import RETRAIN_TRIAL_FRACTION
from ovencast.training.plan import FitPlan


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
    assert cold["warm_started"] is False
    assert cold["enqueued_params"] is None
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


def test_the_original_approach_minimises_the_mae_where_no_sale_gives_a_mape() -> None:
    """docs/decisions/007-faithful-original.md: the search's window is the last 28 days of
    the training data; with no sale there (MAPE undefined) it minimises the MAE, with the
    trial budget of the original class rule, and closed days are fitted as zero sales."""
    days = pd.date_range("2024-01-01", periods=240, freq="D")
    rng = np.random.default_rng(3)
    y = rng.poisson(2.0, size=len(days)).astype(float)
    y[-28:] = 0.0
    closed = np.zeros(len(days), dtype=bool)
    closed[::7] = True
    y[closed] = 0.0
    history = pd.DataFrame({DATE: days, Y: y, CLOSED: closed})
    result = fit_product(history, FitPlan(
        families=("prophet",), product_class="low_volume", country="DE", subdivision=None,
        regressors=(), time_limit_s=120))
    search = result.details["search"]
    assert result.best.family == "prophet"
    assert search["objective"] == "mae"
    assert search["n_trials"] == search["trial_budget"] == SearchClassRule().trials(y)
    assert result.details["closed_days"] == ZERO_SALES
    assert result.details["selection"]["basis"] == "search_window"
