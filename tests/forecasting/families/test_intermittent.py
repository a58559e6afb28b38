from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ovencast.forecasting.classes import ClassThresholds, ProductClass
from ovencast.forecasting.evaluation import evaluate_family
from ovencast.forecasting.families import load_model, model_class
from ovencast.forecasting.families.intermittent import (
    ADIDAModel,
    CrostonModel,
    IMAPAModel,
    IntermittentFamily,
    TSBModel,
)
from ovencast.forecasting.features import AlignmentReport
from ovencast.forecasting.frame import CLOSED, DATE, PRODUCT, Y

from ..conftest import HistoryFactory

FAMILIES = ["croston", "tsb", "adida", "imapa"]
CLASSES = {"croston": CrostonModel, "tsb": TSBModel, "adida": ADIDAModel, "imapa": IMAPAModel}
# Sells 0-3 units on about one open day in three.
SPARSE: list[float | None] = [0, 2, 0, 0, 1, 0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 2] * 2


def future(dates: pd.DatetimeIndex, closed: list[int] | tuple[int, ...] = ()) -> pd.DataFrame:
    return pd.DataFrame({DATE: dates, CLOSED: [i in closed for i in range(len(dates))]})


def fitted(family: str, history: pd.DataFrame) -> IntermittentFamily:
    model = model_class(family)().fit(history)
    assert isinstance(model, IntermittentFamily)
    return model


def next_days(model: IntermittentFamily, count: int) -> pd.DatetimeIndex:
    return pd.date_range(model.last_fitted_date + pd.Timedelta(days=1), periods=count)


@pytest.mark.parametrize("family", FAMILIES)
def test_registered_by_family_name(family: str) -> None:
    assert model_class(family) is CLASSES[family]


@pytest.mark.parametrize("family", FAMILIES)
def test_flat_non_negative_rate_and_closed_days_zero(
    family: str, make_history: HistoryFactory
) -> None:
    model = fitted(family, make_history(SPARSE))
    yhat = model.predict(future(next_days(model, 14), closed=(3, 4)))
    assert model.rate > 0
    assert yhat[3] == 0.0
    assert yhat[4] == 0.0
    open_forecasts = np.delete(yhat, [3, 4])
    np.testing.assert_array_equal(open_forecasts, np.full(12, model.rate))
    # A rate per open day: between nothing and the largest sale.
    assert 0 < model.rate < 3


@pytest.mark.parametrize("family", FAMILIES)
def test_json_round_trip_gives_identical_predictions(
    family: str, make_history: HistoryFactory
) -> None:
    model = fitted(family, make_history(SPARSE))
    payload = model.to_bytes()
    envelope = json.loads(payload)  # plain JSON, never pickle
    assert envelope["family"] == family
    assert envelope["regressors"] == []
    restored = load_model(payload)
    assert isinstance(restored, CLASSES[family])
    days = future(next_days(model, 400), closed=(5,))
    np.testing.assert_array_equal(restored.predict(days), model.predict(days))
    assert restored.to_bytes() == payload


@pytest.mark.parametrize("family", FAMILIES)
def test_closed_days_and_missing_dates_are_not_zeros(
    family: str, make_history: HistoryFactory
) -> None:
    # The same open-day sales, once contiguous and once with closed days and missing
    # dates between them: the rate per open day must be the same.
    spread: list[float | None] = []
    closed: list[int] = []
    for i, value in enumerate(SPARSE):
        spread.append(value)
        if i % 5 == 4:
            closed.append(len(spread))
            spread.append(0.0)
        if i % 7 == 6:
            spread.append(None)
    plain = fitted(family, make_history(SPARSE))
    with_gaps = fitted(family, make_history(spread, closed=closed))
    assert with_gaps.rate == pytest.approx(plain.rate, rel=1e-12)
    # Had the closed days been zeros (days the shop could sell but did not), the rate
    # would be lower.
    as_zeros = fitted(family, make_history([0.0 if v is None else v for v in spread]))
    assert as_zeros.rate < plain.rate


@pytest.mark.parametrize("family", FAMILIES)
def test_dates_on_or_before_the_history_are_refused(
    family: str, make_history: HistoryFactory
) -> None:
    model = fitted(family, make_history(SPARSE))
    with pytest.raises(ValueError, match="after the fitted history"):
        model.predict(future(pd.DatetimeIndex([model.last_fitted_date])))


@pytest.mark.parametrize("family", FAMILIES)
def test_never_sold_forecasts_zero(family: str, make_history: HistoryFactory) -> None:
    model = fitted(family, make_history([0.0] * 30))
    assert model.predict(future(next_days(model, 7))).tolist() == [0.0] * 7


@pytest.mark.parametrize("family", FAMILIES)
def test_declares_no_regressors(family: str, make_history: HistoryFactory) -> None:
    history = make_history(SPARSE, temperature_c=[1.0] * len(SPARSE))
    model = model_class(family)(regressors=["temperature_c"]).fit(history)
    assert model.regressors == ()


def test_tsb_smoothing_parameters(make_history: HistoryFactory) -> None:
    history = make_history(SPARSE)
    default = fitted("tsb", history)
    fast = TSBModel(params={"alpha_d": 0.5, "alpha_p": 0.5}).fit(history)
    assert fast.rate != pytest.approx(default.rate)
    assert json.loads(fast.to_bytes())["params"] == {"alpha_d": 0.5, "alpha_p": 0.5}
    for bad in ({"alpha_d": 0.0}, {"alpha_p": 1.5}, {"alpha_d": "0.1"}, {"beta": 0.1}):
        with pytest.raises(ValueError, match=r"alpha_[dp] must be|unknown tsb params"):
            TSBModel(params=bad)


# -- real data ---------------------------------------------------------------------------
@pytest.mark.parametrize("product", ["item_104", "item_51"])
@pytest.mark.parametrize("family", ["croston", "tsb"])
def test_intermittent_north_sea_products(
    family: str, product: str, northsea_tenant: tuple[pd.DataFrame, AlignmentReport]
) -> None:
    tenant = northsea_tenant[0]
    history = tenant.loc[tenant[PRODUCT] == product].drop(columns=[PRODUCT])
    history = history.reset_index(drop=True)
    open_y = history.loc[~history[CLOSED], Y].to_numpy()
    assert ClassThresholds().classify(open_y) is ProductClass.INTERMITTENT

    evaluation = evaluate_family(history, family=family)
    assert evaluation.metrics.n_days > 0
    assert np.isfinite(evaluation.metrics.mase)
    forecast = evaluation.holdout_predictions["forecast"].to_numpy()
    assert np.isfinite(forecast).all()
    assert (forecast >= 0).all()

    model = evaluation.model
    assert isinstance(model, IntermittentFamily)
    # The winter closure: the shop's calendar marks closed days, forecast as 0.
    days = future(next_days(model, 90), closed=tuple(range(60, 90)))
    yhat = model.predict(days)
    assert np.isfinite(yhat).all()
    assert (yhat >= 0).all()
    assert (yhat[:60] > 0).all()
    assert (yhat[60:] == 0).all()
    # Below the mean of the days it sold on: most open days sell nothing.
    assert yhat[0] < open_y[open_y > 0].mean()
