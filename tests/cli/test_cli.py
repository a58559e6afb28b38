"""The `ovencast` command line end to end, in subprocesses, on the real Kiel data:
import -> train -> forecast, refusing a corrupted artifact, concurrent trainings."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select

from conftest import (
    CLI_TIMEOUT_S,
    SETTINGS_ENV_VARS,
    cli_command,
    import_directory,
    make_settings,
    one_line,
    run_async,
    run_cli_process,
    settings_env,
)
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import ModelVersion, TrainingJob
from ovencast.settings import Settings

UNTIL = date(2018, 6, 30)
FIRST = UNTIL + timedelta(days=1)
DAYS = 28
# seasonal_bread is sold a few weeks a year: its history ends months before UNTIL.
PRODUCTS = ("bread", "rolls", "seasonal_bread")


@dataclass(frozen=True)
class TrainedTenant:
    settings: Settings
    train: subprocess.CompletedProcess[str]


def _versions(settings: Settings) -> list[ModelVersion]:
    async def load() -> list[ModelVersion]:
        database = Database.open(settings)
        try:
            async with unit_of_work(database.sessions) as session:
                return list((await session.scalars(select(ModelVersion).order_by(
                    ModelVersion.product, ModelVersion.version))).all())
        finally:
            await database.close()

    return run_async(load)


def _jobs(settings: Settings) -> list[TrainingJob]:
    async def load() -> list[TrainingJob]:
        database = Database.open(settings)
        try:
            async with unit_of_work(database.sessions) as session:
                return list((await session.scalars(select(TrainingJob))).all())
        finally:
            await database.close()

    return run_async(load)


def _csv(stdout: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(stdout), parse_dates=["date"])


@pytest.fixture(scope="module")
def trained_kiel(kiel_dir: Path, tmp_path_factory: pytest.TempPathFactory
                 ) -> TrainedTenant:
    """Kiel imported and trained (seasonal naive, PRODUCTS, data up to UNTIL) with the
    CLI, once for this module. Tests that change it undo their change."""
    with pytest.MonkeyPatch.context() as patch:
        for name in SETTINGS_ENV_VARS:
            patch.delenv(name, raising=False)
        settings = make_settings(tmp_path_factory.mktemp("kiel") / "home")
    cwd = settings.ovencast_home.parent
    result = run_cli_process(["import", kiel_dir, "--tenant", "kiel", "--country", "DE",
                              "--subdivision", "SH"], settings, cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert "imported 9334 sales rows of 6 products" in one_line(result.stdout)
    train = run_cli_process(["train", "--tenant", "kiel", "--until", UNTIL.isoformat(),
                             "--products", ",".join(PRODUCTS), "--models", "seasonal_naive"],
                            settings, cwd=cwd)
    assert train.returncode == 0, train.stdout + train.stderr
    return TrainedTenant(settings, train)


def test_train_until_then_forecast_every_product_and_date(trained_kiel: TrainedTenant,
                                                          run_cli: Any) -> None:
    assert "succeeded" in trained_kiel.train.stdout
    # The workers' fork server preloads Prophet quietly (training.pool.PRELOAD).
    assert "plotly" not in trained_kiel.train.stdout + trained_kiel.train.stderr
    versions = _versions(trained_kiel.settings)
    assert [(v.product, v.version, v.is_active) for v in versions] == [
        (p, 1, True) for p in PRODUCTS]
    assert all(v.data_end <= UNTIL for v in versions)
    assert next(v for v in versions if v.product == "bread").data_end == UNTIL

    result = run_cli(["forecast", "--tenant", "kiel", "--from", FIRST.isoformat(),
                      "--days", str(DAYS), "--format", "csv"], trained_kiel.settings)

    assert result.returncode == 0, result.stderr
    frame = _csv(result.stdout)
    assert list(frame.columns) == ["date", "weekday", "product", "forecast", "p10", "p50",
                                   "p90", "model", "version", "note"]
    assert set(frame["model"]) == {"seasonal_naive"}
    assert (frame["version"] == 1).all()
    expected = {(p, FIRST + timedelta(days=i)) for p in PRODUCTS for i in range(DAYS)}
    got = {(p, d.date()) for p, d in zip(frame["product"], frame["date"], strict=True)}
    assert got == expected
    assert len(frame) == len(expected)
    assert frame["forecast"].notna().all()
    assert (frame["forecast"] >= 0).all()
    assert frame.loc[frame["product"] == "bread", "forecast"].sum() > 0
    # Quantiles from the backtest calibration stored with each version.
    assert frame[["p10", "p90"]].notna().all().all()
    assert (frame["p50"] == frame["forecast"]).all()
    assert ((frame["p10"] >= 0) & (frame["p10"] <= frame["p50"])
            & (frame["p50"] <= frame["p90"])).all()
    bread = frame.loc[frame["product"] == "bread"]
    assert (bread["p90"] > bread["p10"]).all()
    # seasonal_bread is sold from October to January only: July is its off-season
    # (forecasting/season.py), forecast 0 with a note instead of bread nobody buys.
    seasonal = frame.loc[frame["product"] == "seasonal_bread", ["forecast", "p10", "p90"]]
    assert (seasonal.to_numpy() == 0).all()
    last = FIRST + timedelta(days=DAYS - 1)
    assert (f"note: seasonal_bread: forecast 0 on {FIRST.isoformat()}..{last.isoformat()}: "
            "outside its season") in one_line(result.stderr)


def test_models_show_the_backtest_and_json_forecasts_carry_quantiles(
        trained_kiel: TrainedTenant, run_cli: Any) -> None:
    models = run_cli(["models", "--tenant", "kiel"], trained_kiel.settings)
    assert models.returncode == 0, models.stderr
    text = one_line(models.stdout)
    assert "backtest WAPE, top 3" in text
    # The chosen (only) candidate and its backtest WAPE, one line per product.
    assert "bread v1: *seasonal_naive ." in text
    versions = _versions(trained_kiel.settings)
    for version in versions:
        assert version.details["selection"]["basis"] == "backtest"
        assert version.details["quantiles"]["source"] == "backtest"

    result = run_cli(["forecast", "--tenant", "kiel", "--from", FIRST.isoformat(),
                      "--days", "3", "--products", "bread", "--format", "json"],
                     trained_kiel.settings)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [sorted(r) for r in rows] == [["date", "forecast", "model", "note", "p10", "p50",
                                          "p90", "product", "version", "weekday"]] * 3
    assert all(r["p10"] <= r["p50"] == r["forecast"] <= r["p90"] for r in rows)


def test_corrupted_artifact_is_refused_and_other_products_still_forecast(
        trained_kiel: TrainedTenant, run_cli: Any) -> None:
    settings = trained_kiel.settings
    version = next(v for v in _versions(settings) if v.product == "rolls")
    path = Path(settings.resolved_model_storage_path) / version.artifact_key
    original = path.read_bytes()
    corrupted = bytearray(original)
    corrupted[len(corrupted) // 2] ^= 0x01
    path.write_bytes(bytes(corrupted))
    log_file = settings.ovencast_home / "logs" / "ovencast.log"
    log_size = log_file.stat().st_size if log_file.exists() else 0
    try:
        result = run_cli(["forecast", "--tenant", "kiel", "--from", FIRST.isoformat(),
                          "--days", str(DAYS), "--format", "csv"], settings)
    finally:
        path.write_bytes(original)

    assert result.returncode != 0
    message = one_line(result.stderr)
    assert "rolls" in message
    assert "checksum" in message
    assert version.sha256 in message  # the digest the database expected
    assert "Traceback" not in result.stderr
    frame = _csv(result.stdout)
    assert sorted(set(frame["product"])) == ["bread", "seasonal_bread"]
    assert len(frame) == 2 * DAYS
    # Logged as a structured event.
    with log_file.open(encoding="utf-8") as stream:
        stream.seek(log_size)
        events = [json.loads(line) for line in stream if line.strip()]
    assert any(e.get("event") == "model.checksum_failed" and e.get("product") == "rolls"
               for e in events)


def test_a_home_copied_elsewhere_forecasts_the_same_and_still_refuses_a_flipped_byte(
        trained_kiel: TrainedTenant, run_cli: Any, tmp_path: Path) -> None:
    """Artifacts are referenced by their key inside the model store, so a backup of an
    embedded home restored in another directory works as the original did."""
    args = ["forecast", "--tenant", "kiel", "--from", FIRST.isoformat(), "--days", "7",
            "--format", "csv"]
    before = run_cli(args, trained_kiel.settings)
    assert before.returncode == 0, before.stderr
    copied = make_settings(tmp_path / "restored" / "home")
    shutil.copytree(trained_kiel.settings.ovencast_home, copied.ovencast_home)

    after = run_cli(args, copied)
    assert after.returncode == 0, after.stderr
    assert after.stdout == before.stdout
    assert len(_csv(after.stdout)) == 7 * len(PRODUCTS)

    version = next(v for v in _versions(copied) if v.product == "bread")
    path = Path(copied.resolved_model_storage_path) / version.artifact_key
    payload = bytearray(path.read_bytes())
    payload[len(payload) // 3] ^= 0x01
    path.write_bytes(bytes(payload))
    tampered = run_cli(args, copied)
    assert tampered.returncode != 0
    assert "bread" in one_line(tampered.stderr)
    assert "checksum" in one_line(tampered.stderr)
    assert "bread" not in set(_csv(tampered.stdout)["product"])


def test_expected_errors_are_one_line_without_traceback(trained_kiel: TrainedTenant,
                                                        run_cli: Any) -> None:
    result = run_cli(["train", "--tenant", "nobody"], trained_kiel.settings)
    assert result.returncode == 1
    assert "tenant 'nobody' does not exist" in one_line(result.stderr)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["jobs", "--tenant", "kiel"], ["serve", "--port", "0"]])
def test_a_bad_setting_is_one_line_naming_the_variable(command: list[str], tmp_path: Path,
                                                       run_cli: Any) -> None:
    env = settings_env(make_settings(tmp_path / "home"), DATABASE_URL="mysql://u@db/x",
                       MAX_TRAINING_TIME_MINUTES="half an hour")
    result = run_cli(command, env)
    assert result.returncode == 1
    message = one_line(result.stderr)
    assert message.startswith("error: configuration from the environment:"), message
    assert "DATABASE_URL: names the backend 'mysql'" in message
    assert "MAX_TRAINING_TIME_MINUTES: Input should be a valid number" in message
    assert "Traceback" not in result.stderr


def test_a_worker_on_sqlite_says_it_needs_postgresql(tmp_path: Path, run_cli: Any) -> None:
    result = run_cli(["worker"], make_settings(tmp_path / "home"))
    assert result.returncode == 1
    message = one_line(result.stderr)
    assert message.startswith("error: a worker needs PostgreSQL"), message
    assert "ovencast train" in message
    assert "Traceback" not in result.stderr


def test_jobs_list_past_trainings_and_say_why_a_product_was_not_trained(
        trained_kiel: TrainedTenant, run_cli: Any) -> None:
    settings = trained_kiel.settings
    # A second job that cannot train bread: 19 days of data up to 2013-07-19.
    short = run_cli(["train", "--tenant", "kiel", "--until", "2013-07-19", "--products",
                     "bread", "--models", "seasonal_naive"], settings)
    assert short.returncode == 1

    listed = run_cli(["jobs", "--tenant", "kiel"], settings)

    assert listed.returncode == 0, listed.stderr
    rows = {cells[0]: cells for cells in (
        [c.strip() for c in line.strip("│").split("│")]
        for line in listed.stdout.splitlines() if line.startswith("│"))}
    first, second = rows["1"], rows[str(max(map(int, rows)))]
    assert first[1] == "succeeded"
    assert first[5] == UNTIL.isoformat()
    assert first[6] == f"{len(PRODUCTS)}/{len(PRODUCTS)}"
    assert first[7] == "-"
    assert second[1] == "failed"
    assert second[6:8] == ["0/1", "1 refused"]

    detail = run_cli(["jobs", "--tenant", "kiel", "--job", second[0]], settings)
    assert detail.returncode == 0, detail.stderr
    text = one_line(detail.stdout)
    assert f"Training job {second[0]}: failed" in text
    assert "bread" in text
    assert "at least 30 are needed to train" in text
    assert "error: no product could be trained" in text

    missing = run_cli(["jobs", "--tenant", "kiel", "--job", "999"], settings)
    assert missing.returncode == 1
    assert one_line(missing.stderr) == "error: training job 999 does not exist"


def test_two_concurrent_trainings_of_one_tenant_both_finish(kiel_dir: Path, tmp_path: Path
                                                            ) -> None:
    settings = make_settings(tmp_path / "home")
    settings.ovencast_home.mkdir(parents=True)

    async def seed() -> None:
        database = Database.open(settings)
        try:
            await database.ready()
            await import_directory(database, "kiel", kiel_dir, country="DE", subdivision="SH")
        finally:
            await database.close()

    run_async(seed)
    products = ("bread", "croissant")
    args = ["train", "--tenant", "kiel", "--until", UNTIL.isoformat(),
            "--products", ",".join(products), "--models", "seasonal_naive"]
    env = settings_env(settings)
    children = [subprocess.Popen(cli_command(args), env=env, cwd=tmp_path, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for _ in range(2)]
    outputs = []
    try:
        for child in children:
            outputs.append(child.communicate(timeout=CLI_TIMEOUT_S))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()

    for child, (stdout, stderr) in zip(children, outputs, strict=True):
        assert child.returncode == 0, stdout + stderr
    jobs = _jobs(settings)
    assert [j.status for j in jobs] == ["succeeded", "succeeded"]
    versions = _versions(settings)
    for product in products:
        mine = [v for v in versions if v.product == product]
        assert [v.version for v in mine] == [1, 2]
        assert [v.version for v in mine if v.is_active] == [2]
        assert len({v.artifact_key for v in mine}) == 2
        assert {v.training_job_id for v in mine} == {j.id for j in jobs}
