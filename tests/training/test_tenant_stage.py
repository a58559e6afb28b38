"""The tenant stage of a training job (training/tenant_stage.py): a job whose model choice uses
the global LightGBM model trains it once, stores it as an artifact recorded with the job,
hands it to every product's task, and the products' lightgbm fits adopt it."""

from __future__ import annotations

import contextlib
import json
import pickle
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from conftest import import_directory, make_settings, train_in_process
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import ModelVersion, TrainingJob, TrainingRun
from ovencast.errors import ArtifactMissing, ChecksumMismatch
from ovencast.forecasting.families import lightgbm_global
from ovencast.forecasting.families.global_fits import GlobalFits
from ovencast.forecasting.families.lightgbm_global import LightGBMModel
from ovencast.forecasting.families.registry import load_model
from ovencast.forecasting.global_stage import cutoffs_of
from ovencast.forecasting.holdout import HoldoutSplit
from ovencast.forecasting.selection import BacktestPlan
from ovencast.jobs import service as jobs_service
from ovencast.jobs.endpoints import job_detail
from ovencast.jobs.states import RunStatus
from ovencast.models.service import load_verified
from ovencast.settings import Settings
from ovencast.store import sha256_hex, store_for
from ovencast.tenants import service as tenants_service
from ovencast.training import process_state, tenant_stage
from ovencast.training.fitting import fit_product
from ovencast.training.pool import child_fit_args, fit_in_child
from ovencast.training.prepare import PreparedJob, prepare_job, product_task
from ovencast.training.task import ProductTask
from ovencast.training.tenant_stage import GLOBAL_MODELS_KEY
from ovencast.training.worker import fit_plan

PRODUCTS = ("bread", "rolls")
# 120 days: a 92-day training part with two backtest windows, quick to train.
DAYS = 120


def _stored(settings: Settings, task: ProductTask) -> bytes:
    """The global models a task names, checksum verified (while the job runs)."""
    assert task.global_fits_key is not None
    key, sha256 = task.global_fits_key
    return store_for(settings).load(key, expected_sha256=sha256)


def _keeping_payloads(settings: Settings, into: dict[str, bytes]
                      ) -> Callable[[list[ProductTask]], list[ProductTask]]:
    """An `adjust_tasks` that keeps the stored global models each task names, read
    before the pool runs (the job's end deletes them)."""
    def keep(tasks: list[ProductTask]) -> list[ProductTask]:
        for task in tasks:
            assert task.global_fits_key is not None
            into[task.global_fits_key[0]] = _stored(settings, task)
        return tasks

    return keep


async def test_auto_job_stores_the_tenant_models_and_hands_them_to_every_task(
        database: Database, settings: Settings, tiny_dataset: Callable[..., Path]) -> None:
    await import_directory(database, "t1", tiny_dataset(PRODUCTS, days=DAYS, weather=True))
    stored_payloads: dict[str, bytes] = {}
    result = await train_in_process(database, "t1", models=("auto",),
                                    adjust_tasks=_keeping_payloads(settings, stored_payloads))

    assert result.job.status == "succeeded", result.job.error
    assert {p: r.status for p, r in result.runs.items()} == dict.fromkeys(PRODUCTS, "trained")
    record = result.job.global_models
    assert record is not None
    assert set(record) == {"family", "products", "cutoffs", "seconds", "key", "sha256",
                           "retired", "horizon_weight", "horizon_evidence", "engine",
                           "serving"}
    assert record["engine"] == "local"  # no DASK_SCHEDULER_ADDRESS
    # The horizon member was weighed on the products' pooled backtests: the weight
    # recorded is the one with the lowest pooled WAPE among the candidates.
    evidence = record["horizon_evidence"]
    assert set(evidence) == {"0", "0.25", "0.5", "0.75", "1"}
    assert evidence[f"{record['horizon_weight']:g}"] == min(evidence.values())
    assert (record["family"], record["products"]) == ("lightgbm", len(PRODUCTS))
    assert record["seconds"] >= 0
    assert GLOBAL_MODELS_KEY in record["key"]
    # Every task named the stored payload (by key and checksum, not carrying it), which
    # the pool processes loaded.
    assert [t.product for t in result.prepared.tasks] == list(PRODUCTS)
    assert all(t.global_fits is None for t in result.prepared.tasks)
    assert all(t.global_fits_key == (record["key"], record["sha256"])
               for t in result.prepared.tasks)
    payload = stored_payloads[record["key"]]
    assert sha256_hex(payload) == record["sha256"]
    fits = GlobalFits.from_bytes(payload)
    assert fits.products == PRODUCTS
    assert sorted(fits.boosters) == record["cutoffs"]
    assert fits.horizon is not None
    assert sorted(fits.horizon.boosters) == record["cutoffs"]
    assert len(record["cutoffs"]) >= 3  # backtest windows, holdout, final fit
    # The job has ended: its copy of all cut-offs is gone; the serving copy of the final
    # cut-off, which the versions refer to, stays.
    assert record["retired"] is True
    store = store_for(settings)
    assert not store.exists(record["key"])
    assert not [key for key in store.list() if GLOBAL_MODELS_KEY in key]
    assert record["serving"]["cutoffs"] == [max(record["cutoffs"])]
    assert store.exists(record["serving"]["key"])
    assert not record["serving"].get("retired")

    # lightgbm was one of the candidates each product backtested.
    async with unit_of_work(database.sessions) as session:
        versions = (await session.scalars(select(ModelVersion))).all()
    assert sorted(v.product for v in versions) == list(PRODUCTS)
    for version in versions:
        board = {row["family"]: row for row in version.details["leaderboard"]}
        assert board["lightgbm"].get("wape") is not None, board

    # The job's detail (GET /training-jobs/{id}, the WebSocket snapshot) shows the record.
    async with unit_of_work(database.sessions) as session:
        detail = await job_detail(session, result.job.id)
    assert detail.global_models == record


async def test_a_large_tenants_blend_partner_is_weighed_once_in_the_tenant_stage(
        database: Database, settings: Settings, tiny_dataset: Callable[..., Path]) -> None:
    # TENANT_BLEND_MIN_PRODUCTS=2: this two-product tenant counts as large.
    await import_directory(database, "t1", tiny_dataset(PRODUCTS, days=DAYS, weather=True))
    large = Database.open(settings.model_copy(update={"tenant_blend_min_products": 2}))
    try:
        await large.ready()
        result = await train_in_process(large, "t1", models=("auto",))
    finally:
        await large.close()

    assert {p: r.status for p, r in result.runs.items()} == dict.fromkeys(PRODUCTS, "trained")
    record = result.job.global_models
    assert record is not None
    partner = record["partner"]
    assert (partner["partner"], partner["products"]) == ("prophet_holidays", len(PRODUCTS))
    assert partner["weight"] == 0.0 or 0.25 <= partner["weight"] <= 0.75
    async with unit_of_work(database.sessions) as session:
        versions = (await session.scalars(select(ModelVersion))).all()
    assert sorted(v.product for v in versions) == list(PRODUCTS)
    for version in versions:
        assert version.details["selection"]["tenant_blend"] == partner
        families = {row["family"] for row in version.details["leaderboard"]}
        assert "prophet_holidays" not in families  # no backtest of its own


async def test_lightgbm_products_adopt_the_tenant_booster(
        database: Database, settings: Settings, tiny_dataset: Callable[..., Path]) -> None:
    await import_directory(database, "t1", tiny_dataset(PRODUCTS, days=DAYS, weather=True))
    result = await train_in_process(database, "t1", models=("lightgbm",))

    assert {p: r.status for p, r in result.runs.items()} == dict.fromkeys(PRODUCTS, "trained")
    assert result.job.global_models is not None
    store = store_for(settings)
    async with unit_of_work(database.sessions) as session:
        versions = (await session.scalars(select(ModelVersion))).all()
    assert sorted((v.product, v.family) for v in versions) == [
        (p, "lightgbm") for p in PRODUCTS]
    for version in versions:
        model = load_verified(store, version)
        assert isinstance(model, LightGBMModel)
        # Fitted in a pool worker, on the booster the tenant stage trained.
        assert model.adopted is True, version.product


async def test_a_job_for_some_products_trains_the_global_model_on_all_of_them(
        database: Database, settings: Settings, tiny_dataset: Callable[..., Path]) -> None:
    await import_directory(database, "t1", tiny_dataset(PRODUCTS, days=DAYS, weather=True))
    seen: dict[str, bytes] = {}
    result = await train_in_process(database, "t1", products=["bread"], models=("lightgbm",),
                                    adjust_tasks=_keeping_payloads(settings, seen))

    assert {p: r.status for p, r in result.runs.items()} == {"bread": "trained"}
    record = result.job.global_models
    assert record is not None
    assert record["products"] == len(PRODUCTS)
    [task] = result.prepared.tasks
    assert task.global_fits_key is not None
    fits = GlobalFits.from_bytes(seen[task.global_fits_key[0]])
    assert fits.products == PRODUCTS  # rolls too, though the job does not retrain it
    # Only bread's cut-offs were trained: the same ones as a job for bread alone would.
    expected = cutoffs_of(task.history, holdout=HoldoutSplit(), backtest=BacktestPlan())
    assert sorted(fits.boosters) == sorted(c.date().isoformat() for c in expected)
    async with unit_of_work(database.sessions) as session:
        [version] = (await session.scalars(select(ModelVersion))).all()
    store = store_for(settings)
    model = load_verified(store, version)
    assert isinstance(model, LightGBMModel)
    assert model.adopted


async def test_job_without_a_global_model_choice_has_none(
        database: Database, settings: Settings, tiny_dataset: Callable[..., Path]) -> None:
    await import_directory(database, "t1", tiny_dataset(PRODUCTS, days=DAYS))
    result = await train_in_process(database, "t1", models=("mstl",))

    assert {p: r.status for p, r in result.runs.items()} == dict.fromkeys(PRODUCTS, "trained")
    assert result.job.global_models is None
    assert all(t.global_fits is None and t.global_fits_key is None
               for t in result.prepared.tasks)
    store = store_for(settings)
    assert not [key for key in store.list() if GLOBAL_MODELS_KEY in key]


async def _prepared_as_the_service_does(database: Database, settings: Settings,
                                        tiny_dataset: Callable[..., Path]) -> PreparedJob:
    """An `auto` job of PRODUCTS prepared with its data snapshot stored (service shape)."""
    await import_directory(database, "t1", tiny_dataset(PRODUCTS, days=DAYS))
    async with unit_of_work(database.sessions) as session:
        tenant = await tenants_service.get_tenant(session, "t1")
        job = await jobs_service.new_job(session, tenant, models=("auto",))
        return await prepare_job(session, tenant, job, settings=settings,
                                 store_histories=True)


async def test_service_shape_task_reloads_the_verified_tenant_models(
        database: Database, settings: Settings, tiny_dataset: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The queue worker rebuilds a task from ids (`product_task`): it names the job's
    stored global models (key, sha256), which a process loads back from the store once,
    and refuses when their checksum fails."""
    prepared = await _prepared_as_the_service_does(database, settings, tiny_dataset)
    payload = _stored(settings, prepared.tasks[0])

    async def rebuilt(product: str) -> GlobalFits | None:
        async with unit_of_work(database.sessions) as session:
            tenant = await tenants_service.get_tenant(session, "t1")
            job = await jobs_service.get_job(session, prepared.job_id)
            run = (await session.scalars(select(TrainingRun).where(
                TrainingRun.job_id == job.id, TrainingRun.product == product))).one()
            task = await product_task(tenant, job, run, settings=settings)
        assert task.product == product
        assert task.global_fits is None  # named, not carried
        assert task.global_fits_key == prepared.tasks[0].global_fits_key
        return process_state.task_global_fits(task)

    monkeypatch.setattr(process_state, "_stored_fits", {})  # a new process
    fits = [await rebuilt(p) for p in PRODUCTS]
    assert fits[0] == GlobalFits.from_bytes(payload)
    assert fits[1] is fits[0]  # loaded and parsed once

    # A tampered artifact is refused: the task goes on without it (lightgbm alone).
    async with unit_of_work(database.sessions) as session:
        job = await jobs_service.get_job(session, prepared.job_id)
        assert job.global_models is not None
        key = job.global_models["key"]
    path = Path(settings.resolved_model_storage_path) / key
    assert path.read_bytes() == payload
    path.write_bytes(payload.replace(b'"products"', b'"products" '))
    monkeypatch.setattr(process_state, "_stored_fits", {})  # another new process
    assert await rebuilt("bread") is None


async def test_a_service_fit_process_loads_the_global_models_it_is_not_sent(
        database: Database, settings: Settings, tiny_dataset: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker sends its fit process the plan without the job's global models (tens of
    MB for a chain) and where they are stored; the fit process loads them and fits the
    product exactly as with the plan the worker holds."""
    prepared = await _prepared_as_the_service_does(database, settings, tiny_dataset)
    task = prepared.tasks[0]
    plan = fit_plan(task)
    assert plan.context.global_fits is not None
    args = child_fit_args(task, plan, None)
    assert args[1].context.global_fits is None
    assert args[1].context.product == task.product
    assert len(pickle.dumps(args[1])) < len(_stored(settings, task))

    monkeypatch.setattr(process_state, "_stored_fits", {})  # the fit process's own
    in_child = fit_in_child(*args)
    in_worker = fit_product(task.history, plan)
    assert in_child.best.family == in_worker.best.family
    assert in_child.best.metrics.to_dict() == in_worker.best.metrics.to_dict()
    assert in_child.best.model.to_bytes() == in_worker.best.model.to_bytes()
    assert in_child.details["selection"] == in_worker.details["selection"]


async def test_the_tenant_stage_holds_no_database_write_lock(
        tmp_path: Path, sqlite_url: str, tiny_dataset: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The stage trains for seconds (more on a large tenant): meanwhile another process
    must be able to write to the embedded database (an import, another job's record)."""
    settings = make_settings(tmp_path / "home", sqlite_url)
    database = Database.open(settings)
    await database.ready()
    probed: list[bool] = []
    stage = tenant_stage.train_tenant_models

    def stage_beside_a_writer(*args: Any, **kwargs: Any) -> Any:
        db_file = sqlite_url.split("///", 1)[1]
        with contextlib.closing(sqlite3.connect(db_file, timeout=0.5)) as other:
            other.execute("BEGIN IMMEDIATE")  # raises "database is locked" if held
            other.execute("ROLLBACK")
        probed.append(True)
        return stage(*args, **kwargs)

    monkeypatch.setattr(tenant_stage, "train_tenant_models", stage_beside_a_writer)
    try:
        await import_directory(database, "t1", tiny_dataset(PRODUCTS, days=DAYS))
        result = await train_in_process(database, "t1", models=("auto",))
    finally:
        await database.close()
    assert probed == [True], result.job.warnings
    assert result.job.status == "succeeded", result.job.error
    assert result.job.global_models is not None


def _embedding(version_payload: bytes, serving: GlobalFits) -> bytes:
    """The artifact as it would be with the serving boosters it refers to copied in."""
    envelope = json.loads(version_payload)
    members = envelope["state"]["members"] if envelope["family"] == "ensemble" else [envelope]
    for member in members:
        state = member["state"]
        if member["family"] != "lightgbm":
            continue
        cutoff = state.pop("serving")["cutoff"]
        state["booster"], state["products"] = serving.boosters[cutoff], list(serving.products)
        if state["horizon"]:
            assert serving.horizon is not None
            state["horizon"]["booster"] = serving.horizon.boosters[cutoff]
    return json.dumps(envelope).encode()


async def test_versions_refer_to_one_stored_copy_of_the_serving_boosters(
        database: Database, settings: Settings, tiny_dataset: Callable[..., Path]) -> None:
    await import_directory(database, "t1", tiny_dataset(PRODUCTS, days=DAYS, weather=True))
    result = await train_in_process(database, "t1", models=("lightgbm",))

    assert {p: r.status for p, r in result.runs.items()} == dict.fromkeys(PRODUCTS, "trained")
    record = result.job.global_models
    assert record is not None
    ref = record["serving"]
    store = store_for(settings)
    serving = GlobalFits.from_bytes(store.load(ref["key"], expected_sha256=ref["sha256"]))
    # Only the final cut-off (both products end on the same day), both members.
    assert sorted(serving.boosters) == ref["cutoffs"] == [max(record["cutoffs"])]
    assert serving.horizon is not None
    assert sorted(serving.horizon.boosters) == ref["cutoffs"]
    assert serving.products == PRODUCTS
    async with unit_of_work(database.sessions) as session:
        versions = (await session.scalars(select(ModelVersion))).all()
    assert sorted(v.product for v in versions) == list(PRODUCTS)
    future = pd.DataFrame({"date": pd.date_range("2025-01-01", periods=40), "closed": False,
                           "temperature_c": 12.0})
    for version in versions:
        payload = store.load(version.artifact_key, expected_sha256=version.sha256)
        state = json.loads(payload)["state"]
        assert "booster" not in state
        assert "products" not in state
        assert state["serving"] == {"key": ref["key"], "sha256": ref["sha256"],
                                    "cutoff": ref["cutoffs"][0]}
        assert len(payload) < 20_000
        served = load_verified(store, version)
        assert isinstance(served, LightGBMModel)
        assert served.adopted
        # It forecasts exactly as the same model holding the boosters would.
        np.testing.assert_array_equal(
            served.predict(future[["date", "closed", *served.regressors]]),
            load_model(_embedding(payload, serving)).predict(
                future[["date", "closed", *served.regressors]]))
        with pytest.raises(ValueError, match="load it with its store"):
            load_model(payload)


async def test_a_changed_or_missing_serving_copy_refuses_the_versions_that_refer_to_it(
        database: Database, settings: Settings, tiny_dataset: Callable[..., Path]) -> None:
    await import_directory(database, "t1", tiny_dataset(PRODUCTS, days=DAYS, weather=True))
    result = await train_in_process(database, "t1", models=("lightgbm",))
    assert result.job.global_models is not None
    ref = result.job.global_models["serving"]
    store = store_for(settings)
    good = store.load(ref["key"], expected_sha256=ref["sha256"])
    async with unit_of_work(database.sessions) as session:
        version = (await session.scalars(select(ModelVersion).limit(1))).one()
    lightgbm_global._serving.clear()
    store.save(ref["key"], good.replace(b'"products"', b'"products" '))
    with pytest.raises(ChecksumMismatch, match=f"version {version.version}"):
        load_verified(store, version)
    store.delete(ref["key"])
    with pytest.raises(ArtifactMissing):
        load_verified(store, version)


def _ended_job(run_status: RunStatus) -> TrainingJob:
    """A job with stored global models and a serving copy, its one run ended as given,
    retired (`mark_job_artifacts_retired`)."""
    job = TrainingJob(tenant_id=1, products=None, models=["lightgbm"],
                      global_models={"key": "t1/global", "sha256": "0" * 64,
                                     "serving": {"key": "t1/serving", "sha256": "1" * 64}})
    assert jobs_service.mark_job_artifacts_retired(
        job, [TrainingRun(product="bread", status=run_status)])
    assert job.global_models is not None
    return job


def test_a_job_that_trains_no_product_deletes_its_serving_copy(settings: Settings) -> None:
    job = _ended_job(RunStatus.FAILED)
    assert job.global_models is not None
    assert job.global_models["serving"]["retired"] is True
    trained = _ended_job(RunStatus.TRAINED)
    assert trained.global_models is not None
    assert "retired" not in trained.global_models["serving"]
    # The files: a job's copies are deleted, a referred serving copy is kept.
    store = store_for(settings)
    for key in ("t1/global", "t1/serving"):
        store.save(key, b"{}")
    tenant_stage.retire(trained, settings)
    assert not store.exists("t1/global")
    assert store.exists("t1/serving")
    store.save("t1/global", b"{}")
    tenant_stage.retire(job, settings)
    assert not store.exists("t1/global")
    assert not store.exists("t1/serving")


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 2), (64, 8)])
def test_the_stage_trains_on_every_core_whatever_the_products_per_process(
        settings: Settings, monkeypatch: pytest.MonkeyPatch, cores: int, threads: int) -> None:
    # MAX_CONCURRENT_TRAINING_JOBS bounds the products a process fits at once; a service
    # worker run with 1 must still train the stage's boosters on all cores (at most 8).
    seen: list[int] = []

    def spy(*args: Any, workers: int, **kwargs: Any) -> str:
        seen.append(workers)
        return "trained"

    monkeypatch.setattr(tenant_stage.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(tenant_stage, "train_tenant_models", spy)
    one_at_a_time = settings.model_copy(update={"max_concurrent_training_jobs": 1})
    assert tenant_stage._train({}, (), [], one_at_a_time) == "trained"
    assert seen == [threads]
