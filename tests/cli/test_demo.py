"""`ovencast demo`, the README's first command after the install: end to end on the bundled
Kiel data, as a newcomer runs it (the default models, a fresh home, a real process)."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import Any

from conftest import BUNDLED_DATA, one_line
from ovencast.settings import Settings

PRODUCTS = ("bread", "cake", "confectionery", "croissant", "rolls", "seasonal_bread")


def test_demo_trains_the_bundled_data_and_reports_what_a_newcomer_needs(
        tmp_path: Path, run_cli: Any) -> None:
    settings = Settings(ovencast_home=tmp_path / "home", max_concurrent_training_jobs=2)
    plot = tmp_path / "forecast.png"
    stale = settings.ovencast_home / "demo" / "stale.txt"
    stale.parent.mkdir(parents=True)
    stale.write_text("from an earlier demo")

    result = run_cli(["demo", "--plot", str(plot)], settings)

    assert result.returncode == 0, result.stderr
    out = one_line(result.stdout)
    assert not stale.exists()  # every demo starts from an empty home
    assert f"dataset: {BUNDLED_DATA / 'kiel'}" in out
    assert "6 products, 2013-07-01 to 2018-07-31" in out
    assert "Holdout accuracy" in out
    assert "Training job 1: succeeded" in out
    table = [line for line in result.stdout.splitlines()
             if line.startswith("│") and "WAPE" not in line]
    rows = {cells[0]: cells for cells in
            ([c.strip() for c in line.strip("│").split("│")] for line in table)}
    for product in PRODUCTS:
        wape, naive = float(rows[product][3]), float(rows[product][5])
        assert 0 < wape < 1, rows[product]
        assert 0 < naive < 1, rows[product]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The closing hint is a command the user's shell can run as printed.
    hint = result.stdout.rsplit("Try: ", 1)[1].split()
    assert hint[0] == f"OVENCAST_HOME={settings.ovencast_home / 'demo'}"
    assert shutil.which(hint[1]) is not None, shlex.join(hint)
    assert hint[2:] == ["models", "--tenant", "kiel-demo"]
