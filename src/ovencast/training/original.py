"""The original system's model, `--models prophet`: Prophet tuned by Optuna as the
original system's report describes it (docs/decisions/007-faithful-original.md)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ovencast.errors import ModelFitFailed
from ovencast.forecasting.classes import SearchClassRule
from ovencast.forecasting.evaluation import Evaluation, evaluate_family
from ovencast.forecasting.families.prophet import ProphetModel
from ovencast.forecasting.features import ORIGINAL_PREPARATION, AlignmentReport
from ovencast.forecasting.frame import ZERO_SALES, Y, closed_days_as_zero_sales
from ovencast.forecasting.quantiles import holdout_calibration
from ovencast.forecasting.search import SearchSpec, search_prophet
from ovencast.training.plan import FitPlan, FitResult, PriorFit, Progress, json_number

# A retrain stops after the cached parameters' trial when its validation MAPE is within
# this relative margin of the previous best: the data changed little.
RETRAIN_STOP_WITHIN = 0.05
# A retrain searches a fraction of the class's trial budget: it starts from the cached
# best parameters (trial 0) and a warm-started optimiser, so the full budget would mostly
# re-explore what the first training explored.
RETRAIN_TRIAL_FRACTION = 0.2
# Per-trial hard limit: never more than this, and small enough that the whole budget fits
# in the product's time limit.
MAX_TRIAL_TIMEOUT_S = 30.0


def is_original(families: tuple[str, ...]) -> bool:
    """Whether a job's model choice is the original approach (`--models prophet`)."""
    return families == ("prophet",)


def original_regressors(alignment: AlignmentReport) -> tuple[str, ...]:
    """The regressors the original approach fits: every column of the tenant's files,
    nothing computed (the original system had no holiday calendar; a `public_holiday`
    the tenant frame computed from the country, where no file has one, is left out)."""
    computed = set(alignment.computed_regressors)
    return tuple(r for r in alignment.used_regressors if r not in computed)


def fit_original(history: pd.DataFrame, plan: FitPlan, prior: PriorFit | None,
                       sink: Progress, details: dict[str, Any]) -> FitResult:
    """The original system's model, as its report describes it
    (docs/decisions/007-faithful-original.md): closed days fitted as days without sales,
    every regressor (its gaps filled as the original did: decision 033) and no holiday
    calendar object, the trial budget of its own class
    rule, Optuna on the last 28 days of all the training data, the best parameters
    refitted on all of it. Its holdout metrics are therefore measured on days the search
    tuned on (`details["selection"]["basis"] == "search_window"`)."""
    history = closed_days_as_zero_sales(history)
    try:
        evaluation, search = _fit_prophet(history, plan, prior, sink)
    except Exception as exc:
        reason = f"prophet: {type(exc).__name__}: {exc}"
        sink.family_failed("prophet", reason)
        raise ModelFitFailed(f"every model family failed: {reason}") from None
    leaderboard: list[dict[str, Any]] = [{"family": "prophet",
                                          "wape": json_number(evaluation.metrics.wape)}]
    details["search"] = search
    details["selection"] = {"basis": "search_window", "chosen": "prophet"}
    details["leaderboard"] = leaderboard
    details["quantiles"] = holdout_calibration(evaluation)
    details["closed_days"] = ZERO_SALES
    # Its history's regressors were prepared as the original system did (the job's
    # tenant frame, `training/data.py`): its forecasts' are too (`forecasts/service.py`).
    details["regressor_preparation"] = ORIGINAL_PREPARATION
    return FitResult(best=evaluation, leaderboard=leaderboard, details=details)


def _fit_prophet(history: pd.DataFrame, plan: FitPlan, prior: PriorFit | None,
                 sink: Progress) -> tuple[Evaluation, dict[str, Any]]:
    regressors = plan.regressors
    budget = SearchClassRule().trials(history[Y].to_numpy(dtype=float))
    n_trials = max(2, math.ceil(budget * RETRAIN_TRIAL_FRACTION)) if prior else budget
    spec = SearchSpec(
        n_trials=n_trials, seed=plan.seed, validation_days=plan.holdout.days,
        trial_timeout_s=min(MAX_TRIAL_TIMEOUT_S, plan.time_limit_s / (n_trials + 3)),
        previous_best_params=dict(prior.params) if prior else None,
        previous_best_mape=prior.best_mape if prior else None,
        stop_if_within=RETRAIN_STOP_WITHIN if prior and prior.best_mape is not None else None)
    warm = prior.model if prior and isinstance(prior.model, ProphetModel) else None
    try:
        result = search_prophet(history.reset_index(drop=True), spec, regressors=regressors,
                                on_trial=sink.trial, warm_start_from=warm)
    except ValueError as exc:
        # No open day at all in the search's window: Prophet's defaults rather than no
        # model.
        evaluation = evaluate_family(history, family="prophet", regressors=regressors,
                                     holdout=plan.holdout)
        return evaluation, {"n_trials": 0, "trial_budget": budget, "skipped": str(exc),
                            "best_params": {}, "warm_started": prior is not None}
    evaluation = evaluate_family(history, family="prophet", regressors=regressors,
                                 params=result.best_params, holdout=plan.holdout)
    summary = {
        "n_trials": result.n_trials, "trial_budget": budget, "n_failed": result.n_failed,
        "objective": result.objective, "best_params": result.best_params,
        "best_mape": json_number(result.best_mape), "best_mae": json_number(result.best_mae),
        "best_wape": json_number(result.best_wape), "stopped_early": result.stopped_early,
        "warm_started": prior is not None,
        # The cached parameters enqueued as trial 0 (the hyper-parameter cache at work).
        "enqueued_params": dict(spec.previous_best_params or {}) or None,
    }
    return evaluation, summary
