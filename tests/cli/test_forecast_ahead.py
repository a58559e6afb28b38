"""The days a bakery needs: all of North Sea trained as it is (weather, footfall and
opening hours end on the last sales date), then the next two weeks forecast from the
command line, as a cron job would run it."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from conftest import SETTINGS_ENV_VARS, make_settings, one_line, run_cli_process, settings_env
from ovencast.settings import Settings

REFUSED = {"item_103", "item_116", "item_95"}  # > 90 % zero days: the data rules refuse them


@dataclass(frozen=True)
class Trained:
    settings: Settings
    stdout: str
    returncode: int


@pytest.fixture(scope="module")
def northsea_trained(northsea_dir: Path, tmp_path_factory: pytest.TempPathFactory
                     ) -> Trained:
    with pytest.MonkeyPatch.context() as patch:
        for name in SETTINGS_ENV_VARS:
            patch.delenv(name, raising=False)
        settings = make_settings(tmp_path_factory.mktemp("northsea") / "home",
                                 max_concurrent_training_jobs=2)
    cwd = settings.ovencast_home.parent
    imported = run_cli_process(["import", northsea_dir, "--tenant", "ns", "--country", "DE",
                                "--subdivision", "NI"], settings, cwd=cwd)
    assert imported.returncode == 0, imported.stderr
    train = run_cli_process(["train", "--tenant", "ns"], settings, cwd=cwd)
    return Trained(settings, train.stdout + train.stderr, train.returncode)


def test_train_exits_0_when_only_refused_products_did_not_train(
        northsea_trained: Trained) -> None:
    assert northsea_trained.returncode == 0, northsea_trained.stdout
    text = one_line(northsea_trained.stdout)
    for product in REFUSED:
        assert f"{product} │ intermittent │ refused" in text


def test_the_next_two_weeks_are_forecast_for_every_trained_product(
        northsea_trained: Trained, run_cli: Any) -> None:
    result = run_cli(["forecast", "--tenant", "ns", "--days", "14", "--format", "csv"],
                     northsea_trained.settings)
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(io.StringIO(result.stdout), keep_default_na=False)
    products = set(frame["product"])
    assert len(products) == 21
    assert not products & REFUSED
    for _, rows in frame.groupby("product"):
        assert list(rows["date"]) == [str(d.date()) for d in
                                      pd.date_range("2023-11-01", periods=14)]
    assert (frame["forecast"] >= 0).all()
    notes = one_line(result.stderr)
    for regressor in ("temperature_c", "guests", "opening_hours"):
        assert regressor in notes
    assert "climatology" in notes
    assert "assumed open" in notes
    weather_driven = frame.loc[frame["note"].str.contains("temperature_c")]
    assert not weather_driven.empty


def test_the_table_the_plot_and_usage_errors(northsea_trained: Trained, run_cli: Any,
                                             tmp_path: Path) -> None:
    settings = northsea_trained.settings
    table = run_cli(["forecast", "--tenant", "ns", "--days", "14"],
                    {**settings_env(settings), "COLUMNS": "100"})
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "…" not in table.stdout
    assert "2023-11-14" in table.stdout

    png = tmp_path / "ns.png"
    plotted = run_cli(["plot", "--tenant", "ns", "--output", png], settings)
    assert plotted.returncode == 0, plotted.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    wrong = run_cli(["forecast", "--tenant", "ns", "--from", "1.11.2023"], settings)
    assert wrong.returncode == 2
    assert "not a date" in one_line(wrong.stderr)
    assert "Traceback" not in wrong.stderr
