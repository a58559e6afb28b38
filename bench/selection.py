"""Automatic model selection on a dataset directory, product by product, in this process
(no database): what `fit_product` chooses, its backtest leaderboard, and the holdout WAPE
of the choice against the seasonal naive. Prints numbers, asserts nothing.

    python bench/selection.py DATASET_DIR [--country DE --subdivision SH]
        [--products a,b] [--models auto | --models mstl,auto_ets] [--extra auto_arima]

`--extra` adds candidates to both of auto's candidate sets (to measure whether a family
pays for its cost, e.g. auto_arima).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table
from speed import holidays_line

from ovencast.forecasting.classes import ClassThresholds
from ovencast.forecasting.families.base import FitContext
from ovencast.forecasting.features import build_tenant_frame
from ovencast.forecasting.frame import CLOSED, PRODUCT, Y
from ovencast.forecasting.global_stage import needs_global_stage, train_tenant_models
from ovencast.forecasting.selection import (
    INTERMITTENT_CANDIDATES,
    REGULAR_CANDIDATES,
    CandidatePolicy,
)
from ovencast.training.fitting import fit_product
from ovencast.training.plan import FitPlan


def load(directory: Path, country: str | None, subdivision: str | None) -> pd.DataFrame:
    sales = pd.read_csv(directory / "sales.csv")
    frames = [pd.read_csv(directory / f"{name}.csv")
              for name in ("weather", "traffic", "calendar")
              if (directory / f"{name}.csv").is_file()]
    regressors = frames[0] if frames else pd.DataFrame({"date": []})
    for frame in frames[1:]:
        regressors = regressors.merge(frame, on="date", how="outer")
    long, _alignment = build_tenant_frame(sales, regressors, country=country,
                                          subdivision=subdivision)
    return long


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("--country")
    parser.add_argument("--subdivision")
    parser.add_argument("--products")
    parser.add_argument("--models", default="auto")
    parser.add_argument("--extra", default="")
    args = parser.parse_args()
    print(holidays_line(args), flush=True)
    long = load(args.directory, args.country, args.subdivision)
    regressors = tuple(c for c in long.columns if c not in (PRODUCT, "date", Y, CLOSED))
    extra = tuple(e for e in args.extra.split(",") if e)
    policy = CandidatePolicy(regular=REGULAR_CANDIDATES + extra,
                             intermittent=INTERMITTENT_CANDIDATES + extra)
    products = args.products.split(",") if args.products else sorted(long[PRODUCT].unique())
    # The tenant stage, as a training job runs it: LightGBM's boosters for all products.
    histories = {str(p): h.drop(columns=[PRODUCT]).reset_index(drop=True)
                 for p, h in long.groupby(PRODUCT)}
    fits = (train_tenant_models(histories, regressors, workers=2)
            if needs_global_stage(tuple(args.models.split(","))) else None)
    console = Console(width=200)
    table = Table(title=f"selection on {args.directory} (models={args.models})")
    for column in ("product", "class", "chosen", "backtest WAPE", "holdout WAPE",
                   "naive WAPE", "P10-P90 cover", "seconds", "leaderboard (backtest WAPE, s)"):
        table.add_column(column)
    wapes, naive, seconds = [], [], []
    for product in products:
        history = long.loc[long[PRODUCT] == product].drop(columns=[PRODUCT])
        history = history.reset_index(drop=True)
        product_class = str(ClassThresholds().classify(
            history.loc[~history[CLOSED], Y].to_numpy()))
        plan = FitPlan(families=tuple(args.models.split(",")), product_class=product_class,
                       country=args.country, subdivision=args.subdivision,
                       regressors=regressors, time_limit_s=1800.0, candidates=policy,
                       context=FitContext(product=product, global_fits=fits))
        started = time.perf_counter()
        result = fit_product(history, plan)
        elapsed = time.perf_counter() - started
        details = result.details
        board = ", ".join(
            f"{row['family']} {row['wape']:.3f} ({row.get('seconds', 0):.1f})"
            if row.get("wape") is not None else f"{row['family']} failed"
            for row in details["leaderboard"])
        quantiles = details.get("quantiles") or {}
        wapes.append(result.best.metrics.wape)
        naive.append(result.best.baseline_metrics.wape)
        seconds.append(elapsed)
        table.add_row(product, product_class, details["selection"]["chosen"],
                      f"{details['selection'].get('wape') or float('nan'):.3f}",
                      f"{result.best.metrics.wape:.3f}",
                      f"{result.best.baseline_metrics.wape:.3f}",
                      f"{quantiles.get('holdout_coverage') or float('nan'):.2f}",
                      f"{elapsed:.1f}", board)
    console.print(table)
    # A product whose holdout has no open day with sales has no WAPE (NaN): left out.
    scored = [(w, n) for w, n in zip(wapes, naive, strict=True) if math.isfinite(w)]
    if not scored:
        console.print("no product has a holdout WAPE (no open day with sales in any holdout)")
        return
    console.print(f"mean holdout WAPE {statistics.fmean(w for w, _ in scored):.3f} (seasonal "
                  f"naive {statistics.fmean(n for _, n in scored):.3f}) over the "
                  f"{len(scored)} of {len(wapes)} products with one; {sum(seconds):.0f} s "
                  f"in all, {statistics.median(seconds):.1f} s median per product")


if __name__ == "__main__":
    main()
