"""The tenant-level stage of a training job: the global models (today: LightGBM, see
`families.lightgbm_global`) are trained once for all of a tenant's products, before the
per-product tasks, at every training cut-off those tasks will ask for.

A product's cut-offs are the last open day of each training part it fits on: each
backtest window's (`selection.BacktestPlan.windows` of its history minus the holdout),
the holdout's (history minus holdout) and the final fit's (the whole history). Nothing
after a cut-off is used by the booster of that cut-off, so the holdout stays unseen by
selection exactly as for the per-product families.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from ovencast.forecasting.families.global_fits import LIGHTGBM, GlobalFits
from ovencast.forecasting.families.lightgbm_global import train_global
from ovencast.forecasting.frame import CLOSED, DATE
from ovencast.forecasting.holdout import HoldoutSplit
from ovencast.forecasting.selection import AUTO, BacktestPlan, resolve_candidate


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
                        backtest: BacktestPlan | None = None, workers: int = 1
                        ) -> GlobalFits:
    """The tenant's global boosters, trained on all `histories`, for every cut-off that
    the products `cutoffs_for` (default: all of them; a job's products) need."""
    holdout, backtest = holdout or HoldoutSplit(), backtest or BacktestPlan()
    wanted = set(histories) if cutoffs_for is None else set(cutoffs_for)
    cutoffs: set[pd.Timestamp] = set()
    for product, history in histories.items():
        if product not in wanted:
            continue
        cutoffs |= cutoffs_of(history.sort_values(DATE).reset_index(drop=True),
                              holdout=holdout, backtest=backtest)
    return train_global(histories, regressors, sorted(cutoffs), workers=workers)
