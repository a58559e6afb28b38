"""The tenant-level stage of a training job: the global models (today: LightGBM, see
`families.lightgbm_global`) are trained once for all of a tenant's products, before the
per-product tasks, at every training cut-off those tasks will ask for.

A product's cut-offs are the last open day of each training part it fits on: each
backtest window's (`selection.BacktestPlan.windows` of its history minus the holdout),
the holdout's (history minus holdout) and the final fit's (the whole history). Nothing
after a cut-off is used by the booster of that cut-off, so the holdout stays unseen by
selection exactly as for the per-product families.

The stage also weighs the global model's two members (`lightgbm_global`): on the
backtest windows of the tenant's products, pooled (one weight per tenant: a product's
own 7 windows are too few to tell two close models apart), the weight of the horizon
member among `HORIZON_WEIGHTS` with the lowest pooled WAPE; ties go to the smaller weight.
docs/decisions/009-global-lightgbm-members.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ovencast.forecasting.families.global_fits import LIGHTGBM, GlobalFits
from ovencast.forecasting.families.lightgbm_global import (
    BoosterTrainer,
    member_backtests,
    train_global,
)
from ovencast.forecasting.frame import CLOSED, DATE, Y
from ovencast.forecasting.holdout import HoldoutSplit
from ovencast.forecasting.selection import AUTO, BacktestPlan, resolve_candidate

HORIZON_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
# Products whose backtests weigh the members: the largest by volume (the pooled WAPE is
# dominated by them anyway), so that the cost stays flat for a chain's thousands.
MAX_WEIGHING_PRODUCTS = 200


def needs_global_stage(families: Sequence[str]) -> bool:
    """Whether a job with this model choice uses a global model."""
    return any(name == AUTO or resolve_candidate(name).family == LIGHTGBM
               for name in families)


def cutoffs_of(history: pd.DataFrame, *, holdout: HoldoutSplit,
               backtest: BacktestPlan) -> set[pd.Timestamp]:
    """The training cut-offs one product's training will fit at (module docstring)."""
    found: set[pd.Timestamp] = set()

    def add(rows: pd.DataFrame) -> None:
        open_rows = rows.loc[~rows[CLOSED].astype(bool)]
        if not open_rows.empty:
            found.add(pd.Timestamp(open_rows[DATE].max()).normalize())

    if history.empty:
        return found
    add(history)
    train, _ = holdout.split(history)
    add(train)
    for window in backtest.windows(train):
        add(window.train)
    return found


def train_tenant_models(histories: Mapping[str, pd.DataFrame], regressors: Sequence[str],
                        *, cutoffs_for: Iterable[str] | None = None,
                        holdout: HoldoutSplit | None = None,
                        backtest: BacktestPlan | None = None, workers: int = 1,
                        trainer: BoosterTrainer | None = None,
                        max_rows: int | None = None) -> GlobalFits:
    """The tenant's global boosters, trained on all `histories`, for every cut-off that
    the products `cutoffs_for` (default: all of them; a job's products) need; by
    `trainer` when given (another engine, `lightgbm_global.BoosterTrainer`); on at most
    `max_rows` rows (a uniform share of every product's days, `lightgbm_global._matrix`)."""
    holdout, backtest = holdout or HoldoutSplit(), backtest or BacktestPlan()
    wanted = set(histories) if cutoffs_for is None else set(cutoffs_for)
    cutoffs: set[pd.Timestamp] = set()
    for product, history in histories.items():
        if product not in wanted:
            continue
        cutoffs |= cutoffs_of(history.sort_values(DATE).reset_index(drop=True),
                              holdout=holdout, backtest=backtest)
    fits = train_global(histories, regressors, sorted(cutoffs), workers=workers,
                        trainer=trainer, max_rows=max_rows)
    return weigh_members(fits, {p: h for p, h in histories.items() if p in wanted},
                         holdout=holdout, backtest=backtest)


def weigh_members(fits: GlobalFits, histories: Mapping[str, pd.DataFrame], *,
                  holdout: HoldoutSplit, backtest: BacktestPlan) -> GlobalFits:
    """`fits` with the horizon member's weight chosen on the products' backtest windows
    (module docstring). Without a horizon member, or without any window: unchanged
    (weight 0, the level member alone)."""
    if fits.horizon is None:
        return fits
    windows: dict[str, list[tuple[pd.Timestamp, pd.DatetimeIndex]]] = {}
    chosen = _largest(histories, MAX_WEIGHING_PRODUCTS)
    for product, history in chosen.items():
        train, _ = holdout.split(history.sort_values(DATE).reset_index(drop=True))
        for window in backtest.windows(train):
            before = window.train.loc[~window.train[CLOSED].astype(bool)]
            test = window.test.loc[~window.test[CLOSED].astype(bool)]
            if not before.empty and not test.empty:
                windows.setdefault(product, []).append(
                    (pd.Timestamp(before[DATE].max()).normalize(),
                     pd.DatetimeIndex(test[DATE]).normalize()))
    y, level, horizon = member_backtests(fits, chosen, windows)
    if not len(y):
        return fits
    total = float(np.abs(y).sum())
    if total == 0:
        return fits
    evidence = {f"{w:g}": float(np.abs(y - ((1 - w) * level + w * horizon)).sum()) / total
                for w in HORIZON_WEIGHTS}
    best = min(HORIZON_WEIGHTS, key=lambda w: (round(evidence[f"{w:g}"], 6), w))
    return fits.with_horizon_weight(best, evidence)


def _largest(histories: Mapping[str, pd.DataFrame], n: int) -> dict[str, pd.DataFrame]:
    if len(histories) <= n:
        return dict(histories)
    volume = {p: float(h[Y].sum()) for p, h in histories.items()}
    return {p: histories[p] for p in sorted(histories, key=lambda p: -volume[p])[:n]}
