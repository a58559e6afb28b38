"""training/process_state.py: what a pool process keeps between the products it trains."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import make_settings
from ovencast.forecasting.families.global_fits import GlobalFits
from ovencast.store import store_for
from ovencast.training import process_state
from ovencast.training.process_state import parsed_global_fits, task_engine, task_global_fits
from ovencast.training.task import ProductTask


def test_a_pool_process_parses_a_jobs_global_models_once() -> None:
    """Every task of a job carries the same payload (a new bytes object per task once
    unpickled in the pool process): parsed once, the same models for each."""
    fits = GlobalFits(products=("bread", "rolls"), regressors=(), boosters={"2024-01-01": "t"},
                      seconds=1.0, sales_features=("mean_91",))
    first, second = fits.to_bytes(), bytes(bytearray(fits.to_bytes()))
    assert first is not second
    assert parsed_global_fits(first) is parsed_global_fits(second)
    assert parsed_global_fits(first) == fits
    other = GlobalFits(products=fits.products, regressors=(), boosters=fits.boosters,
                       seconds=2.0, sales_features=fits.sales_features)
    assert parsed_global_fits(other.to_bytes()) is not parsed_global_fits(first)


def test_a_pool_process_loads_a_jobs_stored_global_models_once_and_verified(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An embedded task names the job's stored global models (key, sha256) instead of
    carrying them: each pool process loads and parses them once per job, and refuses a
    copy whose checksum differs (the product then trains without them)."""
    monkeypatch.setattr(process_state, "_stored_fits", {})  # a new process
    settings = make_settings(tmp_path / "home")
    fits = GlobalFits(products=("bread",), regressors=(), boosters={"2024-01-01": "t"},
                      seconds=1.0, sales_features=("mean_91",))
    stored = store_for(settings).save("t1/global-models-x/lightgbm/v000001-a.json",
                                      fits.to_bytes())

    def task(key: tuple[str, str]) -> ProductTask:
        return ProductTask(settings=settings, job_id=1, run_id=1, tenant_id=1,
                           tenant_name="t1", product="bread", product_class="regular",
                           history=pd.DataFrame(), regressors=(), families=("auto",),
                           country=None, subdivision=None, global_fits_key=key)

    good = task((stored.key, stored.sha256))
    path = Path(settings.resolved_model_storage_path) / stored.key
    # Refused while the stored copy is damaged, not remembered as refused: once the copy
    # is whole again (a store that was briefly wrong or down) the next product loads it.
    path.write_bytes(fits.to_bytes().replace(b"bread", b"brexd"))
    assert task_global_fits(good) is None
    path.write_bytes(fits.to_bytes())
    assert task_global_fits(good) == fits
    assert task_global_fits(good) is task_global_fits(task((stored.key, stored.sha256)))
    assert task_global_fits(task((stored.key, "0" * 64))) is None


def test_a_pool_process_keeps_one_sqlite_engine_per_database(tmp_path: Path) -> None:
    """SQLite's engine (no connection held between units of work) is made once per pool
    process and database, so its compiled statements serve every product; another
    database's engine, whose pool is bound to the task's event loop, is the task's own."""
    first = make_settings(tmp_path / "a")
    engine, shared = task_engine(first)
    assert shared
    assert task_engine(make_settings(tmp_path / "a"))[0] is engine
    other, _ = task_engine(make_settings(tmp_path / "b"))
    assert other is not engine
    assert task_engine(first)[0] is not engine  # one database at a time is kept
    postgres = make_settings(tmp_path / "c",
                             database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none")
    one, shared = task_engine(postgres)
    assert not shared
    assert task_engine(postgres)[0] is not one
