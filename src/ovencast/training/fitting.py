"""Which families a product is fitted with, and how: no database here, the worker hands in
the history and what it knows of the previous model (`PriorFit`) and gets back the best
evaluation and the details to store with the version.

Prophet is tuned with Optuna on the training part only (the search's validation window is
the 28 days before the holdout), so the holdout metrics stay honest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ovencast.errors import OvencastError
from ovencast.forecasting.classes import trials_for
from ovencast.forecasting.evaluation import Evaluation, evaluate_family
from ovencast.forecasting.families import ForecastModel
from ovencast.forecasting.families.prophet import ProphetModel
from ovencast.forecasting.features import PUBLIC_HOLIDAY
from ovencast.forecasting.holdout import HoldoutSplit
from ovencast.forecasting.search import SearchSpec, search_prophet

EventSink = Callable[[str, dict[str, Any]], None]

# A retrain stops after the cached parameters' trial when its validation MAPE is within
# this relative margin of the previous best: the data changed little.
RETRAIN_STOP_WITHIN = 0.05
# Per-trial hard limit: never more than this, and small enough that the whole budget fits
# in the product's time limit.
MAX_TRIAL_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PriorFit:
    """The product's previous Prophet version: cached best parameters (the
    hyper-parameter cache), its validation MAPE, and the fitted model for warm starts."""

    params: Mapping[str, Any]
    best_mape: float | None
    model: ForecastModel | None


@dataclass(frozen=True)
class FitPlan:
    families: tuple[str, ...]
    product_class: str
    country: str | None
    subdivision: str | None
    regressors: tuple[str, ...]
    time_limit_s: float
    holdout: HoldoutSplit = field(default_factory=HoldoutSplit)
    seed: int = 0


@dataclass(frozen=True)
class FitResult:
    best: Evaluation
    leaderboard: list[dict[str, Any]]
    details: dict[str, Any]


def fit_product(history: pd.DataFrame, plan: FitPlan, *, prior: PriorFit | None = None,
                emit: EventSink | None = None) -> FitResult:
    """Evaluate every family of the plan on the holdout; the lowest WAPE wins. One
    family failing does not hide the others; all failing raises with every reason."""
    sink = emit or (lambda _event, _fields: None)
    evaluations: list[Evaluation] = []
    details: dict[str, Any] = {"product_class": plan.product_class,
                               "holdout_days": plan.holdout.days}
    errors: list[str] = []
    for family in plan.families:
        try:
            if family == "prophet":
                evaluation, search = _fit_prophet(history, plan, prior, sink)
                details["search"] = search
            else:
                evaluation = evaluate_family(history, family=family,
                                             regressors=plan.regressors, holdout=plan.holdout)
            evaluations.append(evaluation)
        except Exception as exc:
            errors.append(f"{family}: {type(exc).__name__}: {exc}")
            sink("family_failed", {"family": family, "reason": errors[-1]})
    if not evaluations:
        raise OvencastError("every model family failed: " + "; ".join(errors))
    leaderboard: list[dict[str, Any]] = sorted(
        ({"family": e.family, "wape": _json(e.metrics.wape)} for e in evaluations),
        key=lambda row: math.inf if row["wape"] is None else row["wape"])
    leaderboard += [{"family": message.split(":")[0], "error": message} for message in errors]
    details["leaderboard"] = leaderboard
    best = min(evaluations, key=lambda e: math.inf if math.isnan(e.metrics.wape)
               else e.metrics.wape)
    return FitResult(best=best, leaderboard=leaderboard, details=details)


def _fit_prophet(history: pd.DataFrame, plan: FitPlan, prior: PriorFit | None,
                 sink: EventSink) -> tuple[Evaluation, dict[str, Any]]:
    base = {"country": plan.country, "subdivision": plan.subdivision}
    # Prophet gets the holidays of the country natively; the 0/1 column would count them
    # twice.
    regressors = tuple(r for r in plan.regressors if not (plan.country and r == PUBLIC_HOLIDAY))
    n_trials = trials_for(plan.product_class)
    spec = SearchSpec(
        n_trials=n_trials, seed=plan.seed, validation_days=plan.holdout.days,
        trial_timeout_s=min(MAX_TRIAL_TIMEOUT_S, plan.time_limit_s / (n_trials + 3)),
        previous_best_params=dict(prior.params) if prior else None,
        previous_best_mape=prior.best_mape if prior else None,
        stop_if_within=RETRAIN_STOP_WITHIN if prior and prior.best_mape is not None else None)
    train, _ = plan.holdout.split(history)
    warm = prior.model if prior and isinstance(prior.model, ProphetModel) else None
    result = search_prophet(
        train.reset_index(drop=True), spec, regressors=regressors, base_params=base,
        on_trial=lambda n, total, value: sink("trial", {"n": n, "total": total,
                                                        "mape": _json(value)}),
        warm_start_from=warm)
    evaluation = evaluate_family(history, family="prophet", regressors=regressors,
                                 params={**base, **result.best_params}, holdout=plan.holdout)
    summary = {
        "n_trials": result.n_trials, "trial_budget": n_trials, "n_failed": result.n_failed,
        "best_params": result.best_params, "best_mape": _json(result.best_mape),
        "best_wape": _json(result.best_wape), "stopped_early": result.stopped_early,
        "warm_started": prior is not None,
        # The cached parameters enqueued as trial 0 (the hyper-parameter cache at work).
        "enqueued_params": dict(spec.previous_best_params or {}) or None,
    }
    return evaluation, summary


def _json(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
