"""Which model a product gets, and how: no database here, the worker hands in the history
and what it knows of the previous model (`PriorFit`) and gets back the evaluation of the
chosen model and the details to store with the version.

Three paths, one honest holdout (the last `plan.holdout.days` days), never seen before
the chosen model is scored on it:

- selection (`auto`, the default, or several families, or one family other than
  Prophet): `forecasting.selection.select` backtests the candidates on the TRAINING part
  only (history minus holdout) and chooses one family or a weighted combination; the
  choice is scored on the holdout with the seasonal naive baseline
  (`evaluation.evaluate_family`) and refitted on the full history. A single forced
  family is "selected" among one candidate: the backtest then only calibrates its
  quantiles. Prophet inside a selection uses its default parameters (no Optuna).
- Prophet alone (`--models prophet`): Optuna on the training part only (the search's
  validation window is the 28 days before the holdout), as before.
- too short for a backtest window (fewer than about 70 days): the first candidate that
  fits is scored on the holdout, no selection (`details["selection"]["basis"] == "none"`).

Quantiles (`forecasting.quantiles`): calibrated on the backtest residuals of the chosen
model when there is a backtest (the holdout then checks the calibration:
`details["quantiles"]["holdout_coverage"]`, the share of holdout days inside P10..P90), on
the holdout residuals otherwise (Prophet alone, too-short histories: no extra fits).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ovencast.errors import ModelFitFailed
from ovencast.events.progress import Backtest, EventSink, FamilyFailed, Trial
from ovencast.forecasting.classes import trials_for
from ovencast.forecasting.evaluation import Evaluation, evaluate_family
from ovencast.forecasting.families import ForecastModel
from ovencast.forecasting.families.base import NO_CONTEXT, FitContext
from ovencast.forecasting.families.prophet import ProphetModel
from ovencast.forecasting.features import PUBLIC_HOLIDAY
from ovencast.forecasting.frame import DATE
from ovencast.forecasting.holdout import HoldoutSplit
from ovencast.forecasting.quantiles import calibrate, checked_on_holdout, holdout_calibration
from ovencast.forecasting.search import SearchSpec, search_prophet
from ovencast.forecasting.season import off_season_of
from ovencast.forecasting.selection import (
    AUTO,
    BacktestPlan,
    Candidate,
    CandidatePolicy,
    NoBacktestWindow,
    NoCandidate,
    resolve_candidate,
    select,
)

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


@dataclass(frozen=True)
class PriorFit:
    """The product's previous Prophet version: cached best parameters (the
    hyper-parameter cache), its validation MAPE, and the fitted model for warm starts."""

    params: Mapping[str, Any]
    best_mape: float | None
    model: ForecastModel | None


@dataclass(frozen=True)
class FitPlan:
    families: tuple[str, ...]  # ("auto",), ("prophet",) or candidate names
    product_class: str
    country: str | None
    subdivision: str | None
    regressors: tuple[str, ...]
    time_limit_s: float
    holdout: HoldoutSplit = field(default_factory=HoldoutSplit)
    backtest: BacktestPlan = field(default_factory=BacktestPlan)
    candidates: CandidatePolicy = field(default_factory=CandidatePolicy)
    seed: int = 0
    # The product's name and the tenant stage's global boosters
    # (`forecasting.global_stage`), passed to every fit: the "lightgbm" candidate adopts
    # them instead of training alone.
    context: FitContext = NO_CONTEXT
    # The job the fit belongs to, for its progress events.
    job_id: int = 0


@dataclass(frozen=True)
class FitResult:
    best: Evaluation
    leaderboard: list[dict[str, Any]]
    details: dict[str, Any]


def fit_product(history: pd.DataFrame, plan: FitPlan, *, prior: PriorFit | None = None,
                emit: EventSink | None = None) -> FitResult:
    """Choose, score and refit one product's model (see the module docstring). Raises
    ModelFitFailed with every reason when no candidate can be fitted."""
    result = _fit_product(history, plan, prior, _Progress(plan, emit))
    season = off_season_of(history)
    if season is not None:  # forecasts are 0 on these days of the year (forecasting/season)
        result.details["off_season"] = season.to_dict()
    return result


@dataclass(frozen=True)
class _Progress:
    """The fit's progress events, tagged with its job and product."""

    plan: FitPlan
    sink: EventSink | None

    def backtest(self, family: str, n: int, total: int) -> None:
        if self.sink is not None:
            self.sink(Backtest(job_id=self.plan.job_id, product=self.plan.context.product,
                               family=family, n=n, total=total))

    def trial(self, n: int, total: int, mape: float | None) -> None:
        if self.sink is not None:
            self.sink(Trial(job_id=self.plan.job_id, product=self.plan.context.product,
                            n=n, total=total, mape=_json(mape)))

    def family_failed(self, family: str, reason: str) -> None:
        if self.sink is not None:
            self.sink(FamilyFailed(job_id=self.plan.job_id,
                                   product=self.plan.context.product, family=family,
                                   reason=reason))


def _fit_product(history: pd.DataFrame, plan: FitPlan, prior: PriorFit | None,
                 sink: _Progress) -> FitResult:
    history = history.sort_values(DATE, kind="stable").reset_index(drop=True)
    details: dict[str, Any] = {"product_class": plan.product_class,
                               "holdout_days": plan.holdout.days}
    if plan.families == ("prophet",):
        return _fit_prophet_alone(history, plan, prior, sink, details)
    candidates = plan_candidates(plan)
    train, _ = plan.holdout.split(history)
    try:
        selection = select(train, candidates, plan.backtest, prefer=_preferred(plan),
                           context=plan.context, on_backtest=sink.backtest)
    except NoBacktestWindow as exc:
        return _fit_without_backtest(history, plan, candidates, str(exc), sink, details)
    except NoCandidate as exc:
        for name, error in exc.errors.items():
            sink.family_failed(name, error)
        raise ModelFitFailed(f"every model family failed: {exc}") from None
    for name, error in selection.errors.items():
        sink.family_failed(name, error)
    evaluation, fallback_errors = _evaluate_first(history, plan, selection.alternatives())
    calibration = calibrate(selection.actual, selection.predicted, source="backtest")
    leaderboard = selection.leaderboard()
    details["selection"] = selection.to_dict()
    if fallback_errors:  # the chosen spec failed on the full history
        details["selection"]["fitted_instead"] = {
            "family": evaluation.family,
            "errors": [f"{name}: {error}" for name, error in fallback_errors.items()]}
    details["leaderboard"] = leaderboard
    details["quantiles"] = checked_on_holdout(calibration, evaluation)
    return FitResult(best=evaluation, leaderboard=leaderboard, details=details)


def _preferred(plan: FitPlan) -> str | None:
    """`auto` keeps the tenant's global model for a regular product unless another
    candidate beats it clearly (selection.GLOBAL_PREFERENCE); a list of named families is
    decided by the lowest backtest WAPE alone."""
    return plan.candidates.preferred_for(plan.product_class) if plan.families == (AUTO,) \
        else None


def plan_candidates(plan: FitPlan) -> tuple[Candidate, ...]:
    """The candidates of a plan, each with the regressors and params of this tenant:
    `auto` -> the product class's candidate set, else the named families in order."""
    if plan.families == (AUTO,):
        candidates = plan.candidates.for_class(plan.product_class)
    else:
        candidates = tuple(resolve_candidate(name) for name in plan.families)
    return tuple(_in_context(c, plan) for c in candidates)


def _in_context(candidate: Candidate, plan: FitPlan) -> Candidate:
    if candidate.family != "prophet":
        return candidate.with_context(regressors=plan.regressors)
    return candidate.with_context(regressors=_prophet_regressors(plan),
                                  params={"country": plan.country,
                                          "subdivision": plan.subdivision})


def _prophet_regressors(plan: FitPlan) -> tuple[str, ...]:
    # Prophet gets the holidays of the country natively; the 0/1 column would count them
    # twice.
    return tuple(r for r in plan.regressors if not (plan.country and r == PUBLIC_HOLIDAY))


def _evaluate_first(history: pd.DataFrame, plan: FitPlan, specs: Iterable[Candidate]
                    ) -> tuple[Evaluation, dict[str, str]]:
    """Score the first spec that fits on the holdout; the errors of those that did not
    (candidate name -> "Type: message")."""
    errors: dict[str, str] = {}
    for spec in specs:
        try:
            return evaluate_family(history, family=spec.family, regressors=spec.regressors,
                                   params=spec.params, holdout=plan.holdout,
                                   context=plan.context), errors
        except Exception as exc:
            errors[spec.name] = f"{type(exc).__name__}: {exc}"
    raise ModelFitFailed("every model family failed: " + "; ".join(
        f"{name}: {error}" for name, error in errors.items()))


def _fit_without_backtest(history: pd.DataFrame, plan: FitPlan,
                          candidates: Sequence[Candidate], reason: str, sink: _Progress,
                          details: dict[str, Any]) -> FitResult:
    evaluation, errors = _evaluate_first(history, plan, candidates)
    for name, error in errors.items():
        sink.family_failed(name, error)
    leaderboard: list[dict[str, Any]] = [{"family": evaluation.family,
                                          "wape": _json(evaluation.metrics.wape)}]
    leaderboard += [{"family": name, "error": f"{name}: {error}"}
                    for name, error in errors.items()]
    details["selection"] = {"basis": "none", "reason": reason, "chosen": evaluation.family}
    details["leaderboard"] = leaderboard
    details["quantiles"] = holdout_calibration(evaluation)
    return FitResult(best=evaluation, leaderboard=leaderboard, details=details)


def _fit_prophet_alone(history: pd.DataFrame, plan: FitPlan, prior: PriorFit | None,
                       sink: _Progress, details: dict[str, Any]) -> FitResult:
    try:
        evaluation, search = _fit_prophet(history, plan, prior, sink)
    except Exception as exc:
        reason = f"prophet: {type(exc).__name__}: {exc}"
        sink.family_failed("prophet", reason)
        raise ModelFitFailed(f"every model family failed: {reason}") from None
    leaderboard: list[dict[str, Any]] = [{"family": "prophet",
                                          "wape": _json(evaluation.metrics.wape)}]
    details["search"] = search
    details["selection"] = {"basis": "holdout", "chosen": "prophet"}
    details["leaderboard"] = leaderboard
    details["quantiles"] = holdout_calibration(evaluation)
    return FitResult(best=evaluation, leaderboard=leaderboard, details=details)


def _fit_prophet(history: pd.DataFrame, plan: FitPlan, prior: PriorFit | None,
                 sink: _Progress) -> tuple[Evaluation, dict[str, Any]]:
    base = {"country": plan.country, "subdivision": plan.subdivision}
    regressors = _prophet_regressors(plan)
    budget = trials_for(plan.product_class)
    n_trials = max(2, math.ceil(budget * RETRAIN_TRIAL_FRACTION)) if prior else budget
    spec = SearchSpec(
        n_trials=n_trials, seed=plan.seed, validation_days=plan.holdout.days,
        trial_timeout_s=min(MAX_TRIAL_TIMEOUT_S, plan.time_limit_s / (n_trials + 3)),
        previous_best_params=dict(prior.params) if prior else None,
        previous_best_mape=prior.best_mape if prior else None,
        stop_if_within=RETRAIN_STOP_WITHIN if prior and prior.best_mape is not None else None)
    train, _ = plan.holdout.split(history)
    warm = prior.model if prior and isinstance(prior.model, ProphetModel) else None
    try:
        result = search_prophet(
            train.reset_index(drop=True), spec, regressors=regressors, base_params=base,
            on_trial=sink.trial, warm_start_from=warm)
    except ValueError as exc:
        # The objective cannot be computed (e.g. no sale at all in the validation window
        # of an intermittent product, where MAPE is undefined): Prophet's defaults rather
        # than no model.
        evaluation = evaluate_family(history, family="prophet", regressors=regressors,
                                     params=base, holdout=plan.holdout)
        return evaluation, {"n_trials": 0, "trial_budget": budget, "skipped": str(exc),
                            "best_params": {}, "warm_started": prior is not None}
    evaluation = evaluate_family(history, family="prophet", regressors=regressors,
                                 params={**base, **result.best_params}, holdout=plan.holdout)
    summary = {
        "n_trials": result.n_trials, "trial_budget": budget, "n_failed": result.n_failed,
        "best_params": result.best_params, "best_mape": _json(result.best_mape),
        "best_wape": _json(result.best_wape), "stopped_early": result.stopped_early,
        "warm_started": prior is not None,
        # The cached parameters enqueued as trial 0 (the hyper-parameter cache at work).
        "enqueued_params": dict(spec.previous_best_params or {}) or None,
    }
    return evaluation, summary


def _json(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
