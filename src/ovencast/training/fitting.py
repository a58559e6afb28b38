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
  quantiles. Prophet inside a selection uses its default parameters (no Optuna), its
  seasonality multiplicative (`prophet_holidays`, decision 027).
- Prophet alone (`--models prophet`): the original system's model, Optuna as its report
  describes it (training/original.py).
- too short for a backtest window (fewer than about 70 days): the first candidate that
  fits is scored on the holdout, no selection (`details["selection"]["basis"] == "none"`).

Quantiles (`forecasting.quantiles`): calibrated on the backtest residuals of the chosen
model when there is a backtest (the holdout then checks the calibration:
`details["quantiles"]["holdout_coverage"]`, the share of holdout days inside P10..P90), on
the holdout residuals otherwise (Prophet alone, too-short histories: no extra fits). A
product sold in whole units gets a count's median as P50 and point forecast (`counts`,
decision 030); the original approach keeps Prophet's mean, as its report describes it.

The fit's inputs and outputs (`FitPlan`, `PriorFit`, `FitResult`) are in training/plan.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from ovencast.errors import ModelFitFailed
from ovencast.events.progress import EventSink
from ovencast.forecasting.counts import count_median, in_whole_units
from ovencast.forecasting.evaluation import Evaluation, evaluate_family
from ovencast.forecasting.features import PUBLIC_HOLIDAY
from ovencast.forecasting.frame import DATE, Y
from ovencast.forecasting.metrics import wape
from ovencast.forecasting.quantiles import (
    calibrate,
    checked_on_holdout,
    holdout_calibration,
)
from ovencast.forecasting.season import (
    holiday_closures_of,
    off_season_of,
    off_weekdays_of,
    yearly_closures_of,
)
from ovencast.forecasting.selection import (
    AUTO,
    Candidate,
    NoBacktestWindow,
    NoCandidate,
    resolve_candidate,
    select,
)
from ovencast.training.original import fit_original, is_original
from ovencast.training.plan import FitPlan, FitResult, PriorFit, Progress, json_number


def fit_product(history: pd.DataFrame, plan: FitPlan, *, prior: PriorFit | None = None,
                emit: EventSink | None = None) -> FitResult:
    """Choose, score and refit one product's model (see the module docstring). Raises
    ModelFitFailed with every reason when no candidate can be fitted."""
    result = _fit_product(history, plan, prior, Progress(plan, emit))
    # The days the holdout metrics score: 28, fewer for a history of 30 to 41 days
    # (`HoldoutSplit.fitting`).
    result.details["holdout"] = {"start": result.best.holdout_start.isoformat(),
                                 "end": result.best.holdout_end.isoformat(),
                                 "days": (result.best.holdout_end
                                          - result.best.holdout_start).days + 1}
    season = off_season_of(history)
    if season is not None:  # forecasts are 0 on these days of the year (forecasting/season)
        result.details["off_season"] = season.to_dict()
    closures = yearly_closures_of(history, season)
    if closures is not None:  # on these dates
        result.details["yearly_closures"] = closures.to_dict()
    holidays_shut = holiday_closures_of(history, plan.country, plan.subdivision, closures,
                                        season)
    if holidays_shut is not None:  # on these public holidays
        result.details["holiday_closures"] = holidays_shut.to_dict()
    days_off = off_weekdays_of(history)
    if days_off is not None:  # and on these days of the week
        result.details["off_weekdays"] = days_off.to_dict()
    return result


def _fit_product(history: pd.DataFrame, plan: FitPlan, prior: PriorFit | None,
                 sink: Progress) -> FitResult:
    history = history.sort_values(DATE, kind="stable").reset_index(drop=True)
    details: dict[str, Any] = {"product_class": plan.product_class,
                               "holdout_days": plan.holdout.days}
    if is_original(plan.families):
        return fit_original(history, plan, prior, sink, details)
    candidates = plan_candidates(plan)
    tenant_blend = _tenant_blend(plan, candidates)
    if tenant_blend is not None:  # weighed once for the tenant: no backtest of its own
        candidates = tuple(c for c in candidates if c.name != tenant_blend[0].name)
    train, _ = plan.holdout.split(history)
    counts = in_whole_units(history[Y])  # served and scored as a count's median (030, 031)
    try:
        selection = select(train, candidates, plan.backtest, prefer=_preferred(plan),
                           blend=_blend(plan), tenant_blend=tenant_blend,
                           context=plan.context, on_backtest=sink.backtest)
    except NoBacktestWindow as exc:
        return _fit_without_backtest(history, plan, candidates, str(exc), sink, details,
                                     counts=counts)
    except NoCandidate as exc:
        for name, error in exc.errors.items():
            sink.family_failed(name, error)
        raise ModelFitFailed(f"every model family failed: {exc}") from None
    for name, error in selection.errors.items():
        sink.family_failed(name, error)
    evaluation, fallback_errors = _evaluate_first(history, plan, selection.alternatives(),
                                                  counts=counts)
    calibration = calibrate(selection.actual, selection.predicted, source="backtest",
                            counts=counts)
    leaderboard = selection.leaderboard()
    details["selection"] = selection.to_dict()
    if counts:  # the backtest WAPE of what is served, for realised accuracy (decision 031)
        details["selection"]["served_wape"] = json_number(
            wape(selection.actual, count_median(selection.predicted)))
    if tenant_blend is not None and plan.context.global_fits is not None \
            and plan.context.global_fits.partner is not None:
        details["selection"]["tenant_blend"] = plan.context.global_fits.partner.to_dict()
    if fallback_errors:  # the chosen spec failed on the full history
        details["selection"]["fitted_instead"] = {
            "family": evaluation.family,
            "errors": [f"{name}: {error}" for name, error in fallback_errors.items()]}
    details["leaderboard"] = leaderboard
    details["quantiles"] = checked_on_holdout(calibration, evaluation)
    return FitResult(best=evaluation, leaderboard=leaderboard, details=details)


def _preferred(plan: FitPlan) -> str | None:
    """`auto` keeps the tenant's global model for every product, intermittent ones
    included, unless another candidate beats it clearly (selection.GLOBAL_PREFERENCE); a
    list of named families is decided by the lowest backtest WAPE alone."""
    return plan.candidates.preferred_for(plan.product_class) if plan.families == (AUTO,) \
        else None


def _blend(plan: FitPlan) -> str | None:
    """`auto` blends a yearly-seasonal family into the preferred global model for a
    regular product (selection.CandidatePolicy.blend_regular)."""
    return plan.candidates.blend_for(plan.product_class) if plan.families == (AUTO,) \
        else None


def _tenant_blend(plan: FitPlan, candidates: Sequence[Candidate]
                  ) -> tuple[Candidate, float] | None:
    """The blend partner (among `candidates`) and the weight the tenant stage chose for
    every regular product of a large tenant (`global_stage.weigh_partner`); None when
    each product weighs its partner on its own backtest."""
    name = _blend(plan)
    fits = plan.context.global_fits
    if name is None or fits is None or fits.partner is None or fits.partner.partner != name:
        return None
    partner = next((c for c in candidates if c.name == name), None)
    return None if partner is None else (partner, fits.partner.weight)


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


def _evaluate_first(history: pd.DataFrame, plan: FitPlan, specs: Iterable[Candidate], *,
                    counts: bool) -> tuple[Evaluation, dict[str, str]]:
    """Score the first spec that fits on the holdout, as it is served; the errors of those
    that did not (candidate name -> "Type: message")."""
    errors: dict[str, str] = {}
    for spec in specs:
        try:
            return evaluate_family(history, family=spec.family, regressors=spec.regressors,
                                   params=spec.params, holdout=plan.holdout,
                                   context=plan.context, counts=counts), errors
        except Exception as exc:
            errors[spec.name] = f"{type(exc).__name__}: {exc}"
    raise ModelFitFailed("every model family failed: " + "; ".join(
        f"{name}: {error}" for name, error in errors.items()))


def _fit_without_backtest(history: pd.DataFrame, plan: FitPlan,
                          candidates: Sequence[Candidate], reason: str, sink: Progress,
                          details: dict[str, Any], *, counts: bool) -> FitResult:
    evaluation, errors = _evaluate_first(history, plan, candidates, counts=counts)
    for name, error in errors.items():
        sink.family_failed(name, error)
    leaderboard: list[dict[str, Any]] = [{"family": evaluation.family,
                                          "wape": json_number(evaluation.metrics.wape)}]
    leaderboard += [{"family": name, "error": f"{name}: {error}"}
                    for name, error in errors.items()]
    details["selection"] = {"basis": "none", "reason": reason, "chosen": evaluation.family}
    details["leaderboard"] = leaderboard
    details["quantiles"] = holdout_calibration(evaluation, counts=counts)
    return FitResult(best=evaluation, leaderboard=leaderboard, details=details)



