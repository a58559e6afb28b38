"""Holdout evaluation of one model family on one product, against the seasonal naive
baseline, followed by the refit on the full history that becomes the stored model."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from ovencast.forecasting.counts import count_median
from ovencast.forecasting.families.base import NO_CONTEXT, FitContext, ForecastModel
from ovencast.forecasting.families.registry import model_class
from ovencast.forecasting.families.seasonal_naive import SeasonalNaive
from ovencast.forecasting.frame import CLOSED, DATE, YHAT, Y
from ovencast.forecasting.holdout import HoldoutSplit
from ovencast.forecasting.metrics import Metrics, compute_metrics

MIN_TRAIN_OPEN_DAYS = 14
"""Fewest open days the training part may have: every weekday seen twice, so that the
seasonal naive baseline and the MASE scale (lag 7) exist."""
BASELINE = "baseline"
"""Column of `Evaluation.holdout_predictions` with the seasonal naive forecast."""


@dataclass(frozen=True, slots=True, eq=False)
class Evaluation:
    """Result of `evaluate_family`.

    `model` is fitted on the *full* history (what is stored and served); `metrics` and
    `baseline_metrics` score the model fitted on the training part only, on the observed
    open days of the holdout (NaN metrics when the holdout has none, e.g. a shop closed
    for the winter). `metrics` score the forecast as it is served: for a product sold in
    whole units (`counts`) a count's median of the model's mean (decision 030), the mean
    itself otherwise. `holdout_predictions` has one row per holdout row: date, y, closed,
    forecast (the model's mean, which the quantiles are calibrated on), baseline.
    """

    family: str
    model: ForecastModel
    metrics: Metrics
    baseline_metrics: Metrics
    holdout_predictions: pd.DataFrame
    holdout_start: date
    holdout_end: date

    @property
    def beats_baseline(self) -> bool:
        """The model's holdout WAPE is below the seasonal naive's (False if either is NaN)."""
        ours, baseline = self.metrics.wape, self.baseline_metrics.wape
        return not (math.isnan(ours) or math.isnan(baseline)) and ours < baseline


def evaluate_family(
    history: pd.DataFrame,
    *,
    family: str,
    regressors: Sequence[str] = (),
    params: Mapping[str, Any] | None = None,
    holdout: HoldoutSplit | None = None,
    min_train_days: int = MIN_TRAIN_OPEN_DAYS,
    context: FitContext = NO_CONTEXT,
    warm_refit: bool = False,
    counts: bool = False,
) -> Evaluation:
    """Fit `family` on the history minus the holdout, score it and the seasonal naive
    baseline on the holdout, then refit `family` on the whole history; with `warm_refit`
    the refit's optimiser starts where the holdout fit's ended (`ForecastModel.
    start_from`: Prophet's warm start, decision 021). `counts`: the product sells whole
    units (`counts.in_whole_units`) and is served a count's median, which the
    metrics then score.

    `history` is one product's history frame (see `frame`); `context` goes to every fit
    of `family` (not to the baseline's). The holdout is shortened (to at least 7 days)
    for a history too short to leave `min_train_days` open days before it. Raises
    ValueError when even then the training part has fewer than `min_train_days` open
    days, or for an unknown family.
    """
    # A history of 30 to 41 days (SPEC's minimum is 30) gets a shorter holdout, so that
    # a new shop or product is trained and scored at all.
    split = (holdout or HoldoutSplit()).fitting(history, min_train_days)
    cls = model_class(family)
    train, test = split.split(history.sort_values(DATE))
    n_train_open = int((~train[CLOSED].astype(bool)).sum()) if not train.empty else 0
    if n_train_open < min_train_days:
        raise ValueError(
            f"a {split.days}-day holdout leaves {n_train_open} open days to train on; "
            f"at least {min_train_days} are needed (history has {len(history)} rows "
            f"from {_first_date(history)})"
        )
    candidate = cls(regressors=regressors, params=params).fit(train, context=context)
    baseline = SeasonalNaive().fit(train)
    future = test[[DATE, CLOSED, *regressors]]
    predictions = pd.DataFrame(
        {
            DATE: test[DATE].to_numpy(),
            Y: test[Y].to_numpy(dtype=float),
            CLOSED: test[CLOSED].astype(bool).to_numpy(),
            YHAT: candidate.predict(future),
            BASELINE: baseline.predict(future),
        }
    )
    scored = predictions.loc[~predictions[CLOSED]]
    final = cls(regressors=regressors, params=params)
    if warm_refit:
        final.start_from(candidate)
    final.fit(history, context=context)
    cutoff = split.cutoff(history)
    served = count_median(scored[YHAT].to_numpy()) if counts else scored[YHAT]
    return Evaluation(
        family=family,
        model=final,
        metrics=compute_metrics(scored[Y], served, train_history=train),
        baseline_metrics=compute_metrics(scored[Y], scored[BASELINE], train_history=train),
        holdout_predictions=predictions,
        holdout_start=cutoff.date(),
        holdout_end=pd.Timestamp(history[DATE].max()).date(),
    )


def _first_date(history: pd.DataFrame) -> str:
    return "nothing" if history.empty else pd.Timestamp(history[DATE].min()).date().isoformat()
