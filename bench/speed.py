"""Training speed of the embedded shape on a dataset directory. Prints numbers, asserts
nothing.

    python bench/speed.py DATASET_DIR [--country DE --subdivision SH] [--models prophet]

Runs, each in a fresh OVENCAST_HOME:
  1. cold training with 1 worker process
  2. cold training with 2 worker processes (same data)
  3. cold training up to the last date minus 7 days, then a warm retrain on all data
     (same data plus one new week: cached parameters enqueued first, early stop,
     Prophet's optimiser warm-started from the previous model)
and prints products per minute, seconds per product (median, max), Prophet fits, peak RSS
per worker process, the ratios 2-vs-1 workers and warm-vs-cold, and the mean holdout WAPE
of each run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ovencast.datasets import service as datasets_service
from ovencast.datasets.reader import read_dataset_dir
from ovencast.db.runtime import Database, run_with_database
from ovencast.db.session import unit_of_work
from ovencast.observability.logs import configure_logging
from ovencast.settings import Settings
from ovencast.tenants import service as tenants_service
from ovencast.training.embedded import TrainedJob, train_tenant
from ovencast.training.pool import stop_workers

TENANT = "bench"


def import_into(settings: Settings, directory: Path, country: str | None,
                subdivision: str | None) -> date:
    parsed = read_dataset_dir(directory)

    async def body(database: Database) -> None:
        async with unit_of_work(database.sessions) as session:
            tenant = await tenants_service.ensure_tenant(session, TENANT, country=country,
                                                         subdivision=subdivision)
            await datasets_service.import_dataset(session, tenant, parsed,
                                                  source=str(directory))

    run_with_database(settings, body)
    return parsed.last_date


def timed_train(settings: Settings, *, until: date | None, models: list[str] | None
                ) -> tuple[TrainedJob, float]:
    stop_workers()  # every run starts its worker processes from cold, as `ovencast train`
    started = time.perf_counter()
    trained = train_tenant(settings, TENANT, until=until, models=models)
    return trained, time.perf_counter() - started


def summarise(name: str, trained: TrainedJob, wall_s: float) -> dict[str, object]:
    done = [o for o in trained.outcomes if o.status == "trained"]
    durations = [o.duration_s or 0.0 for o in done]
    wapes = [float(w) for o in done if (w := o.metrics.get("wape")) is not None]
    fits = sum(int((o.details.get("search") or {}).get("n_trials", 0)) + 2 for o in done
               if "search" in o.details)
    return {
        "run": name, "wall_s": wall_s, "trained": len(done),
        "failed": len(trained.outcomes) - len(done),
        "products_per_min": len(done) / wall_s * 60 if wall_s else float("nan"),
        "median_s": statistics.median(durations) if durations else float("nan"),
        "max_s": max(durations) if durations else float("nan"),
        "prophet_fits": fits,
        "peak_rss_mb": max((o.peak_rss_mb or 0.0) for o in done) if done else float("nan"),
        "mean_wape": statistics.fmean(wapes) if wapes else float("nan"),
    }


def dataset_parser(description: str | None) -> argparse.ArgumentParser:
    """The arguments of every bench script that imports and trains one dataset."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--country", default="DE")
    parser.add_argument("--subdivision", default=None)
    return parser


def holidays_line(args: argparse.Namespace) -> str:
    """Whose public holidays the trainings use, printed first: a run without
    `--subdivision` misses the state's own holidays (North Sea's window ending 2023-10-31
    holds Lower Saxony's Reformation Day), and its figures differ from the tables'."""
    if not args.country:
        return ("holidays: none (--country and --subdivision add a country's and a "
                "state's, as docs/BENCHMARKS.md's commands do)")
    if args.subdivision:
        return f"holidays: {args.country}-{args.subdivision}"
    return (f"holidays: {args.country}, national only (--subdivision adds a state's, as "
            "docs/BENCHMARKS.md's commands do)")


def main() -> None:
    parser = dataset_parser(__doc__)
    parser.add_argument("--models", default="prophet")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ovencast-bench-logs-") as logs:
        configure_logging(log_file=Path(logs) / "bench.log", stderr_level="ERROR")
        run(args)


def run(args: argparse.Namespace) -> None:
    models = [m for m in args.models.split(",") if m]
    console = Console(width=140)
    console.print(holidays_line(args), highlight=False, markup=False)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ovencast-bench-") as tmp:
        def fresh(name: str, workers: int) -> Settings:
            return Settings(ovencast_home=Path(tmp) / name, max_concurrent_training_jobs=workers)

        s1 = fresh("cold-1", 1)
        last = import_into(s1, args.dataset, args.country, args.subdivision)
        rows.append(summarise("cold, 1 worker", *timed_train(s1, until=None, models=models)))

        s2 = fresh("cold-2", 2)
        import_into(s2, args.dataset, args.country, args.subdivision)
        rows.append(summarise("cold, 2 workers", *timed_train(s2, until=None, models=models)))

        s3 = fresh("warm", 2)
        import_into(s3, args.dataset, args.country, args.subdivision)
        rows.append(summarise("cold to last-7d, 2 workers",
                              *timed_train(s3, until=last - timedelta(days=7), models=models)))
        rows.append(summarise("warm retrain +7d, 2 workers",
                              *timed_train(s3, until=None, models=models)))

    table = Table(title=f"bench/speed.py {args.dataset} (models: {args.models})",
                  title_justify="left")
    columns = ["run", "wall_s", "trained", "failed", "products_per_min", "median_s", "max_s",
               "prophet_fits", "peak_rss_mb", "mean_wape"]
    for column in columns:
        table.add_column(column, justify="left" if column == "run" else "right")
    for row in rows:
        table.add_row(*(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c])
                        for c in columns))
    console.print(table)
    cold1, cold2, _, warm = rows
    speedup = float(cold1["wall_s"]) / float(cold2["wall_s"])  # type: ignore[arg-type]
    warm_ratio = float(cold2["wall_s"]) / float(warm["wall_s"])  # type: ignore[arg-type]
    wape_delta = (float(warm["mean_wape"]) / float(cold2["mean_wape"]) - 1)  # type: ignore[arg-type]
    console.print(f"parallel speed-up, 2 workers vs 1: {speedup:.2f}x")
    console.print(f"warm retrain vs cold train (same data): {warm_ratio:.2f}x faster, "
                  f"mean WAPE {wape_delta * 100:+.1f} %")
    console.print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
                  f"{platform.python_implementation()} {platform.python_version()}")


if __name__ == "__main__":
    main()
