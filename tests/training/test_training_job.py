"""Training jobs end to end through the process pool: one product's failure or timeout is
recorded with its reason while the others train."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from conftest import import_directory, make_settings, train_in_process
from ovencast.cli.governance import version_record
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import ModelVersion
from ovencast.forecasting.families import FAMILY_CLASSES, FitContext, ForecastModel
from ovencast.models.schemas import ModelVersionOut
from ovencast.settings import Settings
from ovencast.training.locks import product_lock
from ovencast.training.task import ProductTask

SLOW_FIT_SLEEP_S = 300.0
_pidfile: Path | None = None
"""Where `SlowFit` writes its worker's pid: set in the worker when the family name is
unpickled there (workers are forked from a fork server started earlier, so they do not
see environment variables set by a test)."""


class SlowFit(ForecastModel):
    """A model family whose fit never finishes in time: it records the worker's pid and
    sleeps. Test-only; registered wherever this module is imported."""

    family = "test_slow_fit"

    def _fit(self, history: pd.DataFrame, context: FitContext) -> None:
        if _pidfile is not None:
            _pidfile.write_text(str(os.getpid()), encoding="utf-8")
        time.sleep(SLOW_FIT_SLEEP_S)

    def _predict(self, future: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(future))

    def _state(self) -> dict[str, Any]:
        return {}

    def _restore(self, state: Mapping[str, Any]) -> None:
        pass


# Test-only: known wherever this module is imported (the worker imports it below).
FAMILY_CLASSES[SlowFit.family] = f"{__name__}:SlowFit"


class ImportingFamilyName(str):
    """A family name that, when unpickled in a worker, imports this module and so
    maps `SlowFit`'s name there too (the worker otherwise knows only ovencast's families),
    and tells `SlowFit` where to write its pid."""

    pidfile: Path

    def __reduce__(self) -> tuple[Any, ...]:
        return (_unpickle_name, (str(self), self.pidfile))


def _unpickle_name(name: str, pidfile: Path) -> str:
    global _pidfile
    _pidfile = pidfile
    return name


def _process_is_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return state in ("Z", "X")  # a zombie has stopped running


async def test_timed_out_product_is_killed_and_the_rest_of_the_job_goes_on(
        tmp_path: Path, sqlite_url: str, tiny_dataset: Callable[..., Path]) -> None:
    # Generous enough that a seasonal naive fit never hits it, even on a loaded CI box.
    settings = make_settings(tmp_path / "home", sqlite_url, max_training_time_minutes=0.1,
                             max_concurrent_training_jobs=2)
    pidfile = tmp_path / "slow.pid"
    database = Database.open(settings)
    try:
        await database.ready()
        await import_directory(database, "t1", tiny_dataset(("bread", "cake", "rolls"),
                                                            days=60))

        def make_cake_slow(tasks: list[ProductTask]) -> list[ProductTask]:
            name = ImportingFamilyName(SlowFit.family)
            name.pidfile = pidfile
            slow = (name,)
            return [dataclasses.replace(t, families=slow) if t.product == "cake" else t
                    for t in tasks]

        result = await train_in_process(database, "t1", adjust_tasks=make_cake_slow)
        async with unit_of_work(database.sessions) as session:
            versions = (await session.scalars(select(ModelVersion))).all()
    finally:
        await database.close()

    cake = result.runs["cake"]
    assert cake.status == "timed_out"
    assert cake.reason is not None
    assert "MAX_TRAINING_TIME_MINUTES=0.1" in cake.reason
    assert cake.model_version_id is None
    assert cake.finished_at is not None
    assert {p: r.status for p, r in result.runs.items() if p != "cake"} == {
        "bread": "trained", "rolls": "trained"}
    assert result.job.status == "partial"
    assert sorted(v.product for v in versions) == ["bread", "rolls"]
    # The slow fit really ran in a worker process, and that process was stopped.
    assert pidfile.is_file(), "the slow fit never started"
    assert _process_is_gone(int(pidfile.read_text()))
    # The killed worker left no stale lock behind.
    tenant_id = result.prepared.tasks[0].tenant_id
    with product_lock(settings.lock_dir, tenant_id, "cake", timeout_s=5):
        pass


async def test_product_with_too_few_days_fails_validation_while_others_train(
        database: Database, settings: Settings, tiny_dataset: Callable[..., Path]) -> None:
    # A product name that is no safe file name: artifact keys and lock files cope.
    directory = tiny_dataset({"Brot/Weiß": 90, "rolls": 90, "new_cake": 12})
    await import_directory(database, "t1", directory)

    result = await train_in_process(database, "t1")

    new_cake = result.runs["new_cake"]
    assert new_cake.status == "refused"
    assert new_cake.reason is not None
    assert "12 daily data points" in new_cake.reason
    assert str(settings.min_training_data_days) in new_cake.reason
    assert new_cake.model_version_id is None
    assert "new_cake" in result.prepared.rejected
    assert [t.product for t in result.prepared.tasks] == ["Brot/Weiß", "rolls"]
    for product in ("Brot/Weiß", "rolls"):
        run = result.runs[product]
        assert run.status == "trained", run.reason
        assert run.model_version_id is not None
        assert run.duration_s is not None
        assert run.duration_s >= 0
    assert result.job.status == "partial"
    assert result.job.finished_at is not None
    # The validation report is stored with the job, errors and per-product stats.
    report = result.job.validation_report
    assert report is not None
    assert "new_cake" in str(report)
    async with unit_of_work(database.sessions) as session:
        active = (await session.scalars(select(ModelVersion).where(
            ModelVersion.is_active.is_(True)).order_by(ModelVersion.product))).all()
    assert [(v.product, v.version, v.family) for v in active] == [
        ("Brot/Weiß", 1, "seasonal_naive"), ("rolls", 1, "seasonal_naive")]
    assert all(len(v.sha256) == 64 for v in active)


async def test_a_product_with_the_minimum_days_trains_with_a_shorter_holdout(
        database: Database, tiny_dataset: Callable[..., Path]) -> None:
    """30 days pass the data rules (SPEC); a 28-day holdout would leave 2 to fit on and
    every family failing. The product trains under `auto`, scored on a shorter holdout,
    beside a product with a long history that keeps the full 28 days."""
    await import_directory(database, "t1", tiny_dataset({"rolls": 90, "new_cake": 30}))

    result = await train_in_process(database, "t1")

    assert result.job.status == "succeeded", result.job.error
    for product in ("rolls", "new_cake"):
        assert result.runs[product].status == "trained", result.runs[product].reason
    async with unit_of_work(database.sessions) as session:
        versions = {v.product: v for v in (await session.scalars(select(ModelVersion))).all()}
    assert {p: v.holdout_days for p, v in versions.items()} == {"rolls": 28, "new_cake": 16}
    # as the API and `ovencast models --format json` give it
    assert ModelVersionOut.model_validate(versions["new_cake"]).holdout_days == 16
    assert version_record(versions["new_cake"])["holdout_days"] == 16
    assert versions["new_cake"].metrics["n_days"] == 16
    assert versions["new_cake"].details["holdout"]["end"] == "2024-03-30"


async def test_job_fails_when_no_product_can_train(
        database: Database, tiny_dataset: Callable[..., Path]) -> None:
    await import_directory(database, "t1", tiny_dataset({"bread": 10, "rolls": 20}))
    result = await train_in_process(database, "t1")
    assert result.job.status == "failed"
    assert result.job.error
    assert {r.status for r in result.runs.values()} == {"refused"}
    assert all(r.reason for r in result.runs.values())
