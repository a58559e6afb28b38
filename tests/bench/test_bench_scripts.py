"""The benchmark scripts still run and print their figures (on the bundled Kiel data, or
the shared North Sea data for bench/scale.py, in short configurations); their numbers are
checked by reading them, not here."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from conftest import (
    BUNDLED_DATA,
    CLI_TIMEOUT_S,
    PG_HOST,
    PG_PORT,
    PG_USER,
    REPO_ROOT,
    SETTINGS_ENV_VARS,
)

KIEL = BUNDLED_DATA / "kiel"
REFERENCE = REPO_ROOT.parent / "shared" / "reference"


def reference_dir() -> Path:
    """../shared/reference, beside the repository as in CI; a clone elsewhere lacks it."""
    if not REFERENCE.is_dir():
        pytest.skip("the reference forecasts are not available (shared/reference)")
    return REFERENCE


# A script here trains several times (origins x methods): longer than one CLI command,
# still a hang guard, not a speed check.
BENCH_TIMEOUT_S = 4 * CLI_TIMEOUT_S


def _bench(script: str, args: Sequence[str]) -> str:
    # A developer's OVENCAST_HOME or DATABASE_URL must not leak into the benchmark.
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTINGS_ENV_VARS}
    result = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / script), *args],
                            cwd=REPO_ROOT / "bench", env=env, capture_output=True, text=True,
                            timeout=BENCH_TIMEOUT_S, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _wape_of(table: str, method: str) -> float:
    """The first number of the table row of `method`."""
    found = re.search(rf"│ {re.escape(method)}\s+│[^0-9]*([0-9]+\.[0-9]+)", table)
    assert found, f"no row for {method!r} in\n{table}"
    return float(found.group(1))


def test_accuracy_prints_each_method_and_the_ratios() -> None:
    out = _bench("accuracy.py", [str(KIEL), "--country", "DE", "--subdivision", "SH",
                                 "--methods", "seasonal_naive,auto",
                                 "--regressors", "fallback",
                                 "--reference", str(REPO_ROOT.parent / "shared" / "reference")])
    # Each method's line as it finishes: "auto: WAPE 0.196 in 4 s".
    found = dict(re.findall(r"^(\w+): WAPE ([0-9.]+) in \d+ s$", out, flags=re.MULTILINE))
    auto, naive = float(found["auto"]), float(found["seasonal_naive"])
    assert 0 < auto < naive < 1
    assert re.search(r"auto / best single family \(seasonal_naive\): WAPE 0\.\d\dx", out)
    assert re.search(r"\[fallback\] auto P10-P90 coverage of the window's product-days: "
                     r"\d+%", out)
    assert "regressors: fallback" in out
    assert out.startswith("holidays: DE-SH\n"), out[:200]


def test_replay_replays_auto_and_prints_every_candidate() -> None:
    out = _bench("replay.py", [str(KIEL), "--country", "DE", "--subdivision", "SH",
                               "--origins", "1"])
    for method in ("auto", "lightgbm", "seasonal_naive", "croston", "tsb"):
        assert 0 < _wape_of(out, method) < 1
    assert "auto / best fixed family" in out
    assert out.startswith("holidays: DE-SH\n"), out[:200]


def test_origins_trains_every_method_at_every_origin_and_scores_the_same_days() -> None:
    out = _bench("origins.py", [str(KIEL), "--country", "DE", "--subdivision", "SH",
                                "--origins", "0,2", "--methods", "seasonal_naive,auto",
                                "--reference", str(reference_dir())])
    # One line per origin: the same product-days for every method and reference.
    days = re.findall(r"^origin +(\d+) \(.*\): (\d+) product-days of (\d+) products",
                      out, flags=re.MULTILINE)
    assert out.startswith("holidays: DE-SH\n"), out[:200]
    assert [d[0] for d in days] == ["0", "2"]
    assert all(int(n) > 0 for _, n, _ in days)
    for method in ("auto", "seasonal_naive", "reference: original",
                   "reference: plain LightGBM"):
        assert 0 < _wape_of(out, method) < 1
    assert re.search(r"auto / best single family \(seasonal_naive\): mean WAPE 0\.\d\dx",
                     out)
    assert re.search(r"^auto P10-P90 coverage, pooled over the origins: [0-9.]+% of \d+ "
                     r"product-days$", out, flags=re.MULTILINE)
    assert re.search(r"^seasonal_naive P10-P90 coverage", out, flags=re.MULTILINE)


def test_origins_reports_coverage_on_the_days_forecast_open_too(tmp_path: Path,
                                                                northsea_dir: Path) -> None:
    """North Sea's origin 10 ends in its winter closure, which the calendar marks (oracle):
    those days are forecast closed with the band 0..0, inside by construction, so the
    coverage is printed (and written to the CSV) a second time without them. Timed from
    warm workers here (`--workers warm`), which changes no forecast."""
    scores = tmp_path / "scores.csv"
    out = _bench("origins.py", [str(northsea_dir), "--country", "DE", "--subdivision", "NI",
                                "--origins", "10", "--methods", "seasonal_naive",
                                "--csv", str(scores), "--workers", "warm"])
    assert re.search(r"^origin 10 seasonal_naive: trained in \d+ s$", out,
                     flags=re.MULTILINE), out
    found = re.search(r"^seasonal_naive P10-P90 coverage, pooled over the origins: "
                      r"([0-9.]+)% of (\d+) product-days; ([0-9.]+)% of the (\d+) it "
                      r"forecast open \((\d+) forecast closed left out\)$", out,
                      flags=re.MULTILINE)
    assert found, out
    every, days, open_share, open_days, shut = found.groups()
    assert int(open_days) + int(shut) == int(days)
    assert int(shut) > 0
    # The closed days are all inside their band, so leaving them out lowers the share.
    assert float(open_share) < float(every)
    with scores.open(encoding="utf-8") as rows:
        row = next(csv.DictReader(rows))
    assert float(row["coverage_open"]) == pytest.approx(float(open_share) / 100, abs=5e-4)
    assert float(row["coverage"]) == pytest.approx(float(every) / 100, abs=5e-4)


def test_origins_scores_the_fallback_on_open_days_too(tmp_path: Path,
                                                     northsea_dir: Path) -> None:
    """North Sea's origin 10 ends in its winter closure: with the regressors (and so the
    calendar) cut at the origin the closed days are forecast as open; the second table
    leaves them out (decision 027)."""
    scores = tmp_path / "scores.csv"
    out = _bench("origins.py", [str(northsea_dir), "--country", "DE", "--subdivision", "NI",
                                "--origins", "10", "--methods", "seasonal_naive",
                                "--regressors", "fallback", "--csv", str(scores)])
    all_days, open_days = out.split("on the days the calendar marks open")
    assert re.search(r"\(\d+ closed dates left out\)", open_days)
    assert 0 < _wape_of(open_days, "seasonal_naive") < _wape_of(all_days, "seasonal_naive")
    header = scores.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header[:4] == ["origin", "method", "wape", "wape_open"]


def _assert_import_figures(out: str) -> None:
    """import_memory.py's figures for 20 products x 100 days, imported three times."""
    assert re.search(r"^file: [0-9.]+ MB, 2000 rows$", out, flags=re.MULTILINE)
    assert re.search(r"peak traced memory [0-9.]+ MB \([0-9]+ bytes a row\)", out)
    assert re.search(r"^first import: [0-9.]+ s \(\+2000 ~0 -0\)$", out, flags=re.MULTILINE)
    assert re.search(r"^same again: [0-9.]+ s \(\+0 ~0 -0\)$", out, flags=re.MULTILINE)
    assert re.search(r"^every row changed: [0-9.]+ s \(\+0 ~2000 -0\)$", out,
                     flags=re.MULTILINE)


def test_import_memory_prints_the_peak_per_row() -> None:
    out = _bench("import_memory.py", ["--products", "20", "--days", "100", "--import"])
    _assert_import_figures(out)


@pytest.mark.postgres
def test_import_memory_imports_into_postgresql(pg_migrated_url: str) -> None:
    """--database-url: a fresh migrated PostgreSQL database (no tenant `bench` yet); 2,000
    rows a call, past COPY_MIN_ROWS, so the imports go through COPY."""
    out = _bench("import_memory.py", ["--products", "20", "--days", "100", "--import",
                                      "--database-url", pg_migrated_url])
    _assert_import_figures(out)


def test_scale_prints_time_and_memory_per_product_count(tmp_path: Path,
                                                        northsea_dir: Path) -> None:
    """scale.py makes its tenant from ../shared/data/northsea (skipped without it)."""
    figures = tmp_path / "scale.json"
    out = _bench("scale.py", ["3", "--workers", "1", "--data", str(northsea_dir),
                              "--json", str(figures),
                              "--plot", str(tmp_path / "scale.png")])
    found = re.search(r"^N=3: import ([0-9.]+) s, train ([0-9.]+) s .* ([0-9.]+) products/min"
                      r".* trained (\d+) refused (\d+) failed 0, peak RSS MB import (\d+) "
                      r"main (\d+) worker (\d+) tree (\d+), store ([0-9.]+) MB$", out,
                      flags=re.MULTILINE)
    assert found, out
    assert int(found.group(4)) + int(found.group(5)) == 3
    assert int(found.group(4)) > 0
    # The pool processes are told from the main process, and the tree holds both; the
    # import's peak is told from the training's.
    imported, main, worker, tree = (int(found.group(i)) for i in (6, 7, 8, 9))
    assert 0 < worker < tree
    assert 0 < main < tree
    assert 0 < imported <= tree
    assert float(found.group(10)) > 0  # the trained versions' artifacts
    assert "| products | sales rows | import s | train s |" in out
    run = json.loads(figures.read_text())[0]
    assert run["products"] == 3
    # The main process's CPU before the product stage is a part of its whole.
    assert 0 < run["prepare_main_cpu_s"] <= run["main_cpu_s"]
    # Pooled over the trained products' holdout sales: between their lowest and highest.
    assert 0 < run["pooled_wape"] < 1
    assert f"(pooled {run['pooled_wape']:.4f})" in out
    assert (tmp_path / "scale.png").stat().st_size > 0


def test_scale_writes_only_the_tenants_files_for_origins(tmp_path: Path,
                                                        northsea_dir: Path) -> None:
    """`--write DIR`: each N's tenant in DIR/N, the same seeded data every run, and no
    training (bench/origins.py trains it: docs/BENCHMARKS.md, time against tenant size)."""
    out = _bench("scale.py", ["3", "5", "--data", str(northsea_dir),
                              "--write", str(tmp_path)])
    sales = {n: pd.read_csv(tmp_path / str(n) / "sales.csv") for n in (3, 5)}
    assert {n: frame["product"].nunique() for n, frame in sales.items()} == {3: 3, 5: 5}
    assert f"{tmp_path / '5'}: 5 products, {len(sales[5]):,} sales rows" in out
    assert "import" not in out
    # the first 3 of 5 products are the 3-product tenant's, row for row
    first = sales[5][sales[5]["product"].isin(sales[3]["product"].unique())]
    pd.testing.assert_frame_equal(first.reset_index(drop=True), sales[3])
    for name in ("weather.csv", "traffic.csv", "calendar.csv"):
        assert (tmp_path / "5" / name).read_bytes() == (northsea_dir / name).read_bytes()


@pytest.mark.postgres
def test_service_scale_trains_the_scale_tenant_with_worker_processes(
        tmp_path: Path, northsea_dir: Path, pg_server_url: str) -> None:
    """service_scale.py: the same tenant as scale.py, trained by two `ovencast worker`
    processes through the PostgreSQL queue, in a scratch database it drops again."""
    figures = tmp_path / "service.json"
    out = _bench("service_scale.py", [
        "3", "--data", str(northsea_dir), "--json", str(figures),
        "--pg", f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}"])
    found = re.search(r"^N=3 \(2 workers x 1\): import ([0-9.]+) s, train ([0-9.]+) s .* "
                      r"trained (\d+) refused (\d+) failed 0, peak RSS MB worker (\d+) "
                      r"fit (\d+) tree (\d+)$", out, flags=re.MULTILINE)
    assert found, out
    assert int(found.group(3)) + int(found.group(4)) == 3
    assert int(found.group(3)) > 0
    worker, fit, tree = (int(found.group(i)) for i in (5, 6, 7))
    assert 0 < worker < tree
    assert 0 < fit < tree
    run = json.loads(figures.read_text())[0]
    assert run["cpu_s"] > 0  # the workers' and their fit processes' time was counted
    assert 0 < run["mean_wape"] < 1


def test_selection_prints_each_products_choice_and_leaderboard() -> None:
    out = _bench("selection.py", [str(KIEL), "--country", "DE", "--subdivision", "SH",
                                  "--products", "rolls", "--models", "seasonal_naive,tsb"])
    assert "rolls" in out
    assert "leaderboard" in out
    found = re.search(r"mean holdout WAPE ([0-9.]+) \(seasonal naive ([0-9.]+)\)", out)
    assert found, out
    assert 0 < float(found.group(1)) < 1
    assert 0 < float(found.group(2)) < 1
    assert out.startswith("holidays: DE-SH\n"), out[:200]


def test_ragged_ends_writes_a_copy_whose_drawn_products_end_early(tmp_path: Path) -> None:
    """bench/ragged_ends.py on the bundled Kiel data: the drawn products stop on the days
    it prints, within the last `--within` days before `--until`; the others and the other
    files are as they were."""
    out_dir = tmp_path / "ragged"
    out = _bench("ragged_ends.py", [str(KIEL), str(out_dir), "--until", "2018-07-31",
                                    "--products", "2", "--within", "60", "--seed", "1"])
    ends = dict(re.findall(r"^(\S+) ends on (\d{4}-\d{2}-\d{2})$", out, flags=re.M))
    assert len(ends) == 2
    def rows(path: Path) -> list[tuple[str, str, float]]:
        lines = path.read_text().splitlines()
        assert lines[0] == "date,product,quantity"
        return [(day, product, float(quantity))
                for day, product, quantity in (line.split(",") for line in lines[1:])]

    original, written = rows(KIEL / "sales.csv"), rows(out_dir / "sales.csv")
    for product, end in ends.items():
        assert "2018-06-01" <= end < "2018-07-31"
        assert max(day for day, name, _ in written if name == product) <= end
        assert [r for r in written if r[1] == product] == [
            r for r in original if r[1] == product and r[0] <= end]
    assert [r for r in written if r[1] not in ends] == [
        r for r in original if r[1] not in ends]
    for name in ("weather.csv", "calendar.csv"):
        assert (out_dir / name).read_text() == (KIEL / name).read_text()


def test_thinned_keeps_each_unit_of_the_busy_products_with_the_share(tmp_path: Path) -> None:
    """bench/thinned.py: the products above `--min-mean` only, each day's units thinned
    (never more than sold, about `--share` of them in all), the other files as they were;
    a dataset of EUR turnover (the bundled Kiel data) is refused with the reason."""
    source = tmp_path / "shop"
    source.mkdir()
    days = [f"2024-01-{d:02d}" for d in range(1, 31)]
    sold = {"busy": [40 + d % 7 for d in range(30)], "slow": [d % 3 for d in range(30)]}
    (source / "sales.csv").write_text("date,product,quantity\n" + "".join(
        f"{day},{product},{units[i]}\n" for product, units in sold.items()
        for i, day in enumerate(days)))
    (source / "calendar.csv").write_text("date,opening_hours\n" + "".join(
        f"{day},8\n" for day in days))
    out = tmp_path / "thin"
    printed = _bench("thinned.py", [str(source), str(out), "--share", "0.25", "--seed", "2"])
    assert "1 of 2 products kept at share 0.25" in printed
    assert re.search(r"^busy: mean \d+\.\d\d a day, \d+% zero days$", printed, flags=re.M)
    with (out / "sales.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["date"], r["product"]) for r in rows] == [(day, "busy") for day in days]
    thinned = [int(r["quantity"]) for r in rows]
    assert all(0 <= t <= s for t, s in zip(thinned, sold["busy"], strict=True))
    assert 0.15 < sum(thinned) / sum(sold["busy"]) < 0.35
    assert (out / "calendar.csv").read_text() == (source / "calendar.csv").read_text()

    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTINGS_ENV_VARS}
    refused = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "thinned.py"),
                              str(KIEL), str(tmp_path / "kiel"), "--share", "0.5"],
                             env=env, capture_output=True, text=True,
                             timeout=BENCH_TIMEOUT_S, check=False)
    assert refused.returncode == 2
    assert "quantities must be whole units sold" in refused.stderr
