"""Accuracy and cost of every method on one dataset, in one process and one run. Prints
numbers, asserts nothing.

    python bench/accuracy.py DATASET_DIR [--country DE --subdivision SH] [--methods ...]

Protocol (issue #6): each method trains every product of the dataset in a fresh home with
2 worker processes; the last 28 days of each product's data are held out from fitting and
from selection, with the regressors known for them; the holdout metrics are pooled over
all product-days: WAPE = sum|y - yhat| / sum|y| and bias = sum(yhat - y) / sum(y) (each
product's figure weighted by its holdout sales), MASE and MAPE (non-zero days) as means
over products, and the P10-P90 coverage: the share of a product's observed holdout days
inside its P10..P90, as a mean over products ("n/a" where the quantiles are calibrated on
the holdout itself: Prophet alone). "original" is the system we replace: Prophet tuned
by Optuna with the trial budget of the product's class. Ratios compare `auto` with it and
with the best single family of the run.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table
from speed import dataset_parser, import_into

from ovencast.forecasting.holdout import HoldoutSplit
from ovencast.observability.logs import configure_logging
from ovencast.settings import Settings
from ovencast.training.embedded import TrainedJob, train_tenant
from ovencast.training.pool import stop_workers

TENANT = "bench"
# (label, --models): every single family, the original approach, and auto.
METHODS: dict[str, list[str]] = {
    "seasonal_naive": ["seasonal_naive"],
    "auto_ets": ["auto_ets"],
    "mstl": ["mstl"],
    "mstl_weekly": ["mstl_weekly"],
    "croston": ["croston"],
    "tsb": ["tsb"],
    "lightgbm (global)": ["lightgbm"],
    "prophet (defaults)": ["prophet_holidays"],
    "original: prophet + optuna": ["prophet"],
    "auto": ["auto"],
}
ORIGINAL, AUTO = "original: prophet + optuna", "auto"


def holdout_sales(directory: Path) -> dict[str, float]:
    """Sum of sales in each product's holdout (its last 28 calendar days of data)."""
    sales = pd.read_csv(directory / "sales.csv", parse_dates=["date"])
    days = HoldoutSplit().days
    return {str(product): float(rows.loc[rows["date"] > rows["date"].max()
                                         - pd.Timedelta(days=days), "quantity"].sum())
            for product, rows in sales.groupby("product")}


def pooled(trained: TrainedJob, weights: dict[str, float]) -> dict[str, float]:
    done = [o for o in trained.outcomes if o.status == "trained"]

    def weighted(key: str) -> float:
        pairs = [(o.metrics[key], weights[o.product]) for o in done
                 if o.metrics.get(key) is not None and weights.get(o.product)]
        total = sum(w for _, w in pairs)
        return sum(v * w for v, w in pairs) / total if total else float("nan")

    def mean(key: str) -> float:
        values = [float(o.metrics[key]) for o in done if o.metrics.get(key) is not None]
        return statistics.fmean(values) if values else float("nan")

    coverages = [float(c) for o in done
                 if (c := ((o.details.get("quantiles") or {}).get("holdout_coverage")))
                 is not None]
    return {"trained": float(len(done)), "wape": weighted("wape"), "mase": mean("mase"),
            "mape": mean("mape"), "bias": weighted("bias"),
            "coverage": statistics.fmean(coverages) if coverages else float("nan")}


def main() -> None:
    parser = dataset_parser(__doc__)
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated labels of METHODS")
    args = parser.parse_args()
    chosen = [m.strip() for m in args.methods.split(",") if m.strip()]
    console = Console(width=140)
    weights = holdout_sales(args.dataset)
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ovencast-accuracy-") as tmp:
        configure_logging(log_file=Path(tmp) / "bench.log", stderr_level="ERROR")
        for index, label in enumerate(chosen):
            settings = Settings(ovencast_home=Path(tmp) / f"m{index}",
                                max_concurrent_training_jobs=2)
            import_into(settings, args.dataset, args.country, args.subdivision)
            stop_workers()  # each method starts its worker processes from cold
            started = time.perf_counter()
            trained = train_tenant(settings, TENANT, models=METHODS[label])
            rows[label] = {**pooled(trained, weights),
                           "seconds": time.perf_counter() - started}
            console.print(f"{label}: WAPE {rows[label]['wape']:.3f} in "
                          f"{rows[label]['seconds']:.0f} s", highlight=False)
    table = Table(title=f"bench/accuracy.py {args.dataset}", title_justify="left")
    for column in ("method", "trained", "WAPE", "MASE", "MAPE", "bias", "P10-P90 cover",
                   "train s"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for label, row in rows.items():
        table.add_row(label, f"{row['trained']:.0f}", f"{row['wape']:.3f}",
                      f"{row['mase']:.3f}", f"{row['mape']:.3f}", f"{row['bias']:+.3f}",
                      "n/a" if row["coverage"] != row["coverage"] else f"{row['coverage']:.0%}",
                      f"{row['seconds']:.1f}")
    console.print(table)
    if ORIGINAL in rows and AUTO in rows:
        auto, original = rows[AUTO], rows[ORIGINAL]
        console.print(f"auto / original: WAPE {auto['wape'] / original['wape']:.2f}x, "
                      f"time {auto['seconds'] / original['seconds']:.2f}x")
    singles = {k: v for k, v in rows.items() if k not in (AUTO, ORIGINAL)}
    if AUTO in rows and singles:
        best = min(singles, key=lambda k: singles[k]["wape"])
        console.print(f"auto / best single family ({best}): WAPE "
                      f"{rows[AUTO]['wape'] / singles[best]['wape']:.2f}x")
    if AUTO in rows:
        console.print(f"auto P10-P90 coverage of the holdout days (mean over products): "
                      f"{rows[AUTO]['coverage']:.0%}")
    console.print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
                  f"{platform.python_implementation()} {platform.python_version()}")


if __name__ == "__main__":
    main()
