"""The acceptance measure of accuracy (issue #16): pooled WAPE per 28-day origin and its
mean, every method trained for real at every origin. Prints numbers, asserts nothing.

    python bench/origins.py DATASET_DIR [--country DE --subdivision SH]
        [--origins 0,2,4,6,8,10,12] [--methods auto,lightgbm,original]
        [--regressors oracle|fallback] [--workers cold|warm] [--reference ../shared/reference]
        [--csv OUT.csv]

Protocol (bench/protocol.py): at origin k the 28-day window ends k x 28 days before the
dataset's last sales date; each method is trained in a fresh home on every sales row
before the window (`ovencast train --until`) and forecasts the window (`ovencast
forecast`), as a user would. Origins 0, 2, ..., 12 are those of ../shared/reference.
Every method is scored on exactly the same product-days: those of the products the
reference scores (data up to the window's end, 365+ days before it) with a sales row
that every method forecast. With `--reference`, the reference methods' published
forecasts are scored on the same product-days. `--regressors oracle` (default): the
window's measured weather and footfall are known, as in the reference.

Printed: per method the pooled WAPE at each origin and the mean over them; `auto` over
the original approach and over the best single family (ratio of means); training time of
`auto` over the original's (sum over origins, same run); each trained method's share of
product-days inside P10..P90, pooled over the origins, on every scored day and on the
days it forecast open (a day forecast closed has the band 0..0, and a closed day's 0
sales lie inside it by construction). With `--regressors fallback` and a calendar
marking closed days (`opening_hours` 0 or `closed` 1), the same table again on the days
the calendar marks open: the fallback cuts the calendar at the origin too, so a closure
the tenant did not upload is forecast as open days, which all-day WAPE counts and a
baker never bakes for (decision 027). `--csv` has both (`wape`, `wape_open`), and the
coverage on every scored day and on the days forecast open (`coverage`,
`coverage_open`). `--workers cold` (default) times every training from a new fork server,
as a new `ovencast train` process pays it; `warm` from one that has already imported the
modelling stack, as a service worker's next job (both methods alike).
"""

from __future__ import annotations

import csv
import os
import platform
import tempfile
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from protocol import (
    AUTO,
    METHODS,
    ORIGINAL,
    REFERENCES,
    REGRESSOR_MODES,
    WORKER_MODES,
    Origin,
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

from ovencast.datasets.reader import ParsedDataset, read_dataset_dir
from ovencast.forecasting.features import ClosedDayRule
from ovencast.observability.logs import configure_logging

DEFAULT_ORIGINS = "0,2,4,6,8,10,12"
DEFAULT_METHODS = f"{AUTO},lightgbm (global),{ORIGINAL}"
KEY = ["date", "product"]


def main() -> None:
    parser = dataset_parser(__doc__)
    parser.add_argument("--origins", default=DEFAULT_ORIGINS)
    parser.add_argument("--methods", default=DEFAULT_METHODS,
                        help=f"comma-separated labels of: {', '.join(METHODS)}")
    parser.add_argument("--regressors", choices=REGRESSOR_MODES, default="oracle")
    parser.add_argument("--workers", choices=WORKER_MODES, default="cold")
    parser.add_argument("--reference", type=Path, default=None)
    parser.add_argument("--csv", type=Path, default=None,
                        help="write every method's score per origin here")
    args = parser.parse_args()
    chosen = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; known: {', '.join(METHODS)}")
    console = Console(width=160)
    console.print(holidays_line(args), highlight=False, markup=False)
    dataset = read_dataset_dir(args.dataset)
    sales = read_sales(args.dataset)
    closed = closed_dates(dataset)
    grid = origins(dataset.last_date, [int(k) for k in args.origins.split(",")])

    rows: list[dict[str, object]] = []
    seconds: dict[str, float] = dict.fromkeys(chosen, 0.0)
    trained_pairs: dict[str, list[pd.DataFrame]] = {label: [] for label in chosen}
    with tempfile.TemporaryDirectory(prefix="ovencast-origins-") as tmp:
        configure_logging(log_file=Path(tmp) / "bench.log", stderr_level="ERROR")
        for origin in grid:
            products = scored_products(sales, origin)
            forecasts: dict[str, pd.DataFrame] = {}
            for index, label in enumerate(chosen):
                result = run_at_origin(Path(tmp), f"o{origin.index:02d}-{index}", dataset,
                                       METHODS[label], origin, regressors=args.regressors,
                                       country=args.country, subdivision=args.subdivision,
                                       workers=args.workers)
                forecasts[label] = result.forecast
                seconds[label] += result.seconds
                console.print(f"origin {origin.index:2d} {label}: trained in "
                              f"{result.seconds:.0f} s", highlight=False, markup=False)
            for method, label in REFERENCES.items():
                found = reference_forecast(args.reference, args.dataset, method, origin)
                if found is not None:
                    forecasts[label] = found
            common = _common_product_days(forecasts, sales, products, origin)
            for label, forecast in forecasts.items():
                pairs = pair(forecast, sales, products, origin).merge(common, on=KEY)
                found_score = score(pairs)
                open_score = score(pairs.loc[~pairs["date"].isin(closed)])
                rows.append({"origin": origin.index, "method": label, "wape": found_score.wape,
                             "wape_open": open_score.wape,
                             "bias": found_score.bias, "coverage": found_score.coverage,
                             "coverage_open": score(pairs.loc[~forecast_closed(pairs)]).coverage,
                             "product_days": found_score.product_days,
                             "products": int(pairs["product"].nunique())})
                if label in trained_pairs:
                    trained_pairs[label].append(pairs)
            console.print(f"origin {origin.index:2d} ({origin.window_start}..{origin.window_end}"
                          f"): {len(common)} product-days of {len(products)} products, "
                          + ", ".join(f"{r['method']} {r['wape']:.3f}" for r in rows
                                      if r["origin"] == origin.index),
                          highlight=False, markup=False)
    if args.csv is not None:
        with args.csv.open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    report(console, args.dataset, args.regressors, grid, rows, seconds, trained_pairs)
    if args.regressors == "fallback" and closed:
        print_table(console, pd.DataFrame(rows), "wape_open", seconds,
                    f"bench/origins.py {args.dataset}, regressors: fallback: pooled WAPE on "
                    f"the days the calendar marks open ({len(closed)} closed dates left out)")


def closed_dates(dataset: ParsedDataset) -> set[date]:
    """The dates the dataset's regressors mark closed, by training's rule
    (`ClosedDayRule`: opening hours 0 or a closed flag); none without such a column."""
    wide = pd.DataFrame({c.name: pd.Series(c.values, dtype=float) for c in dataset.regressors})
    return set(wide.index[ClosedDayRule().closed(wide).to_numpy()])


def _common_product_days(forecasts: dict[str, pd.DataFrame], sales: pd.DataFrame,
                         products: Sequence[str], origin: Origin) -> pd.DataFrame:
    """The (date, product) pairs every method forecast."""
    common: pd.DataFrame | None = None
    for forecast in forecasts.values():
        keys = pair(forecast, sales, products, origin)[KEY]
        common = keys if common is None else common.merge(keys, on=KEY)
    assert common is not None
    return common


def report(console: Console, dataset: Path, mode: str, grid: Sequence[Origin],
           rows: list[dict[str, object]], seconds: dict[str, float],
           trained_pairs: dict[str, list[pd.DataFrame]]) -> None:
    wide, means = print_table(console, pd.DataFrame(rows), "wape", seconds,
                              f"bench/origins.py {dataset}, regressors: {mode}: pooled WAPE")
    if AUTO in means and ORIGINAL in means:
        console.print(f"auto / original: mean WAPE {means[AUTO] / means[ORIGINAL]:.2f}x, "
                      f"per origin {_ratios(wide, AUTO, ORIGINAL)}; training time "
                      f"{seconds[AUTO] / seconds[ORIGINAL]:.2f}x", highlight=False,
                      markup=False)
    singles = [m for m in seconds if m not in (AUTO, ORIGINAL)]
    if AUTO in means and singles:
        best = min(singles, key=lambda m: means[m])
        console.print(f"auto / best single family ({best}): mean WAPE "
                      f"{means[AUTO] / means[best]:.2f}x", highlight=False, markup=False)
    for label, pairs in trained_pairs.items():
        if pairs:
            console.print(coverage_line(label, pd.concat(pairs, ignore_index=True)),
                          highlight=False, markup=False)
    console.print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
                  f"{platform.python_implementation()} {platform.python_version()}")


def forecast_closed(pairs: pd.DataFrame) -> np.ndarray:
    """Which of `pairs` the forecast marked closed (all False for a reference method's
    forecasts, which have no such column)."""
    if "closed" not in pairs:
        return np.zeros(len(pairs), dtype=bool)
    return pairs["closed"].fillna(False).astype(bool).to_numpy()


def coverage_line(label: str, pairs: pd.DataFrame) -> str:
    """`label`'s share of product-days inside P10..P90, pooled over the origins, and the
    same on the days it forecast open, the days realised accuracy scores
    (`accuracy/scoring.py`): a day the forecast marks closed (the calendar says so) has
    the band 0..0, and the 0 sales of a shop that was closed lie inside it by
    construction, so a dataset with long closures (North Sea's winter) counts hundreds of
    them in the first figure."""
    line = (f"{label} P10-P90 coverage, pooled over the origins: "
            f"{score(pairs).coverage:.1%} of {len(pairs)} product-days")
    shut = forecast_closed(pairs)
    if shut.any():
        line += (f"; {score(pairs.loc[~shut]).coverage:.1%} of the {int((~shut).sum())} "
                 f"it forecast open ({int(shut.sum())} forecast closed left out)")
    return line


def print_table(console: Console, frame: pd.DataFrame, column: str,
                seconds: dict[str, float], title: str) -> tuple[pd.DataFrame, dict[str, float]]:
    """One row per method: `column` per origin, its mean, the training seconds."""
    wide = frame.pivot(index="method", columns="origin", values=column)
    methods = list(dict.fromkeys(frame["method"]))
    # The title on a line of its own: a table's title wraps to the table's width.
    console.print(title, highlight=False, markup=False)
    table = Table()
    table.add_column("method")
    for k in wide.columns:
        table.add_column(f"o{int(k):02d}", justify="right")
    table.add_column("mean", justify="right")
    table.add_column("train s", justify="right")
    means = {m: float(wide.loc[m].mean()) for m in methods}
    for method in methods:
        table.add_row(method, *(f"{v:.3f}" for v in wide.loc[method]), f"{means[method]:.3f}",
                      f"{seconds[method]:.0f}" if method in seconds else "-")
    console.print(table)
    return wide, means


def _ratios(wide: pd.DataFrame, a: str, b: str) -> str:
    ratios = (wide.loc[a] / wide.loc[b]).to_numpy(dtype=float)
    return f"{np.nanmin(ratios):.2f}x-{np.nanmax(ratios):.2f}x"


if __name__ == "__main__":
    main()
