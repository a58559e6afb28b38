"""`auto`'s selection rule replayed over many forecast origins: is it right on average, not
only on the one 28-day holdout of bench/accuracy.py? Prints numbers, asserts nothing.

    python bench/replay.py DATASET_DIR [--country DE --subdivision SH] [--origins 12]
        [--extra prophet_holidays,auto_ets]

For every product that passes validation, each candidate of its class (plus `--extra`,
scored as fixed families only) is fitted once per 28-day window of a grid: windows
ending 0, 28, 56, ... days before the product's last date, each fitted on every row
before it. Window 0 is bench/accuracy.py's holdout. LightGBM goes through the tenant
stage: one booster per cut-off for all products, adopted per product.

Origin k (k = 1 .. --origins, the 28-day windows before the holdout, newest first) is
forecast as `auto` would forecast it from the data before it: `selection.choose` on the
windows `BacktestPlan` gives such a history (the n_windows grid windows k+1 .. k+n and the
seasonal one, 52 weeks = 13 windows before k), and the choice is scored on window k. (The
grid equals the plan's windows when the history has a row on the day before window k;
with missing dates the plan would shift its windows by those days.) Printed per method:
pooled WAPE per origin (over all products' open days), its mean over the origins, the
origins where the method was best, and the same for origin 0, the holdout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from selection import load
from speed import holidays_line

from ovencast.forecasting.classes import ProductClass
from ovencast.forecasting.families.base import FitContext
from ovencast.forecasting.families.global_fits import LIGHTGBM
from ovencast.forecasting.families.lightgbm_global import LightGBMModel, train_global
from ovencast.forecasting.frame import CLOSED, DATE, PRODUCT, YHAT, Y
from ovencast.forecasting.selection import (
    SEASONAL_LAG_DAYS,
    WINDOW,
    BacktestPlan,
    Candidate,
    CandidatePolicy,
    FamilyBacktest,
    choose,
    resolve_candidate,
)
from ovencast.forecasting.validation import validate_sales
from ovencast.settings import Settings

HORIZON = 28
MIN_TRAIN_OPEN_DAYS = 70
AUTO = "auto"
# window index -> that window's rows with the forecast (date, y, closed, forecast)
Windows = dict[int, pd.DataFrame]


def grid(history: pd.DataFrame, n: int) -> list[tuple[int, pd.DataFrame, pd.DataFrame]]:
    """(j, train, test) of the grid windows 0..n-1 that have enough to fit and score."""
    last = pd.Timestamp(history[DATE].max())
    found = []
    for j in range(n):
        end = last - pd.Timedelta(days=HORIZON * j)
        start = end - pd.Timedelta(days=HORIZON - 1)
        train = history.loc[history[DATE] < start].reset_index(drop=True)
        test = history.loc[(history[DATE] >= start) & (history[DATE] <= end)]
        if (~train[CLOSED]).sum() >= MIN_TRAIN_OPEN_DAYS and (~test[CLOSED]).any():
            found.append((j, train, test.reset_index(drop=True)))
    return found


def scored(test: pd.DataFrame, forecast: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({DATE: test[DATE].to_numpy(), Y: test[Y].to_numpy(dtype=float),
                         CLOSED: test[CLOSED].to_numpy(dtype=bool), YHAT: forecast})


def fit_windows(args: tuple[Candidate, pd.DataFrame, int]) -> Windows:
    candidate, history, n = args
    warnings.filterwarnings("ignore")
    out: Windows = {}
    for j, train, test in grid(history, n):
        try:
            model = candidate.build().fit(train)
        except Exception as exc:  # a failed fit leaves the window out for this candidate
            print(f"{candidate.name} window {j}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        out[j] = scored(test, model.predict(test[[DATE, CLOSED, *model.regressors]]))
    return out


def lightgbm_windows(histories: Mapping[str, pd.DataFrame], regressors: Sequence[str],
                     n: int, workers: int) -> tuple[dict[str, Windows], float]:
    cutoffs = {pd.Timestamp(train.loc[~train[CLOSED], DATE].max())
               for history in histories.values() for _, train, _ in grid(history, n)}
    fits = train_global(histories, regressors, sorted(cutoffs), workers=workers)
    out: dict[str, Windows] = {}
    for product, history in histories.items():
        out[product] = {}
        context = FitContext(product=product, global_fits=fits)
        for j, train, test in grid(history, n):
            model = LightGBMModel(regressors=regressors).fit(train, context=context)
            out[product][j] = scored(test, model.predict(test))
    return out, fits.seconds


def backtest_of(candidate: Candidate, windows: Windows, wanted: Sequence[int]
                ) -> FamilyBacktest | None:
    """The candidate's backtest over the grid windows `wanted` (oldest first), as
    `selection.backtest_family` would have produced it; None if one is missing."""
    if any(j not in windows for j in wanted):
        return None
    predictions = pd.concat([windows[j].assign(**{WINDOW: i}) for i, j in enumerate(wanted)],
                            ignore_index=True)
    open_rows = predictions.loc[~predictions[CLOSED]]
    total = float(open_rows[Y].abs().sum())
    wape = float((open_rows[Y] - open_rows[YHAT]).abs().sum()) / total if total else np.nan
    # choose() reads wape and predictions only; per-window metrics are not replayed.
    return FamilyBacktest(candidate=candidate, wape=wape, window_metrics=(),
                          predictions=predictions, seconds=0.0)


def pooled_wape(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    y = np.concatenate([p[0] for p in pairs])
    f = np.concatenate([p[1] for p in pairs])
    return float(np.abs(y - f).sum() / np.abs(y).sum()) if np.abs(y).sum() else np.nan


def score_origins(methods: list[str], names: dict[str, None],
                  histories: dict[str, pd.DataFrame], classes: dict[str, ProductClass],
                  candidates: dict[str, Candidate],
                  windows: dict[tuple[str, str], Windows], *, origins: int,
                  plan: BacktestPlan, policy: CandidatePolicy, seasonal_back: int
                  ) -> dict[str, list[float]]:
    """Pooled WAPE per method at origins 0..`origins`, `auto` replayed from the stored
    window forecasts with the selection rule of the code."""
    per_origin: dict[str, list[float]] = {m: [] for m in methods}
    for k in range(origins + 1):
        pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {m: [] for m in methods}
        wanted = [k + seasonal_back, *range(k + plan.n_windows, k, -1)]
        for product in histories:
            auto = auto_pairs(product, classes[product], names, candidates, windows,
                              wanted, k, policy)
            if auto is None:
                continue
            mask, pair = auto
            pairs[AUTO].append(pair)
            for name in names:
                frame = windows[(name, product)].get(k)
                if frame is not None:
                    pairs[name].append((frame[Y].to_numpy()[mask],
                                        frame[YHAT].to_numpy()[mask]))
        for method in methods:
            per_origin[method].append(pooled_wape(pairs[method]) if pairs[method] else np.nan)
    return per_origin


def auto_pairs(product: str, product_class: ProductClass, names: dict[str, None],
               candidates: dict[str, Candidate], windows: dict[tuple[str, str], Windows],
               wanted: list[int], k: int, policy: CandidatePolicy
               ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]] | None:
    """`auto`'s choice for one product at origin k: (open-day mask, (actual, forecast));
    None when a candidate lacks a window."""
    own = policy.intermittent if product_class is ProductClass.INTERMITTENT \
        else policy.regular
    backtests = [b for name in own if (b := backtest_of(
        candidates[name], windows[(name, product)], wanted)) is not None]
    target = {name: windows[(name, product)].get(k) for name in names}
    if not backtests or any(target[b.candidate.name] is None for b in backtests):
        return None
    choice = choose(backtests, combine_top=3, prefer=policy.preferred_for(product_class))
    first = target[choice.members[0][0].name]
    assert first is not None
    mask = ~first[CLOSED].to_numpy()
    forecast = np.zeros(len(first))
    for member, weight in choice.members:
        frame = target[member.name]
        assert frame is not None
        forecast += weight * frame[YHAT].to_numpy(dtype=float)
    return mask, (first[Y].to_numpy()[mask], forecast[mask])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--country")
    parser.add_argument("--subdivision")
    parser.add_argument("--origins", type=int, default=12)
    parser.add_argument("--extra", default="", help="more families, scored as fixed only")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    console = Console(width=160)
    console.print(holidays_line(args), highlight=False, markup=False)
    plan, policy = BacktestPlan(), CandidatePolicy()
    seasonal_back = SEASONAL_LAG_DAYS // HORIZON
    n = max(args.origins + plan.n_windows, args.origins + seasonal_back) + 1

    long = load(args.directory, args.country, args.subdivision)
    defaults = Settings()
    report = validate_sales(long, min_days=defaults.min_training_data_days,
                            recommended_days=defaults.recommended_training_data_days)
    regressors = tuple(c for c in long.columns if c not in (PRODUCT, DATE, Y, CLOSED))
    histories = {str(p): h.drop(columns=[PRODUCT]).reset_index(drop=True)
                 for p, h in long.groupby(PRODUCT) if not report.errors_for(str(p))}
    classes = {p: report.products[p].product_class for p in histories}
    names = dict.fromkeys([*policy.regular, *policy.intermittent,
                           *(e for e in args.extra.split(",") if e)])
    candidates = {name: resolve_candidate(name).with_context(
        regressors=regressors, params=({"country": args.country,
                                        "subdivision": args.subdivision}
                                       if resolve_candidate(name).family == "prophet"
                                       else None)) for name in names}

    started = time.perf_counter()
    windows: dict[tuple[str, str], Windows] = {}
    gbm, gbm_seconds = lightgbm_windows(histories, regressors, n, args.workers)
    windows.update({(LIGHTGBM, p): w for p, w in gbm.items()})
    jobs = [(c, p) for c in candidates.values() if c.family != LIGHTGBM for p in histories]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = pool.map(fit_windows, [(c, histories[p], n) for c, p in jobs])
        for (candidate, product), result in zip(jobs, results, strict=True):
            windows[(candidate.name, product)] = result
    console.print(f"{len(histories)} products, {n} windows each: fitted in "
                  f"{time.perf_counter() - started:.0f} s (LightGBM stage {gbm_seconds:.0f} s)")

    methods = [AUTO, *names]
    per_origin = score_origins(methods, names, histories, classes, candidates, windows,
                               origins=args.origins, plan=plan, policy=policy,
                               seasonal_back=seasonal_back)

    table = Table(title=f"bench/origins.py {args.directory}: pooled WAPE", title_justify="left")
    for column in ("method", f"mean, origins 1-{args.origins}", "best at",
                   "holdout (origin 0)", "per origin 1..N"):
        table.add_column(column)
    development = {m: per_origin[m][1:] for m in methods}
    for method in methods:
        values = development[method]
        best_at = sum(1 for i in range(args.origins)
                      if values[i] <= min(development[m][i] for m in methods
                                          if not np.isnan(development[m][i])))
        table.add_row(method, f"{np.nanmean(values):.3f}", str(best_at),
                      f"{per_origin[method][0]:.3f}",
                      " ".join(f"{v:.2f}" for v in values))
    console.print(table)
    best = min((m for m in methods if m != AUTO), key=lambda m: float(np.nanmean(development[m])))
    ratios = [a / b for a, b in zip(development[AUTO], development[best], strict=True)]
    console.print(f"auto / best fixed family ({best}) over origins 1-{args.origins}: "
                  f"{np.nanmean(development[AUTO]) / np.nanmean(development[best]):.2f}x "
                  f"(median per origin {statistics.median(ratios):.2f}x)")


if __name__ == "__main__":
    main()
