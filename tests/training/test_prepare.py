"""What `prepare_job` hands to the pool."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import import_directory, make_settings, write_tiny_dataset
from ovencast.db.runtime import Database
from ovencast.forecasting.features import AlignmentReport
from ovencast.forecasting.validation import ValidationReport
from ovencast.settings import Settings
from ovencast.training import data as data_module
from ovencast.training import prepare as prepare_module
from ovencast.training.embedded import prepare_training
from ovencast.training.prepare import PreparedJob
from ovencast.training.task import ProductTask


def test_tasks_and_prepared_jobs_have_short_reprs(tmp_path: Path) -> None:
    """asyncio.run (Python 3.11) formats the repr of its main task's result when it
    restores the SIGINT handler; a PreparedJob's default repr printed every task's
    history frame and boosters (seconds on a real tenant)."""
    history = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=2000),
                            "y": np.arange(2000.0), "closed": False})
    task = ProductTask(settings=Settings(ovencast_home=tmp_path), job_id=7, run_id=3,
                       tenant_id=1, tenant_name="kiel", product="bread",
                       product_class="high_volume", history=history, regressors=(),
                       families=("auto",), country="DE", subdivision="SH",
                       global_fits=b"x" * 1_000_000)
    prepared = PreparedJob(job_id=7, tasks=[task] * 20,
                           validation=ValidationReport(issues=()),
                           alignment=AlignmentReport(None, None, ()),
                           rejected={"cake": "too short"})
    assert repr(task) == ("ProductTask(job_id=7, run_id=3, tenant='kiel', product='bread', "
                          "rows=2000, families=('auto',))")
    assert repr(prepared) == "PreparedJob(job_id=7, tasks=20, rejected=['cake'])"


@pytest.mark.parametrize(("models", "with_holiday"), [(["prophet"], False), (["auto"], True)])
async def test_the_original_fits_the_tenants_columns_not_a_computed_holiday(
        tmp_path: Path, models: list[str], with_holiday: bool) -> None:
    """The original system had no holiday calendar (docs/decisions/007): where no file has
    a `public_holiday` column, the one the tenant frame computes from the country is not
    among the original's regressors; every other model choice reads it."""
    database = Database.open(make_settings(tmp_path / "home"))
    await database.ready()
    try:
        await import_directory(database, "t", write_tiny_dataset(
            tmp_path / "data", ["bread"], days=120, weather=True), country="DE",
            subdivision="NI")
        prepared = await prepare_training(database, "t", models=models)
    finally:
        await database.close()
    [task] = prepared.tasks
    # The original's frame is built without the holiday calendar (decision 033).
    assert ("public_holiday" in prepared.alignment.computed_regressors) is with_holiday
    assert ("public_holiday" in task.regressors) is with_holiday
    assert len(task.regressors) > 0  # the weather file's columns stay


@pytest.mark.parametrize("models", [["prophet"], ["auto"]])
async def test_the_original_reads_its_regressors_as_the_original_system_prepared_them(
        tmp_path: Path, models: list[str]) -> None:
    """Decision 033: a weather code missing on a third of the days, and a 6-day gap in
    the temperatures. The original approach keeps the code (missing: 0) and interpolates
    the gap, so no day is clipped, and the job's alignment report says so; every other
    model choice drops the code and clips the gap's days, as SPEC's alignment rule says."""
    directory = write_tiny_dataset(tmp_path / "data", ["bread"], days=120, weather=True)
    weather = pd.read_csv(directory / "weather.csv")
    weather["weather_code"] = [np.nan if i % 3 == 0 else float(i % 7) for i in range(len(weather))]
    weather.loc[50:55, "temperature_c"] = np.nan
    weather.to_csv(directory / "weather.csv", index=False)
    database = Database.open(make_settings(tmp_path / "home"))
    await database.ready()
    try:
        await import_directory(database, "t", directory, country="DE")
        prepared = await prepare_training(database, "t", models=models)
    finally:
        await database.close()
    [task] = prepared.tasks
    notes = " ".join(prepared.alignment.notes)
    if models == ["prophet"]:
        assert task.regressors == ("temperature_c", "weather_code")
        assert len(task.history) == 120
        history = task.history.set_index("date")
        assert (history["weather_code"].iloc[::3] == 0.0).all()
        gap = history["temperature_c"].iloc[49:57].to_numpy()
        np.testing.assert_allclose(np.diff(gap), (gap[-1] - gap[0]) / 7)  # a straight line
        assert "weather_code: 60 missing values taken as 0" in notes
        assert "temperature_c: 6 missing values interpolated" in notes
        assert prepared.alignment.clipped == {}
    else:
        assert task.regressors == ("temperature_c", "public_holiday")
        assert "weather_code" in prepared.alignment.dropped_regressors
        assert len(task.history) == 114
        assert prepared.alignment.clipped["bread"].n_days == 6
        assert "as the original system" not in notes


async def test_preparing_a_job_leaves_the_event_loop_free(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A service worker prepares a job on its event loop, which also sends the queue's
    heartbeats: the preparation's CPU-heavy steps (building and validating the tenant
    frame, splitting it by product, the products' verdicts) run in threads, or a chain's
    minutes of them would make another worker prepare the job again as stalled. The real
    steps run; each records the thread it ran on."""
    threads: dict[str, set[int]] = {}

    def recorded(module: object, name: str) -> None:
        real = getattr(module, name)

        def step(*args: object, **kwargs: object) -> object:
            threads.setdefault(name, set()).add(threading.get_ident())
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, step)

    recorded(data_module, "build_tenant_frame")
    recorded(data_module, "validate_sales")
    recorded(prepare_module, "_split")
    recorded(prepare_module, "_verdicts")
    database = Database.open(make_settings(tmp_path / "home"))
    await database.ready()
    try:
        await import_directory(database, "t", write_tiny_dataset(
            tmp_path / "data", ["bread", "rolls"], days=120), country="DE")
        loop_thread = threading.get_ident()
        prepared = await prepare_training(database, "t", models=["seasonal_naive"])
    finally:
        await database.close()
    assert len(prepared.tasks) == 2
    assert set(threads) == {"build_tenant_frame", "validate_sales", "_split", "_verdicts"}
    assert all(loop_thread not in ran_on for ran_on in threads.values())
