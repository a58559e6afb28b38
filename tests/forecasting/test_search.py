"""Optuna search over Prophet hyper-parameters: trial count, reproducibility, warm start,
early stop, hard trial timeout, failure records. Real Kiel `bread` sales, short
histories and few trials to stay fast."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cmdstanpy.model
import numpy as np
import pandas as pd
import pytest

from ovencast.forecasting.families.prophet import ProphetModel
from ovencast.forecasting.frame import CLOSED, DATE, Y, closed_days_as_zero_sales
from ovencast.forecasting.search import (
    SEARCH_SPACE,
    SearchFailed,
    SearchResult,
    SearchSpec,
    search_prophet,
    split_validation,
)

_ROOT = Path(__file__).resolve().parents[2]
_KIEL_DIRS = (_ROOT / ".." / "shared" / "data" / "kiel", _ROOT / "src/ovencast/demo_data/kiel")
KIEL = next(d for d in _KIEL_DIRS if (d / "sales.csv").is_file())
BASE = {"country": "DE", "subdivision": "SH"}
REGRESSORS = ["temperature_c"]


@pytest.fixture(scope="module")
def bread() -> pd.DataFrame:
    """Kiel bread, the last 150 days to 2018-07-31, with `temperature_c`."""
    sales = pd.read_csv(KIEL / "sales.csv", parse_dates=["date"])
    weather = pd.read_csv(KIEL / "weather.csv", parse_dates=["date"])
    frame = sales.loc[sales["product"] == "bread", ["date", "quantity"]].merge(
        weather[["date", "temperature_c"]], on="date", how="inner"
    )
    frame = frame.dropna(subset=["temperature_c"]).rename(columns={"quantity": Y})
    frame[CLOSED] = False
    frame = frame[[DATE, Y, CLOSED, "temperature_c"]].sort_values(DATE)
    return frame.tail(150).reset_index(drop=True)


def run(bread: pd.DataFrame, spec: SearchSpec, **kwargs: Any) -> SearchResult:
    return search_prophet(bread, spec, regressors=REGRESSORS, base_params=BASE, **kwargs)


def signature(result: SearchResult) -> list[tuple[Any, ...]]:
    return [(t.number, dict(t.params), t.state, t.mape, t.wape) for t in result.trials]


def test_runs_n_trials_reproducibly_and_reports_progress(bread: pd.DataFrame) -> None:
    progress: list[tuple[int, int, float | None]] = []

    first = run(bread, SearchSpec(n_trials=4, seed=7), on_trial=lambda *a: progress.append(a))
    again = run(bread, SearchSpec(n_trials=4, seed=7))
    other = run(bread, SearchSpec(n_trials=4, seed=8))

    assert first.n_trials == 4
    assert len(first.trials) == 4
    assert first.n_failed == 0
    assert not first.stopped_early
    assert [t.state for t in first.trials] == ["complete"] * 4
    assert signature(again) == signature(first)
    assert [dict(t.params) for t in other.trials] != [dict(t.params) for t in first.trials]
    assert [(n, total) for n, total, _ in progress] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [value for _, _, value in progress] == [t.mape for t in first.trials]

    best = min(first.trials, key=lambda t: t.mape or math.inf)
    assert first.best_mape == best.mape
    assert first.best_wape == best.wape
    assert dict(first.best_params) == dict(best.params)
    assert set(first.best_params) == set(SEARCH_SPACE)
    for trial in first.trials:
        assert trial.params["seasonality_mode"] in ("additive", "multiplicative")
        assert 0.001 <= trial.params["changepoint_prior_scale"] <= 0.5
        assert 0.01 <= trial.params["seasonality_prior_scale"] <= 10
        assert 0.01 <= trial.params["holidays_prior_scale"] <= 10
        assert trial.mape is not None
        assert 0 < trial.mape < 1
        assert trial.wape is not None
        assert 0 < trial.wape < 1


def test_objective_is_mape_on_non_zero_days_of_the_last_28_days(bread: pd.DataFrame) -> None:
    params = {
        "changepoint_prior_scale": 0.05,
        "seasonality_prior_scale": 1.0,
        "holidays_prior_scale": 1.0,
        "seasonality_mode": "additive",
    }
    result = run(bread, SearchSpec(n_trials=1, previous_best_params=params))

    train, valid = split_validation(bread, 28)
    assert valid[DATE].min() == pd.Timestamp("2018-07-04")  # 28 days to 2018-07-31
    model = ProphetModel(regressors=REGRESSORS, params={**BASE, **params}).fit(train)
    forecast = model.predict(valid.drop(columns=[Y]))
    y = valid[Y].to_numpy()
    nonzero = y != 0
    expected_mape = float(np.mean(np.abs(y - forecast)[nonzero] / y[nonzero]))
    expected_wape = float(np.sum(np.abs(y - forecast)) / np.sum(y))
    assert result.trials[0].mape == pytest.approx(expected_mape, rel=1e-9)
    assert result.trials[0].wape == pytest.approx(expected_wape, rel=1e-9)


def test_enqueued_warm_start_params_are_the_first_trial(bread: pd.DataFrame) -> None:
    previous = {
        "changepoint_prior_scale": 0.2,
        "seasonality_prior_scale": 0.5,
        "holidays_prior_scale": 3.0,
        "seasonality_mode": "multiplicative",
        "not_searched": 1,  # e.g. a key from an older cache: ignored
    }

    result = run(bread, SearchSpec(n_trials=3, seed=1, previous_best_params=previous))

    assert result.n_trials == 3
    first = result.trials[0]
    assert first.enqueued
    assert not any(t.enqueued for t in result.trials[1:])
    assert dict(first.params) == {k: v for k, v in previous.items() if k in SEARCH_SPACE}


def test_early_stop_after_the_enqueued_trial(bread: pd.DataFrame) -> None:
    earlier = run(bread, SearchSpec(n_trials=3, seed=3))

    close_enough = SearchSpec(
        n_trials=5,
        seed=3,
        previous_best_params=earlier.best_params,
        previous_best_mape=earlier.best_mape,
        stop_if_within=0.05,
    )
    stopped = run(bread, close_enough)

    assert stopped.stopped_early
    assert stopped.n_trials == 1
    assert stopped.best_mape == pytest.approx(earlier.best_mape, rel=1e-9)

    # Previous best far better than the enqueued trial reaches now: search on.
    not_close = SearchSpec(
        n_trials=3,
        seed=3,
        previous_best_params=earlier.best_params,
        previous_best_mape=earlier.best_mape / 2,
        stop_if_within=0.05,
    )
    went_on = run(bread, not_close)
    assert not went_on.stopped_early
    assert went_on.n_trials == 3


def test_warm_start_from_a_previous_model_is_used_by_every_trial(
    bread: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, _ = split_validation(bread, 28)
    previous = ProphetModel(regressors=REGRESSORS, params=BASE).fit(train)
    inits: list[dict[str, Any]] = []
    real_optimize = cmdstanpy.model.CmdStanModel.optimize

    def spy(self: cmdstanpy.model.CmdStanModel, *args: Any, **kwargs: Any) -> Any:
        inits.append(kwargs["inits"])
        return real_optimize(self, *args, **kwargs)

    monkeypatch.setattr(cmdstanpy.model.CmdStanModel, "optimize", spy)

    result = run(bread, SearchSpec(n_trials=2), warm_start_from=previous)

    assert result.n_failed == 0
    assert len(inits) == 2
    k = previous.stan_init()["k"]
    assert all(init["k"] == pytest.approx(k) for init in inits)


class _HangOnSecondOptimise:
    """Stands in for `subprocess` inside cmdstanpy.model: the second optimiser run starts a
    real child that sleeps for 10 minutes instead of cmdstan (a deterministic hang)."""

    def __init__(self) -> None:
        self.optimiser_runs = 0
        self.sleepers: list[subprocess.Popen[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    def Popen(self, cmd: list[str], **kwargs: Any) -> subprocess.Popen[str]:
        if any("optimize" in str(part) for part in cmd):
            self.optimiser_runs += 1
            if self.optimiser_runs == 2:
                sleeper: subprocess.Popen[str] = subprocess.Popen(
                    [sys.executable, "-c", "import time; time.sleep(600)"], **kwargs
                )
                self.sleepers.append(sleeper)
                return sleeper
        return subprocess.Popen(cmd, **kwargs)

    def kill_all(self) -> None:
        for sleeper in self.sleepers:
            if sleeper.poll() is None:
                sleeper.kill()
                sleeper.wait()


def test_trial_timeout_kills_the_hanging_fit_and_the_search_goes_on(
    bread: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _HangOnSecondOptimise()
    monkeypatch.setattr(cmdstanpy.model, "subprocess", fake)
    progress: list[float | None] = []
    started = time.monotonic()
    try:
        result = run(
            bread,
            SearchSpec(n_trials=3, seed=0, trial_timeout_s=1.0),
            on_trial=lambda _n, _total, value: progress.append(value),
        )
    finally:
        fake.kill_all()
    elapsed = time.monotonic() - started

    assert [t.state for t in result.trials] == ["complete", "pruned", "complete"]
    hung = result.trials[1]
    assert hung.reason is not None
    assert "timeout" in hung.reason
    assert hung.mape is None
    assert hung.wape is None
    assert 0.9 <= hung.duration_s < 20  # about the timeout, not the 10-minute sleep
    assert result.n_trials == 3
    assert result.n_failed == 1
    assert progress[1] is None
    assert progress[0] is not None
    assert progress[2] is not None
    assert elapsed < 60
    (sleeper,) = fake.sleepers
    assert sleeper.returncode == -signal.SIGTERM  # terminated and reaped by cmdstanpy
    assert not _sleeper_alive(sleeper.pid)


def test_failed_trials_are_recorded_and_no_completed_trial_raises(
    bread: pd.DataFrame,
) -> None:
    broken = bread.copy()
    broken.loc[5, "temperature_c"] = float("nan")  # Prophet refuses NaN regressors

    with pytest.raises(SearchFailed, match="no prophet trial completed") as failure:
        run(broken, SearchSpec(n_trials=2))

    trials = failure.value.trials
    assert [t.state for t in trials] == ["error", "error"]
    assert all(t.reason and "NaN" in t.reason for t in trials)


def test_result_to_dict_is_json_safe(bread: pd.DataFrame) -> None:
    result = run(bread, SearchSpec(n_trials=2))

    payload = json.loads(json.dumps(result.to_dict(), allow_nan=False))

    assert payload["n_trials"] == 2
    assert len(payload["trials"]) == 2
    assert payload["best_mape"] == result.best_mape
    assert set(payload["best_params"]) == set(SEARCH_SPACE)
    assert payload["trials"][0]["state"] == "complete"


def test_validation_window_needs_an_open_day_not_a_sale() -> None:
    dates = pd.date_range("2024-01-01", periods=60, freq="D")
    y = np.where(np.arange(60) < 40, 5.0, 0.0)  # stops selling 20 days before the end
    history = pd.DataFrame({DATE: dates, Y: y, CLOSED: False})

    train, valid = split_validation(history, 14)  # no sale in the window: MAE objective
    assert len(valid) == 14
    assert not valid[Y].any()
    with pytest.raises(ValueError, match="no open days before"):
        split_validation(history.tail(20), 28)
    closed_at_end = history.assign(**{CLOSED: np.arange(60) >= 46})
    with pytest.raises(ValueError, match="no open day to score"):
        split_validation(closed_at_end, 14)
    train, valid = split_validation(history, 28)
    assert len(train) == 32
    assert len(valid) == 28
    assert valid[DATE].min() == pd.Timestamp("2024-02-02")


def test_window_without_sales_minimises_the_mae(bread: pd.DataFrame) -> None:
    """The original approach's fallback: where MAPE is undefined (no sale in the last 28
    days), the trials are ranked by their MAE on the window."""
    stopped = bread.copy()
    stopped.loc[stopped[DATE] > stopped[DATE].max() - pd.Timedelta(days=28), Y] = 0.0

    result = run(stopped, SearchSpec(n_trials=3, seed=0))

    assert result.objective == "mae"
    assert math.isnan(result.best_mape)
    assert [t.state for t in result.trials] == ["complete"] * 3
    assert all(t.mape is None and t.mae is not None and t.mae > 0 for t in result.trials)
    best = min(result.trials, key=lambda t: t.mae or math.inf)
    assert dict(result.best_params) == dict(best.params)
    assert result.best_mae == best.mae
    train, valid = split_validation(stopped, 28)
    model = ProphetModel(regressors=REGRESSORS, params={**BASE, **best.params}).fit(train)
    forecast = model.predict(valid.drop(columns=[Y]))
    assert best.mae == pytest.approx(float(np.mean(forecast)), rel=1e-9)  # actual is 0
    assert json.loads(json.dumps(result.to_dict(), allow_nan=False))["objective"] == "mae"


def test_closed_days_as_zero_sales_are_fitted_and_forecast() -> None:
    """Closed days become ordinary zero-sales days: the model learns them from the
    `opening_hours` regressor and forecasts them (clipped at 0) instead of a forced 0."""
    dates = pd.date_range("2024-01-01", periods=120, freq="D")
    closed = (np.arange(120) % 7) == 6  # closed every Sunday
    hours = np.where(closed, 0.0, 8.0)
    history = pd.DataFrame(
        {
            DATE: dates,
            Y: np.where(closed, 0.0, 20.0 + np.arange(120) % 3),
            CLOSED: closed,
            "opening_hours": hours,
        }
    )

    as_zero_sales = closed_days_as_zero_sales(history)

    assert not as_zero_sales[CLOSED].any()
    assert history[CLOSED].sum() == closed.sum()
    pd.testing.assert_frame_equal(
        as_zero_sales.drop(columns=[CLOSED]), history.drop(columns=[CLOSED])
    )
    params = {"yearly_seasonality": False, "weekly_seasonality": False}
    model = ProphetModel(regressors=["opening_hours"], params=params).fit(as_zero_sales)
    future = closed_days_as_zero_sales(history.drop(columns=[Y]))
    forecast = model.predict(future)
    assert forecast[closed].max() < 2.0
    assert forecast[~closed].min() > 15.0
    # Without it the closed days are not fitted: opening_hours is then constant (8), and
    # the forecast of a closed day is exactly 0.
    skipping = ProphetModel(regressors=["opening_hours"], params=params).fit(history)
    assert (skipping.predict(history.drop(columns=[Y]))[closed] == 0).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_trials": 0}, "n_trials"),
        ({"n_trials": 5, "validation_days": 0}, "validation_days"),
        ({"n_trials": 5, "trial_timeout_s": 0}, "trial_timeout_s"),
        ({"n_trials": 5, "stop_if_within": 0.1}, "needs previous_best"),
        (
            {
                "n_trials": 5,
                "previous_best_params": {},
                "previous_best_mape": 0.2,
                "stop_if_within": -0.1,
            },
            ">= 0",
        ),
    ],
)
def test_spec_rejects_invalid_values(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchSpec(**kwargs)


@pytest.mark.parametrize(
    ("previous", "within", "first", "stop"),
    [
        (0.20, 0.05, 0.21, True),
        (0.20, 0.05, 0.2101, False),
        (0.20, 0.0, 0.19, True),
        (0.20, 0.0, 0.2001, False),
        (0.20, 0.05, None, False),
        (0.20, None, 0.10, False),
    ],
)
def test_should_stop_table(
    previous: float, within: float | None, first: float | None, stop: bool
) -> None:
    spec = SearchSpec(
        n_trials=5,
        previous_best_params={},
        previous_best_mape=previous,
        stop_if_within=within,
    )
    assert spec.should_stop(first) is stop


@pytest.mark.slow
def test_full_budget_search_on_full_history() -> None:
    """The high-volume budget (30 trials) on five years of bread: all complete."""
    sales = pd.read_csv(KIEL / "sales.csv", parse_dates=["date"])
    weather = pd.read_csv(KIEL / "weather.csv", parse_dates=["date"])
    full = sales.loc[sales["product"] == "bread", ["date", "quantity"]].merge(
        weather[["date", "temperature_c"]], on="date", how="inner"
    )
    full = full.dropna(subset=["temperature_c"]).rename(columns={"quantity": Y})
    full[CLOSED] = False

    result = run(full, SearchSpec(n_trials=30, seed=0))

    assert result.n_trials == 30
    assert result.n_failed == 0
    assert result.best_mape < 0.5


def _sleeper_alive(pid: int) -> bool:
    """True while `pid` is our sleeping child (not reaped, and not a reused pid)."""
    try:
        return b"time.sleep(600)" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
