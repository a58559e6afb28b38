"""Accuracy and cost of every method on one dataset's final 28 days, in one process and one
run. Prints numbers, asserts nothing.

    python bench/accuracy.py DATASET_DIR [--country DE --subdivision SH] [--methods ...]
        [--regressors oracle|fallback|both] [--reference ../shared/reference]

Protocol (bench/protocol.py, origin 0): each method is trained in a fresh home with 2
worker processes on every sales row before the final 28-day window (`ovencast train
--until`), then forecasts the window (`ovencast forecast`), as a user would. Scored on the
window's product-days with a sales row, for the products the reference scores (data up to
the window's end, 365+ days before it) that got a forecast: pooled WAPE = sum|y - yhat| /
sum y, bias = sum(yhat - y) / sum y, and the share of product-days inside P10..P90.
`--regressors oracle`: the window's measured weather and footfall are known (as in the
reference's measurement); `fallback`: they are hidden, the forecast fills them in as a
bakery forecasting ahead must. "original" is the system we replace: Prophet tuned by
Optuna with the trial budget of the product's class. With `--reference`, the reference
methods' published forecasts are scored on exactly the same product-days.
"""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path

from protocol import (
    AUTO,
    METHODS,
    ORIGINAL,
    REFERENCES,
    REGRESSOR_MODES,
    origins,
    pair,
    read_sales,
    reference_forecast,
    run_at_origin,
    score,
    scored_products,
)
from rich.console import Console
from rich.table import Table
from speed import dataset_parser, holidays_line

from ovencast.datasets.reader import read_dataset_dir
from ovencast.observability.logs import configure_logging


def main() -> None:
    parser = dataset_parser(__doc__)
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated labels of METHODS")
    parser.add_argument("--regressors", choices=[*REGRESSOR_MODES, "both"], default="both")
    parser.add_argument("--reference", type=Path, default=None,
                        help="directory of the reference forecasts (shared/reference)")
    args = parser.parse_args()
    chosen = [m.strip() for m in args.methods.split(",") if m.strip()]
    modes = list(REGRESSOR_MODES) if args.regressors == "both" else [args.regressors]
    console = Console(width=140)
    dataset = read_dataset_dir(args.dataset)
    sales = read_sales(args.dataset)
    [origin] = origins(dataset.last_date, [0])
    products = scored_products(sales, origin)
    console.print(holidays_line(args), highlight=False, markup=False)
    console.print(f"window {origin.window_start}..{origin.window_end}, {len(products)} "
                  f"products scored; training data up to {origin.until}", highlight=False,
                  markup=False)
    with tempfile.TemporaryDirectory(prefix="ovencast-accuracy-") as tmp:
        configure_logging(log_file=Path(tmp) / "bench.log", stderr_level="ERROR")
        for mode in modes:
            rows: dict[str, dict[str, float]] = {}
            for index, label in enumerate(chosen):
                result = run_at_origin(Path(tmp), f"{mode}-{index}", dataset, METHODS[label],
                                       origin, regressors=mode, country=args.country,
                                       subdivision=args.subdivision)
                pairs = pair(result.forecast, sales, products, origin)
                found = score(pairs)
                rows[label] = {"wape": found.wape, "bias": found.bias,
                               "coverage": found.coverage, "seconds": result.seconds,
                               "products": float(pairs["product"].nunique())}
                console.print(f"{label}: WAPE {found.wape:.3f} in {result.seconds:.0f} s",
                              highlight=False)
            for method, label in REFERENCES.items():
                forecast = reference_forecast(args.reference, args.dataset, method, origin)
                if forecast is not None:
                    found = score(pair(forecast, sales, products, origin))
                    rows[label] = {"wape": found.wape, "bias": found.bias,
                                   "coverage": found.coverage, "seconds": float("nan"),
                                   "products": float(len(products))}
            report(console, args.dataset, mode, rows)
    console.print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
                  f"{platform.python_implementation()} {platform.python_version()}")


def report(console: Console, dataset: Path, mode: str, rows: dict[str, dict[str, float]]
           ) -> None:
    # The directory's name only: a long path would wrap the title on an 80-column log.
    table = Table(title=f"{dataset.name}, regressors: {mode}",
                  title_justify="left")
    for column in ("method", "products", "WAPE", "bias", "P10-P90 cover", "train s"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for label, row in rows.items():
        table.add_row(label, f"{row['products']:.0f}", f"{row['wape']:.3f}",
                      f"{row['bias']:+.3f}", _share(row["coverage"]),
                      "-" if row["seconds"] != row["seconds"] else f"{row['seconds']:.1f}")
    console.print(table)
    if ORIGINAL in rows and AUTO in rows:
        auto, original = rows[AUTO], rows[ORIGINAL]
        console.print(f"[{mode}] auto / original: WAPE {auto['wape'] / original['wape']:.2f}x, "
                      f"time {auto['seconds'] / original['seconds']:.2f}x", highlight=False,
                      markup=False)
    singles = {k: v for k, v in rows.items()
               if k not in (AUTO, ORIGINAL) and k not in REFERENCES.values()}
    if AUTO in rows and singles:
        best = min(singles, key=lambda k: singles[k]["wape"])
        console.print(f"[{mode}] auto / best single family ({best}): WAPE "
                      f"{rows[AUTO]['wape'] / singles[best]['wape']:.2f}x", highlight=False,
                      markup=False)
    if AUTO in rows:
        console.print(f"[{mode}] auto P10-P90 coverage of the window's product-days: "
                      f"{_share(rows[AUTO]['coverage'])}", highlight=False, markup=False)


def _share(value: float) -> str:
    return "n/a" if value != value else f"{value:.0%}"


if __name__ == "__main__":
    main()
