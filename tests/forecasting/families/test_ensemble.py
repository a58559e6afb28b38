from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from ovencast.forecasting.families import load_model
from ovencast.forecasting.families.ensemble import EnsembleModel, ensemble_params
from ovencast.forecasting.families.intermittent import CrostonModel
from ovencast.forecasting.families.seasonal_naive import SeasonalNaive
from ovencast.forecasting.frame import CLOSED, DATE

from ..conftest import HistoryFactory

PATTERN = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]




def members(echo: str) -> list[dict[str, Any]]:
    return [
        {"name": "naive", "family": "seasonal_naive", "params": {}, "regressors": []},
        {"name": "croston", "family": "croston", "params": {}, "regressors": []},
        {"name": "echo", "family": echo, "params": {}, "regressors": ["weather"]},
    ]


def test_ensemble_round_trips_and_predicts_the_weighted_mean(
        make_history: HistoryFactory, oracle_family: str) -> None:
    values = PATTERN * 6
    history = make_history(values, weather=[1.0] * len(values))
    model = EnsembleModel(params=ensemble_params(members(oracle_family), [2.0, 1.0, 1.0]))
    assert model.weights == [0.5, 0.25, 0.25]
    assert model.regressors == ("weather",)  # the union of the members'
    model.fit(history)
    future = pd.DataFrame({DATE: pd.date_range("2024-02-12", periods=8),
                           CLOSED: [False] * 7 + [True], "weather": [100.0] * 8})
    naive = SeasonalNaive().fit(history).predict(future[[DATE, CLOSED]])
    croston = CrostonModel().fit(history).predict(future[[DATE, CLOSED]])
    expected = 0.5 * naive + 0.25 * croston + 0.25 * 100.0
    expected[-1] = 0.0  # closed
    predicted = model.predict(future)
    assert predicted == pytest.approx(expected)

    payload = model.to_bytes()
    envelope = json.loads(payload)
    assert envelope["family"] == "ensemble"
    assert [m["family"] for m in envelope["state"]["members"]] == [
        "seasonal_naive", "croston", oracle_family]
    restored = load_model(payload)
    assert isinstance(restored, EnsembleModel)
    assert restored.regressors == ("weather",)
    assert [m.family for m in restored.members] == ["seasonal_naive", "croston", oracle_family]
    assert restored.predict(future) == pytest.approx(predicted)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"members": [], "weights": []}, "non-empty"),
        ({"members": [{"family": "seasonal_naive"}], "weights": [1.0, 2.0]}, "one weight"),
        ({"members": [{"family": "seasonal_naive"}], "weights": [0.0]}, "positive"),
        ({"members": [{"family": "ensemble"}], "weights": [1.0]}, "cannot contain"),
        ({"members": [{"family": "crystal_ball"}], "weights": [1.0]}, "unknown model family"),
        ({"members": [{"family": "seasonal_naive"}], "weights": [1.0], "x": 1}, "unknown"),
    ],
)
def test_ensemble_refuses_bad_params(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EnsembleModel(params=params)
