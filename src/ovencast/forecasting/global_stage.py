"""The tenant-level stage of a training job: the global models (today: LightGBM, see
`families.lightgbm_global`) are trained once for all of a tenant's products, before the
per-product tasks, at every training cut-off those tasks will ask for.

A product's cut-offs are the last open day of each training part it fits on: each
backtest window's (`selection.BacktestPlan.windows` of its history minus the holdout),
the holdout's (history minus holdout) and the final fit's (the whole history). Nothing
after a cut-off is used by the booster of that cut-off, so the holdout stays unseen by
selection exactly as for the per-product families. The stage trains the cut-offs most
products share; one of a product ending on a day of its own adopts the latest trained
booster at most `ADOPT_WITHIN_DAYS` before it when there is one (`plan_cutoffs`): a
chain's products ending on many different days (seasonal, discontinued) would otherwise
add up to nine boosters each. docs/decisions/024-shared-cutoffs.md.

The stage also weighs the global model's two members (`lightgbm_global`): on the
backtest windows of the tenant's products, pooled (one weight per tenant: a product's
own 7 windows are too few to tell two close models apart), the weight of the horizon
member among `HORIZON_WEIGHTS` with the lowest pooled WAPE; ties go to the smaller weight.
docs/decisions/009-global-lightgbm-members.md.

For a large tenant the stage also weighs the blend partner (`selection`'s yearly-seasonal
family) once for all its regular products (`weigh_partner`): on the partner windows of
its largest regular products, pooled, by the rule each product applies to its own
backtest (`selection.partner_weight`). Each product then fits the partner for its holdout
and final model only, instead of backtesting it too: docs/decisions/016-tenant-blend-weight.md.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pandas as pd

from ovencast.forecasting.families.base import FitContext
from ovencast.forecasting.families.global_fits import LIGHTGBM, GlobalFits, PartnerWeight
from ovencast.forecasting.families.lightgbm_global import (
    BoosterTrainer,
    member_backtests,
    train_global,
)
from ovencast.forecasting.frame import CLOSED, DATE, YHAT, Y
from ovencast.forecasting.holdout import HoldoutSplit
from ovencast.forecasting.selection import (
    AUTO,
    WINDOW,
    BacktestPlan,
    Candidate,
    backtest_family,
    partner_weight,
    partner_windows,
    resolve_candidate,
)

HORIZON_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
# Products whose backtests weigh the members: the largest by volume (the pooled WAPE is
# dominated by them anyway), so that the cost stays flat for a chain's thousands.
MAX_WEIGHING_PRODUCTS = 200
# Products whose partner windows weigh a large tenant's blend partner (`weigh_partner`):
# 3 partner fits each, in the stage, before any product starts; one weight needs no more
# than their 4,000-odd product-days.
MAX_PARTNER_PRODUCTS = 50
# A needed cut-off the stage trains no booster at adopts the latest trained one at most
# this many days earlier (one backtest window): products whose histories end on other
# days (a seasonal product, a discontinued one, data a few days late) share the boosters
# of the others instead of adding theirs (`plan_cutoffs`; 14 days trained 3 times as
# many boosters for a chain with ragged ends, for the same accuracy:
# docs/decisions/024-shared-cutoffs.md).
ADOPT_WITHIN_DAYS = 28


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


def final_cutoffs(histories: Mapping[str, pd.DataFrame]) -> set[str]:
    """The cut-offs (ISO dates) of the products' final fits, which their stored models
    adopt: each product's last open day."""
    found: set[str] = set()
    for history in histories.values():
        open_days = history.loc[~history[CLOSED].astype(bool), DATE]
        if not open_days.empty:
            found.add(pd.Timestamp(open_days.max()).date().isoformat())
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
    needed = [cutoffs_of(history.sort_values(DATE).reset_index(drop=True), holdout=holdout,
                         backtest=backtest)
              for product, history in histories.items() if product in wanted]
    trained, aliases = plan_cutoffs(needed)
    fits = train_global(histories, regressors, trained, workers=workers, trainer=trainer,
                        max_rows=max_rows)
    fits = replace(fits, aliases={cutoff: to for cutoff, to in aliases.items()
                                  if to in fits.boosters})
    return weigh_members(fits, {p: h for p, h in histories.items() if p in wanted},
                         holdout=holdout, backtest=backtest)


def plan_cutoffs(needed: Iterable[set[pd.Timestamp]]
                 ) -> tuple[list[pd.Timestamp], dict[str, str]]:
    """The cut-offs to train boosters at, given each product's needed ones, and the
    needed cut-offs left out, each with the trained one it adopts (ISO dates).

    Taken in order of how many products need them (then oldest first), a cut-off is
    trained unless it can adopt one already trained: the latest at most
    `ADOPT_WITHIN_DAYS` before it (never after: a booster sees nothing after the cut-off
    of the window it forecasts) that no product needing it needs too (a product's own
    cut-offs never collapse onto one booster: its final model keeps the freshest). So
    the cut-offs most products share are trained exactly, a product ending on a day of
    its own adopts them, and the rest are covered oldest first, as the greedy interval
    cover does: the boosters grow with the calendar's span, not with the number of
    distinct product ends."""
    needers: dict[pd.Timestamp, set[int]] = {}
    for product, cutoffs in enumerate(needed):
        for cutoff in cutoffs:
            needers.setdefault(cutoff, set()).add(product)
    trained: list[pd.Timestamp] = []  # kept sorted
    reach = pd.Timedelta(days=ADOPT_WITHIN_DAYS)

    def adoptable(cutoff: pd.Timestamp) -> pd.Timestamp | None:
        at = bisect.bisect_right(trained, cutoff)
        while at and cutoff - trained[at - 1] <= reach:
            if not needers[trained[at - 1]] & needers[cutoff]:
                return trained[at - 1]
            at -= 1
        return None

    for cutoff in sorted(needers, key=lambda c: (-len(needers[c]), c)):
        if adoptable(cutoff) is None:
            bisect.insort(trained, cutoff)
    # Each left-out cut-off adopts the latest it can, which may have been trained after
    # it was passed over.
    chosen = set(trained)
    return trained, {cutoff.date().isoformat(): found.date().isoformat()
                     for cutoff in needers if cutoff not in chosen
                     and (found := adoptable(cutoff)) is not None}


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


def weigh_partner(fits: GlobalFits, histories: Mapping[str, pd.DataFrame], *,
                  preferred: Candidate, partner: Candidate, holdout: HoldoutSplit,
                  backtest: BacktestPlan, workers: int = 1) -> GlobalFits:
    """`fits` with the blend partner's tenant-wide weight (module docstring): `preferred`
    (the global model, adopting `fits`) and `partner` backtested on the partner windows
    (`selection.partner_windows`) of the `MAX_PARTNER_PRODUCTS` largest of `histories`
    (the tenant's regular products), `workers` products at a time; their WAPEs pooled
    over every product's open days give the weight (`selection.partner_weight`). A
    product whose partner fails, or whose two backtests do not cover the same days, is
    left out of the evidence (a product weighing its own partner would give it weight 0
    or refuse the blend), so that one odd product never fails the tenant stage; without
    evidence, `fits` unchanged."""
    chosen = _largest(histories, MAX_PARTNER_PRODUCTS)

    def evidence(item: tuple[str, pd.DataFrame]) -> tuple[np.ndarray, ...] | None:
        product, history = item
        train, _ = holdout.split(history.sort_values(DATE).reset_index(drop=True))
        windows = backtest.windows(train)
        if not windows:
            return None
        only = partner_windows(windows)
        context = FitContext(product=product, global_fits=fits)
        own = backtest_family(train, preferred, backtest, windows=windows, context=context,
                              only=only).predictions
        is_open = ~own[CLOSED].to_numpy(dtype=bool)
        try:
            other = backtest_family(train, partner, backtest, windows=windows,
                                    context=context, only=only).predictions
        except Exception:  # a failing fit: left out (docstring)
            return None
        if not (np.array_equal(other[DATE].to_numpy(), own[DATE].to_numpy())
                and np.array_equal(other[WINDOW].to_numpy(), own[WINDOW].to_numpy())):
            return None  # not comparable day by day: left out, never the whole stage
        return tuple(frame[column].to_numpy(dtype=float)[is_open]
                     for frame, column in ((own, Y), (own, YHAT), (other, YHAT)))

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        parts = [found for found in pool.map(evidence, chosen.items()) if found is not None]
    if not parts:
        return fits
    y, own_yhat, other_yhat = (np.concatenate(column) for column in zip(*parts, strict=True))
    total = float(np.abs(y).sum())
    if total == 0:
        return fits
    own_wape = float(np.abs(y - own_yhat).sum()) / total
    partner_wape = float(np.abs(y - other_yhat).sum()) / total
    return fits.with_partner(PartnerWeight(
        partner=partner.name, weight=partner_weight(partner_wape, own_wape),
        products=len(parts), partner_wape=round(partner_wape, 6),
        own_wape=round(own_wape, 6)))


def _largest(histories: Mapping[str, pd.DataFrame], n: int) -> dict[str, pd.DataFrame]:
    if len(histories) <= n:
        return dict(histories)
    volume = {p: float(h[Y].sum()) for p, h in histories.items()}
    return {p: histories[p] for p in sorted(histories, key=lambda p: -volume[p])[:n]}
