from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ovencast.forecasting.counts import count_median
from ovencast.forecasting.evaluation import BASELINE, evaluate_family
from ovencast.forecasting.families.seasonal_naive import SeasonalNaive
from ovencast.forecasting.frame import CLOSED, DATE, YHAT, Y
from ovencast.forecasting.holdout import HoldoutSplit

from .conftest import HistoryFactory


def test_seasonal_naive_on_kiel_bread(kiel_bread: pd.DataFrame) -> None:
    evaluation = evaluate_family(kiel_bread, family="seasonal_naive", holdout=HoldoutSplit(28))
    wape = evaluation.metrics.wape
    assert math.isfinite(wape)
    assert 0 < wape < 1
    assert evaluation.metrics == evaluation.baseline_metrics
    assert not evaluation.beats_baseline  # equal is not better
    predictions = evaluation.holdout_predictions
    assert list(predictions.columns) == [DATE, Y, CLOSED, YHAT, BASELINE]
    assert predictions[DATE].min() == pd.Timestamp("2018-07-04")
    assert predictions[DATE].max() == pd.Timestamp("2018-07-31")
    assert evaluation.metrics.n_days == len(predictions)  # Kiel: no closed days


def test_final_model_is_refitted_on_the_full_history(kiel_bread: pd.DataFrame) -> None:
    evaluation = evaluate_family(kiel_bread, family="seasonal_naive")
    next_week = pd.date_range("2018-08-01", periods=7, freq="D")
    forecast = evaluation.model.predict(pd.DataFrame({DATE: next_week, CLOSED: False}))
    last_week = kiel_bread.set_index(DATE).loc["2018-07-25":"2018-07-31", Y]
    assert forecast.tolist() == last_week.tolist()  # no gaps in Kiel's last week


def test_holdout_metrics_use_the_training_part_only(make_history: HistoryFactory) -> None:
    # Weekly pattern, then a jump in the holdout: the model fitted without the holdout
    # forecasts the old level, the refitted model the new one.
    pattern = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]
    history = make_history(pattern * 4 + [2 * v for v in pattern])
    evaluation = evaluate_family(history, family="seasonal_naive", holdout=HoldoutSplit(7))
    assert evaluation.holdout_predictions[YHAT].tolist() == pattern
    assert evaluation.metrics.wape == pytest.approx(0.5)
    assert evaluation.metrics.bias == pytest.approx(-0.5)
    refit = evaluation.model.predict(pd.DataFrame({DATE: history[DATE][-7:], CLOSED: False}))
    assert refit.tolist() == [2 * v for v in pattern]


def test_closed_holdout_days_are_not_scored(make_history: HistoryFactory) -> None:
    history = make_history([10.0] * 21 + [0.0, 12.0, 0.0, 12.0, 12.0, 12.0, 12.0], closed=[21, 23])
    evaluation = evaluate_family(history, family="seasonal_naive", holdout=HoldoutSplit(7))
    assert evaluation.metrics.n_days == 5
    assert evaluation.metrics.wape == pytest.approx(10 / 60)
    assert evaluation.holdout_predictions[YHAT].tolist()[:2] == [0.0, 10.0]


def test_a_count_is_scored_as_served_by_its_median(make_history: HistoryFactory) -> None:
    # A slow seller's rate is a fraction; what is served of it is a count's median
    # (decision 030), and the holdout WAPE a user reads must be that forecast's.
    sales = np.random.default_rng(3).poisson(np.tile([0.2, 0.2, 0.3, 0.3, 0.5, 0.8, 0.1], 20))
    history = make_history(sales.astype(float).tolist())
    mean = evaluate_family(history, family="croston", holdout=HoldoutSplit(28))
    served = evaluate_family(history, family="croston", holdout=HoldoutSplit(28), counts=True)
    predictions = served.holdout_predictions
    assert predictions[YHAT].tolist() == mean.holdout_predictions[YHAT].tolist()
    assert not np.all(predictions[YHAT] == np.round(predictions[YHAT]))  # a rate, kept
    median = count_median(predictions[YHAT].to_numpy())
    actual = predictions[Y].to_numpy()
    assert served.metrics.wape == pytest.approx(np.abs(actual - median).sum() / actual.sum())
    assert mean.metrics.wape == pytest.approx(
        np.abs(actual - predictions[YHAT].to_numpy()).sum() / actual.sum())
    assert served.metrics.wape < mean.metrics.wape  # more zero days than sales days
    assert served.baseline_metrics == mean.baseline_metrics


def test_all_closed_holdout_gives_nan_metrics(make_history: HistoryFactory) -> None:
    history = make_history([10.0] * 21 + [0.0] * 7, closed=range(21, 28))
    evaluation = evaluate_family(history, family="seasonal_naive", holdout=HoldoutSplit(7))
    assert evaluation.metrics.n_days == 0
    assert math.isnan(evaluation.metrics.wape)
    assert not evaluation.beats_baseline


def test_model_that_beats_the_baseline(kiel_bread: pd.DataFrame, oracle_family: str) -> None:
    history = kiel_bread.assign(same_as_y=kiel_bread[Y])
    evaluation = evaluate_family(history, family=oracle_family, regressors=["same_as_y"])
    assert evaluation.metrics.wape == 0.0
    assert evaluation.baseline_metrics.wape > 0
    assert evaluation.beats_baseline
    assert evaluation.model.regressors == ("same_as_y",)
    assert evaluation.model.family == oracle_family


@pytest.mark.parametrize(
    ("n_days", "holdout_days"),
    # 20 days: even a 7-day holdout leaves 13; a 1-day holdout is not shortened further.
    [(20, 28), (14, 1)],
)
def test_too_little_training_data(
    make_history: HistoryFactory, n_days: int, holdout_days: int
) -> None:
    history = make_history([5.0] * n_days)
    with pytest.raises(ValueError, match="at least 14 are needed"):
        evaluate_family(history, family="seasonal_naive", holdout=HoldoutSplit(holdout_days))


def test_just_enough_training_data(make_history: HistoryFactory) -> None:
    evaluation = evaluate_family(
        make_history([5.0] * 42), family="seasonal_naive", holdout=HoldoutSplit(28)
    )
    assert evaluation.metrics.n_days == 28
    assert isinstance(evaluation.model, SeasonalNaive)


def test_unknown_family(make_history: HistoryFactory) -> None:
    with pytest.raises(ValueError, match="unknown model family"):
        evaluate_family(make_history([5.0] * 60), family="crystal_ball")


@pytest.mark.parametrize(("n_days", "scored_days"), [(30, 16), (35, 21), (41, 27), (42, 28)])
def test_a_history_of_30_to_41_days_gets_a_shorter_holdout(
        make_history: HistoryFactory, n_days: int, scored_days: int) -> None:
    """SPEC trains a product from 30 days of data; a 28-day holdout would leave fewer than
    14 to fit on and no model at all. The holdout shrinks to leave exactly 14."""
    history = make_history([5.0 + day % 7 for day in range(n_days)])
    evaluation = evaluate_family(history, family="seasonal_naive", holdout=HoldoutSplit(28))
    assert evaluation.metrics.n_days == scored_days
    assert len(evaluation.holdout_predictions) == scored_days
    assert (evaluation.holdout_end - evaluation.holdout_start).days == scored_days - 1
    assert evaluation.metrics.wape == 0.0  # the weekly pattern, seen twice, repeats
