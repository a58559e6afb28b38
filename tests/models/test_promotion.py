"""The promotion gate (training/promotion.py): a retrained version becomes active only if
it is not worse than the active one on the same windows of the new data; otherwise it is
kept as a challenger, with the comparison stored and shown (`ovencast models`)."""

from __future__ import annotations

import asyncio
import io
import json
import math
from collections.abc import AsyncIterator, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from conftest import import_directory, make_settings, settings_env
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import ModelVersion
from ovencast.forecasting.families.base import NO_CONTEXT
from ovencast.forecasting.frame import CLOSED, DATE, Y
from ovencast.models import service as models_service
from ovencast.models.states import ActivationPolicy, Standing, Verdict
from ovencast.tenants import service as tenants_service
from ovencast.training import pool
from ovencast.training.embedded import finish_training, prepare_training
from ovencast.training.promotion import ModelSpec, PromotionPolicy, compare, judge
from ovencast.training.task import ProductOutcome

START = date(2024, 1, 1)
DAYS = 150
# A strongly weekly product: Saturdays sell three times a Monday. A flat forecast
# (croston) is far worse here than last week's same weekday (seasonal naive).
WEEKDAY_FACTORS = (0.6, 0.7, 0.8, 0.9, 1.2, 1.9, 1.5)


def weekly_sales(directory: Path, products: Sequence[str] = ("bread",), *,
                 days: int = DAYS, seed: int = 3) -> Path:
    rng = np.random.default_rng(seed)
    lines = ["date,product,quantity"]
    for index, product in enumerate(products):
        level = 80.0 + 40.0 * index
        for offset in range(days):
            day = START + timedelta(days=offset)
            mean = level * WEEKDAY_FACTORS[day.weekday()]
            lines.append(f"{day},{product},{rng.poisson(mean)}")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sales.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def history_frame(days: int = DAYS) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    dates = pd.date_range(START, periods=days, freq="D")
    y = [float(rng.poisson(80.0 * WEEKDAY_FACTORS[d.weekday()])) for d in dates]
    return pd.DataFrame({DATE: dates, Y: y, CLOSED: False})


async def train(database: Database, tenant: str, *, models: Sequence[str],
                activation: ActivationPolicy = ActivationPolicy.IF_BETTER
                ) -> list[ProductOutcome]:
    """What `ovencast train --models ... --activate ...` does, in-process."""
    prepared = await prepare_training(database, tenant, models=models,
                                      activation=activation)
    outcomes = await asyncio.to_thread(pool.run_tasks, prepared.tasks,
                                       settings=database.settings)
    await finish_training(database, prepared.job_id, outcomes)
    return outcomes


async def versions_of(database: Database, product: str) -> list[ModelVersion]:
    async with unit_of_work(database.sessions) as session:
        return list((await session.scalars(select(ModelVersion).where(
            ModelVersion.product == product).order_by(ModelVersion.version))).all())


# -- the policy -------------------------------------------------------------------------
@pytest.mark.parametrize(("new", "active", "promoted"), [
    (0.30, 0.30, True),          # equal: not worse
    (0.306, 0.30, True),         # 2 % worse: within the tolerance
    (0.3061, 0.30, False),       # just beyond it
    (0.10, 0.30, True),          # better
    (math.nan, 0.30, False),     # the new one cannot be scored, the active one can
    (0.30, math.nan, True),      # nothing to lose against
    (math.nan, math.nan, True),
])
def test_not_worse_beyond_the_tolerance(new: float, active: float, promoted: bool) -> None:
    assert PromotionPolicy(tolerance=0.02).promotes(new, active) is promoted


@pytest.mark.parametrize("options", [{"tolerance": -0.1}, {"tolerance": 1.0},
                                     {"windows": 0}, {"window_days": 0}])
def test_a_policy_out_of_range_is_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        PromotionPolicy(**options)


def test_both_specs_are_scored_on_the_same_windows_of_the_new_data() -> None:
    history = history_frame()
    naive = ModelSpec("seasonal_naive", {}, ())
    flat = ModelSpec("croston", {}, ())
    policy = PromotionPolicy(windows=3)
    result = compare(history, flat, naive, policy, context=NO_CONTEXT)
    last = history[DATE].max()
    assert result.windows[-1] == ((last - pd.Timedelta(days=27)).date().isoformat(),
                                  last.date().isoformat())
    assert len(result.windows) == 3
    assert result.n_days == 84
    # Independently: seasonal naive on the last window is last week's same weekday.
    window = history.loc[history[DATE] > last - pd.Timedelta(days=28)]
    before = history.loc[history[DATE] <= last - pd.Timedelta(days=28)].tail(7)
    by_weekday = dict(zip(before[DATE].dt.dayofweek, before[Y], strict=True))
    naive_forecast = window[DATE].dt.dayofweek.map(by_weekday).to_numpy(dtype=float)
    y = window[Y].to_numpy(dtype=float)
    expected = float(np.abs(y - naive_forecast).sum() / y.sum())
    assert result.active_window_wapes[-1] == pytest.approx(expected, rel=1e-12)
    assert result.new_wape > result.active_wape * 1.2  # flat loses clearly
    decision = judge(result, policy, active_version=4)
    assert (decision.verdict, decision.activate, decision.challenger) == (
        Verdict.KEPT, False, True)
    assert "version 4 on 3 windows" in decision.reason
    assert judge(compare(history, naive, flat, policy, context=NO_CONTEXT), policy,
                 active_version=4).verdict is Verdict.PROMOTED


# -- end to end: training, the database, the command line --------------------------------
@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[Database]:
    """The embedded shape (SQLite under OVENCAST_HOME); tests/api/test_governance.py
    runs the gate on PostgreSQL."""
    database = Database.open(make_settings(tmp_path / "home"))
    await database.ready()
    try:
        yield database
    finally:
        await database.close()


async def test_a_worse_forced_family_is_kept_as_a_challenger(
        embedded: Database, tmp_path: Path, run_cli: Any) -> None:
    database, settings = embedded, embedded.settings
    await import_directory(database, "gate", weekly_sales(tmp_path / "data"))
    first = await train(database, "gate", models=["seasonal_naive"])
    assert first[0].details["promotion"]["verdict"] == Verdict.FIRST

    worse = await train(database, "gate", models=["croston"])
    promotion = worse[0].details["promotion"]
    assert promotion["verdict"] == Verdict.KEPT
    assert promotion["comparison"]["new_wape"] > promotion["comparison"]["active_wape"]

    v1, v2 = await versions_of(database, "bread")
    assert (v1.standing, v2.standing) == (Standing.ACTIVE, Standing.CHALLENGER)
    assert v2.family == "croston"
    assert v2.promotion is not None
    assert v2.promotion["active_version"] == 1
    assert len(v2.promotion["comparison"]["windows"]) == settings.promotion_windows

    # `ovencast models` shows the challenger and the comparison (JSON and the table).
    listed = run_cli(["models", "--tenant", "gate", "--format", "json"], settings)
    assert listed.returncode == 0, listed.stderr
    records = {r["version"]: r for r in json.loads(listed.stdout)}
    assert (records[1]["standing"], records[2]["standing"]) == ("active", "challenger")
    assert records[2]["verdict"] == "kept"
    assert records[2]["gate_wape"] == pytest.approx(promotion["comparison"]["new_wape"])
    assert records[2]["active_gate_wape"] == pytest.approx(
        promotion["comparison"]["active_wape"])
    table = run_cli(["models", "--tenant", "gate"],
                    {**settings_env(settings), "COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    assert "bread v2: challenger; worse, kept as challenger: WAPE" in " ".join(
        table.stdout.split())

    # `always` forces it, `never` keeps even a good one back; activating a challenger
    # makes it the champion.
    forced = await train(database, "gate", models=["croston"],
                         activation=ActivationPolicy.ALWAYS)
    assert forced[0].details["promotion"]["verdict"] == Verdict.FORCED
    held = await train(database, "gate", models=["seasonal_naive"],
                       activation=ActivationPolicy.NEVER)
    assert held[0].details["promotion"]["verdict"] == Verdict.HELD
    standings = [(v.version, v.standing) for v in await versions_of(database, "bread")]
    # At most MAX_CHALLENGERS challengers: v2 and v4 are; v3 is active.
    assert standings == [(1, Standing.RETIRED), (2, Standing.CHALLENGER),
                         (3, Standing.ACTIVE), (4, Standing.CHALLENGER)]
    async with unit_of_work(database.sessions) as session:
        tenant = await tenants_service.get_tenant(session, "gate")
        await models_service.activate(session, tenant, "bread", 4)
    standings = [(v.version, v.standing) for v in await versions_of(database, "bread")]
    assert standings[2:] == [(3, Standing.RETIRED), (4, Standing.ACTIVE)]

    jobs = run_cli(["jobs", "--tenant", "gate", "--format", "csv"], settings)
    assert jobs.returncode == 0, jobs.stderr
    frame = pd.read_csv(io.StringIO(jobs.stdout))
    assert list(frame["activation"]) == ["never", "always", "if-better", "if-better"]
    bad = run_cli(["train", "--tenant", "gate", "--activate", "sometimes"], settings)
    assert bad.returncode == 2
    assert "sometimes" in bad.stderr
