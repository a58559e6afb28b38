"""Is ovencast's original approach (`--models prophet`: Prophet tuned by Optuna) faithful
to the reference? Retrains it at the reference's rolling origins and compares its
forecasts with the reference method's, day by day. Prints numbers, asserts nothing.

    python bench/original.py DATASET_DIR [--reference DIR] [--origins 0,2,4,6,8,10,12]
        [--products a,b] [--validated] [--country DE --subdivision SH]
        [--closed zero-sales|forecast-zero] [--validation-offset 0]
        [--regressors tenant-frame|reference]

Origins as in ../shared/reference/README.md: origin KK's 28-day window ends KK x 28 days
before the dataset's last date; a product is left out when its data does not reach the
window end or has fewer than 365 days with a sales row before the window (`--validated`
also leaves out those that training rejects: `validate_sales` errors). Training data:
every sales row before the window, built into the tenant frame by `build_tenant_frame`
as training builds it (regressors: every date of the files). The original approach, in
pure core calls (docs/decisions/007-faithful-original.md): closed days as zero sales,
every used regressor, no holiday calendar object, the trial budget of
`SearchClassRule` on the training values, `search_prophet` (TPE seed 0) with the last 28
days of the training data as validation window, the best parameters refitted on all
training data, forecasts of the window with the measured regressors
(`build_future_frame`), clipped at 0.

Printed per origin, on exactly the same product-days (the window's dates with a sales
row, products that both have): pooled WAPE of ovencast's original and of the reference
`<dataset>_original_oKK.csv`, their ratio, and the mean absolute difference between the two
forecasts per product-day relative to the mean actual. `--products` prints per product.

`--regressors reference` fills the regressors' gaps as the reference method did before
building the frame (`features.regressors_as_original`: linear interpolation of every
interior gap, a missing `weather_code` taken as 0), as a `--models prophet` job does
since decision 033; `tenant-frame` builds ovencast's own frame, which drops a regressor
missing on more than 10 % of the sales dates and clips training days where a gap is
longer than 3 days. The columns keep the files' order (the reference's; Prophet's fit
depends on it, decision 033).

Knobs that reproduce ovencast's behaviour before the change, for the decision record:
`--closed forecast-zero` (closed days not fitted, forecast 0), `--validation-offset 28`
(the search's validation window ends 28 days before the training data, as when the
search runs on the training part minus the holdout), `--country` (the holiday calendar of
the `holidays` package as Prophet holidays, `public_holiday` from it and not a regressor).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from ovencast.forecasting.classes import SearchClassRule
from ovencast.forecasting.families.prophet import ProphetModel
from ovencast.forecasting.features import (
    PUBLIC_HOLIDAY,
    build_future_frame,
    build_tenant_frame,
    regressors_as_original,
)
from ovencast.forecasting.frame import CLOSED, DATE, PRODUCT, Y, closed_days_as_zero_sales
from ovencast.forecasting.search import SearchSpec, search_prophet
from ovencast.forecasting.validation import validate_sales
from ovencast.settings import Settings

HORIZON = 28
MIN_DAYS_BEFORE = 365
DEFAULT_ORIGINS = "0,2,4,6,8,10,12"
DEFAULT_REFERENCE = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference"


@dataclass(frozen=True)
class ProductWindow:
    product: str
    actual: np.ndarray  # the window's days with a sales row
    ours: np.ndarray
    reference: np.ndarray
    ours_closed_zero: np.ndarray  # ours with the calendar's closed days forecast as 0
    trials: int
    objective: str
    seconds: float


def read_dataset(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(sales, regressors): sales.csv and the other files merged on date."""
    sales = pd.read_csv(directory / "sales.csv", parse_dates=["date"])
    frames = [
        pd.read_csv(directory / f"{name}.csv", parse_dates=["date"])
        for name in ("weather", "traffic", "calendar")
        if (directory / f"{name}.csv").is_file()
    ]
    regressors = frames[0]
    for frame in frames[1:]:
        regressors = regressors.merge(frame, on="date", how="outer")
    return sales, regressors.sort_values("date").reset_index(drop=True)


def window_products(sales: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> list[str]:
    """Products whose data reaches `end` and has >= MIN_DAYS_BEFORE days before `start`."""
    kept = []
    for product, rows in sales.groupby("product"):
        if rows["date"].max() >= end and int((rows["date"] < start).sum()) >= MIN_DAYS_BEFORE:
            kept.append(str(product))
    return kept


def original_forecast(
    history: pd.DataFrame,
    future: pd.DataFrame,
    regressors: tuple[str, ...],
    base: dict[str, str | None],
    *,
    closed_as_zero_sales: bool,
    validation_offset: int,
) -> tuple[np.ndarray, int, str]:
    """The original approach on one product: (forecast of `future`, trials, objective)."""
    if closed_as_zero_sales:
        history, future = closed_days_as_zero_sales(history), closed_days_as_zero_sales(future)
    n_trials = SearchClassRule().trials(history[Y].to_numpy(dtype=float))
    last = history[DATE].max() - pd.Timedelta(days=validation_offset)
    searched = history.loc[history[DATE] <= last].reset_index(drop=True)
    result = search_prophet(
        searched, SearchSpec(n_trials=n_trials, seed=0), regressors=regressors, base_params=base
    )
    model = ProphetModel(regressors=regressors, params={**base, **result.best_params})
    model.fit(history)
    return model.predict(future), n_trials, result.objective


def run_origin(
    origin: int,
    sales: pd.DataFrame,
    regressors: pd.DataFrame,
    reference: pd.DataFrame,
    args: argparse.Namespace,
) -> list[ProductWindow]:
    end = sales["date"].max() - pd.Timedelta(days=HORIZON * origin)
    start = end - pd.Timedelta(days=HORIZON - 1)
    dates = pd.date_range(start, end, freq="D")
    products = window_products(sales, start, end)
    if args.products:
        products = [p for p in products if p in args.products]
    before = sales.loc[sales["date"] < start]
    long, alignment = build_tenant_frame(
        before, regressors, country=args.country, subdivision=args.subdivision
    )
    used = tuple(alignment.used_regressors)
    # Prophet gets the calendar's holidays natively when there is a country (as training
    # did before docs/decisions/007): the 0/1 column would count them twice.
    prophet_regressors = tuple(r for r in used if not (args.country and r == PUBLIC_HOLIDAY))
    base = {"country": args.country, "subdivision": args.subdivision} if args.country else {}
    if args.validated:
        defaults = Settings()
        report = validate_sales(
            long,
            min_days=defaults.min_training_data_days,
            recommended_days=defaults.recommended_training_data_days,
        )
        products = [p for p in products if not report.errors_for(p)]
    future = build_future_frame(
        dates,
        regressors,
        used_regressors=prophet_regressors,
        country=args.country,
        subdivision=args.subdivision,
    )
    out: list[ProductWindow] = []
    for product in products:
        history = long.loc[long[PRODUCT] == product].drop(columns=[PRODUCT])
        history = history.reset_index(drop=True)
        started = time.perf_counter()
        try:
            yhat, n_trials, objective = original_forecast(
                history,
                future,
                prophet_regressors,
                base,
                closed_as_zero_sales=args.closed == "zero-sales",
                validation_offset=args.validation_offset,
            )
        except Exception as exc:  # a product that fails is reported and left out
            print(f"o{origin:02d} {product}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        seconds = time.perf_counter() - started
        sold = sales.loc[sales["product"] == product].set_index("date")["quantity"]
        actual = sold.reindex(dates).to_numpy(dtype=float)
        stored = reference.loc[reference["product"] == product].set_index("date")["forecast"]
        theirs = stored.reindex(dates).to_numpy(dtype=float)
        known = ~np.isnan(actual) & ~np.isnan(theirs)
        if not known.any():
            print(f"o{origin:02d} {product}: no reference forecast", file=sys.stderr)
            continue
        closed = future[CLOSED].to_numpy(dtype=bool)
        out.append(
            ProductWindow(
                product,
                actual[known],
                yhat[known],
                theirs[known],
                np.where(closed, 0.0, yhat)[known],
                n_trials,
                objective,
                seconds,
            )
        )
        if args.products:
            row = out[-1]
            print(
                f"o{origin:02d} {product}: {n_trials} trials ({objective}), "
                f"WAPE ours {wape([row], 'ours'):.3f} reference {wape([row], 'reference'):.3f}, "
                f"|diff| / mean actual {relative_difference([row]):.4f}, {seconds:.0f} s",
                flush=True,
            )
    return out


def wape(rows: list[ProductWindow], which: str) -> float:
    actual = np.concatenate([r.actual for r in rows])
    forecast = np.concatenate([getattr(r, which) for r in rows])
    return float(np.abs(actual - forecast).sum() / np.abs(actual).sum())


def relative_difference(rows: list[ProductWindow]) -> float:
    ours = np.concatenate([r.ours for r in rows])
    theirs = np.concatenate([r.reference for r in rows])
    actual = np.concatenate([r.actual for r in rows])
    return float(np.mean(np.abs(ours - theirs)) / np.mean(actual))


def cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (the cmdstan runs)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--origins", default=DEFAULT_ORIGINS)
    parser.add_argument("--products", type=lambda v: [p for p in v.split(",") if p])
    parser.add_argument(
        "--validated", action="store_true", help="leave out the products that training rejects"
    )
    parser.add_argument("--country")
    parser.add_argument("--subdivision")
    parser.add_argument("--closed", choices=("zero-sales", "forecast-zero"), default="zero-sales")
    parser.add_argument("--validation-offset", type=int, default=0)
    parser.add_argument(
        "--regressors", choices=("tenant-frame", "reference"), default="tenant-frame"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    console = Console(width=140)
    name = args.dataset.resolve().name
    sales, regressors = read_dataset(args.dataset)
    if args.regressors == "reference":
        regressors, _ = regressors_as_original(regressors)
    origins = [int(o) for o in args.origins.split(",") if o.strip()]

    wall, cpu = time.perf_counter(), cpu_seconds()
    results: dict[int, list[ProductWindow]] = {}
    for origin in origins:
        path = args.reference / f"{name}_original_o{origin:02d}.csv"
        reference = pd.read_csv(path, parse_dates=["date"])
        results[origin] = run_origin(origin, sales, regressors, reference, args)
        rows = results[origin]
        if rows:
            console.print(
                f"o{origin:02d}: {len(rows)} products, ours {wape(rows, 'ours'):.3f} "
                f"reference {wape(rows, 'reference'):.3f}",
                highlight=False,
            )

    holidays = "/".join(v for v in (args.country, args.subdivision) if v) or "none"
    options = [
        f"closed {args.closed}",
        f"validation offset {args.validation_offset}",
        f"holidays {holidays}",
        f"regressors {args.regressors}",
    ]
    table = Table(
        title=f"bench/original.py {name} ({', '.join(options)}): pooled WAPE on the "
        f"same product-days",
        title_justify="left",
    )
    for column in (
        "origin",
        "products",
        "product-days",
        "ovencast original",
        "reference",
        "ratio",
        "|diff| / mean actual",
        "ours, closed days 0",
    ):
        table.add_column(column, justify="left" if column == "origin" else "right")
    ours_all, theirs_all = [], []
    for origin, rows in results.items():
        if not rows:
            table.add_row(f"o{origin:02d}", "0", "0", "-", "-", "-", "-", "-")
            continue
        ours, theirs = wape(rows, "ours"), wape(rows, "reference")
        ours_all.append(ours)
        theirs_all.append(theirs)
        table.add_row(
            f"o{origin:02d}",
            str(len(rows)),
            str(sum(len(r.actual) for r in rows)),
            f"{ours:.3f}",
            f"{theirs:.3f}",
            f"{ours / theirs:.3f}",
            f"{relative_difference(rows):.4f}",
            f"{wape(rows, 'ours_closed_zero'):.3f}",
        )
    if ours_all:
        table.add_row(
            "mean",
            "",
            "",
            f"{statistics.fmean(ours_all):.3f}",
            f"{statistics.fmean(theirs_all):.3f}",
            f"{statistics.fmean(ours_all) / statistics.fmean(theirs_all):.3f}",
            "",
        )
    console.print(table)
    console.print(
        f"wall {time.perf_counter() - wall:.0f} s, CPU {cpu_seconds() - cpu:.0f} s "
        f"(this process and its cmdstan runs)",
        highlight=False,
    )


if __name__ == "__main__":
    main()
