"""Prophet family: artifacts, closed days, holidays, seasonality rules, warm start, the
optimiser's hard timeout and temporary-file hygiene. Real Kiel `bread` sales."""

from __future__ import annotations

import contextlib
import json
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cmdstanpy
import cmdstanpy.model
import numpy as np
import pandas as pd
import pytest

from ovencast.forecasting.evaluation import evaluate_family
from ovencast.forecasting.families import load_model, model_class
from ovencast.forecasting.families.ensemble import EnsembleModel, ensemble_params
from ovencast.forecasting.families.prophet import (
    FitTimeout,
    ProphetModel,
    holiday_frame,
)
from ovencast.forecasting.frame import CLOSED, DATE, Y
from ovencast.forecasting.holdout import HoldoutSplit

_ROOT = Path(__file__).resolve().parents[2]
_KIEL_DIRS = (_ROOT / ".." / "shared" / "data" / "kiel", _ROOT / "src/ovencast/demo_data/kiel")
KIEL = next(d for d in _KIEL_DIRS if (d / "sales.csv").is_file())


def kiel_bread(days: int | None = None) -> pd.DataFrame:
    """History frame of Kiel bread (EUR/day) with `temperature_c`; the last `days` rows."""
    sales = pd.read_csv(KIEL / "sales.csv", parse_dates=["date"])
    weather = pd.read_csv(KIEL / "weather.csv", parse_dates=["date"])
    bread = sales.loc[sales["product"] == "bread", ["date", "quantity"]]
    frame = bread.merge(weather[["date", "temperature_c"]], on="date", how="inner")
    frame = frame.dropna(subset=["temperature_c"]).rename(columns={"quantity": Y})
    frame[CLOSED] = False
    frame = frame[[DATE, Y, CLOSED, "temperature_c"]].sort_values(DATE).reset_index(drop=True)
    return frame if days is None else frame.tail(days).reset_index(drop=True)


def kiel_temperature(start: str, days: int) -> pd.DataFrame:
    """Future frame: `days` dates from `start`, open, with the observed temperature."""
    weather = pd.read_csv(KIEL / "weather.csv", parse_dates=["date"])
    dates = pd.date_range(start, periods=days, freq="D")
    future = pd.DataFrame({DATE: dates, CLOSED: False})
    future = future.merge(weather[["date", "temperature_c"]], on="date", how="left")
    return future.fillna({"temperature_c": weather["temperature_c"].mean()})


PARAMS = {"country": "DE", "subdivision": "SH"}


@pytest.fixture(scope="module")
def fitted() -> ProphetModel:
    """Fitted on the last 120 days (to 2018-07-31) with holidays and temperature."""
    return ProphetModel(regressors=["temperature_c"], params=PARAMS).fit(kiel_bread(120))


def test_registered_under_its_family_name() -> None:
    assert model_class("prophet") is ProphetModel


def test_json_artifact_round_trips_to_the_same_forecast(fitted: ProphetModel) -> None:
    future = kiel_temperature("2018-08-01", 21)
    payload = fitted.to_bytes()
    envelope = json.loads(payload)  # plain JSON all the way down, no pickle
    assert envelope["family"] == "prophet"
    assert envelope["regressors"] == ["temperature_c"]
    assert envelope["params"] == PARAMS
    assert "params" in envelope["state"]["prophet"]  # Prophet's own serialisation
    assert envelope["state"]["prophet"]["fit_kwargs"] == {}  # no temp paths, no inits

    restored = load_model(payload)

    assert isinstance(restored, ProphetModel)
    np.testing.assert_allclose(restored.predict(future), fitted.predict(future), rtol=1e-12)
    assert restored.to_bytes() == payload


def test_closed_days_are_zero_and_forecasts_non_negative(fitted: ProphetModel) -> None:
    future = kiel_temperature("2018-08-01", 14)
    future.loc[[2, 9], CLOSED] = True
    # Far below anything seen: a linear temperature effect could push yhat below zero.
    future.loc[[5], "temperature_c"] = -300.0

    forecast = fitted.predict(future)

    assert forecast.shape == (14,)
    assert forecast[2] == 0.0
    assert forecast[9] == 0.0
    assert (forecast >= 0).all()
    open_days = np.delete(forecast, [2, 5, 9])
    assert (open_days > 50).all()  # bread sells > 100 EUR on an ordinary open day


def test_closed_history_days_do_not_influence_the_fit() -> None:
    history = kiel_bread(90)
    # Mark three days closed with zero sales: the model must fit as if they were absent.
    with_closed = history.copy()
    with_closed.loc[[10, 40, 70], [Y, CLOSED]] = [0.0, True]
    without = history.drop(index=[10, 40, 70]).reset_index(drop=True)
    future = kiel_temperature("2018-08-01", 7)

    a = ProphetModel(regressors=["temperature_c"]).fit(with_closed).predict(future)
    b = ProphetModel(regressors=["temperature_c"]).fit(without).predict(future)

    np.testing.assert_allclose(a, b, rtol=1e-9)


def test_holidays_cover_history_years_and_two_years_ahead(fitted: ProphetModel) -> None:
    frame = fitted.prophet.holidays
    assert frame is not None
    years = set(pd.to_datetime(frame["ds"]).dt.year)
    assert years == {2018, 2019, 2020}
    # Schleswig-Holstein has Reformation Day since 2018; 2020's Christmas is known.
    assert pd.Timestamp("2019-10-31") in set(frame["ds"])
    assert pd.Timestamp("2020-12-25") in set(frame["ds"])


def test_holiday_frame_rejects_unknown_country() -> None:
    with pytest.raises(ValueError, match="no holiday calendar"):
        holiday_frame("XX", None, first_year=2020, last_year=2021)


@pytest.mark.parametrize(
    ("days", "weekly", "yearly"),
    [(13, False, False), (60, True, False), (800, True, True)],
)
def test_seasonality_follows_history_length(days: int, weekly: bool, yearly: bool) -> None:
    model = ProphetModel().fit(kiel_bread(days))
    seasonalities = set(model.prophet.seasonalities)
    assert ("weekly" in seasonalities) is weekly
    assert ("yearly" in seasonalities) is yearly
    assert "daily" not in seasonalities


def test_rejects_unknown_params() -> None:
    with pytest.raises(ValueError, match="unknown prophet params"):
        ProphetModel(params={"changepoint_prior": 0.1})
    with pytest.raises(ValueError, match="seasonality_mode"):
        ProphetModel(params={"seasonality_mode": "loud"})


@pytest.fixture
def optimiser_inits(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The inits of every cmdstan optimisation from here on (the real optimiser runs)."""
    seen: list[dict[str, Any]] = []
    real_optimize = cmdstanpy.CmdStanModel.optimize

    def spy(self: cmdstanpy.CmdStanModel, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["inits"])
        return real_optimize(self, *args, **kwargs)

    monkeypatch.setattr(cmdstanpy.CmdStanModel, "optimize", spy)
    return seen


def test_warm_start_passes_previous_parameters_as_optimiser_inits(
    fitted: ProphetModel, optimiser_inits: list[dict[str, Any]]
) -> None:
    seen = optimiser_inits
    # Reload from the artifact: retraining warm-starts from the stored model.
    previous = load_model(fitted.to_bytes())
    assert isinstance(previous, ProphetModel)
    init = previous.stan_init()

    warm = ProphetModel(regressors=["temperature_c"], params=PARAMS, warm_start_from=previous).fit(
        kiel_bread(120)
    )

    assert len(seen) == 1
    assert seen[0]["k"] == pytest.approx(init["k"])
    np.testing.assert_allclose(seen[0]["beta"], init["beta"])
    np.testing.assert_allclose(seen[0]["delta"], init["delta"])
    # Same data, started at the optimum: lands on (nearly) the same model.
    future = kiel_temperature("2018-08-01", 14)
    np.testing.assert_allclose(warm.predict(future), fitted.predict(future), rtol=1e-3)


@pytest.mark.parametrize("family", ["prophet", "ensemble"])
@pytest.mark.parametrize("warm", [True, False])
def test_the_refit_after_the_holdout_starts_where_the_holdout_fit_ended(
    family: str, warm: bool, request: pytest.FixtureRequest
) -> None:
    history = kiel_bread(400)
    prophet_spec = {"family": "prophet", "params": PARAMS, "regressors": ["temperature_c"]}
    params = PARAMS if family == "prophet" else ensemble_params(
        [prophet_spec, {"family": "seasonal_naive", "params": {}, "regressors": []}],
        [0.5, 0.5])
    # The holdout fit on its own (cmdstan is seeded: the same fit evaluate_family makes).
    holdout_fit = ProphetModel(regressors=["temperature_c"], params=PARAMS).fit(
        HoldoutSplit(28).split(history)[0])
    seen: list[dict[str, Any]] = request.getfixturevalue("optimiser_inits")  # from here on

    evaluation = evaluate_family(history, family=family, regressors=["temperature_c"],
                                 params=params, holdout=HoldoutSplit(28), warm_refit=warm)

    assert len(seen) == 2  # the holdout fit, then the refit on the whole history
    assert not np.any(seen[0]["delta"])  # Prophet's own cold start
    expected = holdout_fit.stan_init()
    if warm:
        assert seen[1]["k"] == pytest.approx(expected["k"])
        np.testing.assert_allclose(seen[1]["delta"], expected["delta"])
        np.testing.assert_allclose(seen[1]["beta"], expected["beta"])
    else:
        assert not np.any(seen[1]["delta"])
    # Either way the refit lands near the cold fit: Prophet's posterior is flat around its
    # optimum (log density within about 1 of each other), so L-BFGS stops at slightly
    # different points from different starts (decision 021).
    cold = ProphetModel(regressors=["temperature_c"], params=PARAMS).fit(history)
    future = kiel_temperature("2018-08-01", 14)
    refit = evaluation.model
    if isinstance(refit, EnsembleModel):
        refit = refit.members[0]
    np.testing.assert_allclose(refit.predict(future), cold.predict(future), rtol=0.05)
    # The stored model keeps no reference to the holdout fit.
    assert len(pickle.dumps(evaluation.model)) < 1.5 * len(pickle.dumps(cold)) + 50_000


# -- hard timeout and temp files ----------------------------------------------------------


class _HangingOptimiser:
    """Stands in for the `subprocess` module inside cmdstanpy.model: an optimise command
    starts a real child that sleeps for 10 minutes instead of cmdstan (a deterministic
    hang); everything else goes to the real module."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    def Popen(self, cmd: list[str], **kwargs: Any) -> subprocess.Popen[str]:
        if not any("optimize" in str(part) for part in cmd):
            return subprocess.Popen(cmd, **kwargs)
        child: subprocess.Popen[str] = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(600)"], **kwargs
        )
        self.children.append(child)
        return child

    def kill_all(self) -> None:
        """Never leave a sleeper behind, even when a test fails."""
        for child in self.children:
            if child.poll() is None:
                child.kill()
                child.wait()


@pytest.fixture
def hanging_optimiser(monkeypatch: pytest.MonkeyPatch) -> Iterator[_HangingOptimiser]:
    fake = _HangingOptimiser()
    monkeypatch.setattr(cmdstanpy.model, "subprocess", fake)
    yield fake
    fake.kill_all()


def test_timeout_kills_a_hanging_optimiser(hanging_optimiser: _HangingOptimiser) -> None:
    model = ProphetModel(regressors=["temperature_c"], fit_timeout_s=1.0)
    started = time.monotonic()

    with pytest.raises(FitTimeout, match="terminated"):
        model.fit(kiel_bread(60))

    elapsed = time.monotonic() - started
    assert len(hanging_optimiser.children) == 1
    child = hanging_optimiser.children[0]
    assert child.returncode == -signal.SIGTERM  # killed and reaped, not abandoned
    assert not _sleeper_alive(child.pid)
    assert elapsed < 30  # bounded by the timeout, not by the 10-minute sleep
    assert not model.fitted


def test_real_optimiser_is_terminated_at_its_deadline() -> None:
    # A full five-year fit takes far longer than 10 ms (cmdstan alone parses ~2k rows).
    with pytest.raises(FitTimeout):
        ProphetModel(regressors=["temperature_c"], fit_timeout_s=0.01).fit(kiel_bread())


def test_fits_leave_no_temporary_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    cmdstan_tmp = Path(cmdstanpy._TMPDIR)
    before = sorted(cmdstan_tmp.rglob("*"))
    history = kiel_bread(60)

    for _ in range(3):
        ProphetModel(regressors=["temperature_c"]).fit(history)
    hanging = _HangingOptimiser()
    monkeypatch.setattr(cmdstanpy.model, "subprocess", hanging)
    try:
        with pytest.raises(FitTimeout):
            ProphetModel(regressors=["temperature_c"], fit_timeout_s=0.5).fit(history)
    finally:
        hanging.kill_all()

    assert list(tmp_path.iterdir()) == []  # every per-fit output directory is gone
    assert sorted(cmdstan_tmp.rglob("*")) == before  # cmdstanpy's data/inits files too


def _sleeper_alive(pid: int) -> bool:
    """True while `pid` is our sleeping child (not reaped, and not a reused pid)."""
    try:
        return b"time.sleep(600)" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_prophet_fits_write_their_data_with_ujson() -> None:
    # pyproject.toml's ujson is there for stanio, cmdstanpy's JSON writer, which uses it
    # when it imports: the data of every Prophet fit is encoded in C, not json's Python.
    import stanio.json

    assert stanio.json.UJSON_AVAILABLE


def test_fits_hand_cmdstan_the_same_json_as_prophets_own_backend(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # `_stan_arrays` replaces Prophet's `prepare_data` to spare stanio an element-by-
    # element walk of nested lists; what it hands over must encode to the same JSON, with
    # holidays and a regressor (every data key), so that fits stay identical.
    from prophet.models import CmdStanPyBackend
    from stanio.json import dump_stan_json

    from ovencast.forecasting.families import prophet as prophet_module

    seen: list[tuple[Any, Any, Any]] = []
    ours = prophet_module._stan_arrays

    def recorded(init: Any, data: Any) -> Any:
        handed = ours(init, data)
        seen.append((init, data, handed))
        return handed

    monkeypatch.setattr(prophet_module, "_stan_arrays", recorded)
    ProphetModel(regressors=["temperature_c"], params=PARAMS).fit(kiel_bread(days=800))
    assert seen, "the fit did not use _stan_arrays"
    for init, data, (our_init, our_data) in seen:
        their_init, their_data = CmdStanPyBackend.prepare_data(init, data)
        assert dump_stan_json(our_data) == dump_stan_json(their_data)
        assert dump_stan_json(our_init) == dump_stan_json(their_init)


def test_shared_feature_answers_give_prophets_own_fits_and_forecasts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # `_share_answers` answers Prophet's `regressor_column_matrix` and
    # `make_holiday_features` from a per-process table: fits of different histories and
    # regressors, in any order, must give exactly what Prophet's own methods give.
    from ovencast.forecasting.families import prophet as prophet_module

    cases = [(800, ["temperature_c"], PARAMS), (800, [], PARAMS),
             (500, ["temperature_c"], PARAMS), (800, ["temperature_c"], {}),
             (800, ["temperature_c"], PARAMS)]  # the last: the first again, from the table
    future = kiel_temperature("2018-08-01", 35)

    def fit_all() -> list[tuple[np.ndarray, dict[str, Any]]]:
        found = []
        for days, regressors, params in cases:
            model = ProphetModel(regressors=regressors, params=params)
            model.fit(kiel_bread(days=days))
            found.append((model.predict(future[[DATE, CLOSED, *regressors]]),
                          json.loads(model.to_bytes())["state"]))
        return found

    prophet_module._SHARED.clear()
    calls: list[int] = []
    share = prophet_module._share_answers

    def counted(model: Any) -> Any:
        calls.append(1)
        return share(model)

    monkeypatch.setattr(prophet_module, "_share_answers", counted)
    shared = fit_all()
    assert len(calls) == 2 * len(cases)  # each fit and each predict
    # A fit and a predict ask each method once: the repeated case is answered from the
    # table.
    assert 0 < len(prophet_module._SHARED) < 4 * len(cases)
    monkeypatch.setattr(prophet_module, "_share_answers",
                        lambda model: contextlib.nullcontext())
    own = fit_all()
    for (ours, our_state), (theirs, their_state) in zip(shared, own, strict=True):
        np.testing.assert_array_equal(ours, theirs)
        assert our_state == their_state


def test_fitted_and_used_model_pickles_and_forecasts_the_same() -> None:
    # The service's fit process sends the fitted model back to its worker by pickle:
    # nothing a fit or a forecast installs on the Prophet object may stay behind.
    future = kiel_temperature("2018-08-01", 14)[[DATE, CLOSED, "temperature_c"]]
    model = ProphetModel(regressors=["temperature_c"], params=PARAMS)
    model.fit(kiel_bread(days=500))
    expected = model.predict(future)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(future), expected)


def test_holiday_frames_are_copies_of_one_computed_frame() -> None:
    first = holiday_frame("DE", "SH", first_year=2020, last_year=2022)
    first.loc[0, "holiday"] = "changed by a caller"
    again = holiday_frame("DE", "SH", first_year=2020, last_year=2022)
    assert again.loc[0, "holiday"] != "changed by a caller"
    assert again.equals(holiday_frame("DE", "SH", first_year=2020, last_year=2022))


def test_one_loaded_model_forecasts_in_several_threads_at_once(fitted: ProphetModel) -> None:
    # The service keeps a loaded model for every request (forecasts/service.py) and
    # forecasts in FORECAST_THREADS threads: concurrent forecasts of one product share the
    # Prophet object that `_share_answers` patches while it predicts. Before the patch was
    # counted per model, the first thread out removed it under the others (AttributeError,
    # a 500 on one of four concurrent forecast requests).
    from ovencast.forecasting.families import prophet as prophet_module

    future = kiel_temperature("2018-08-01", 60)
    expected = fitted.predict(future)
    threads, rounds = 4, 12
    start = threading.Barrier(threads)

    def forecast_repeatedly() -> list[np.ndarray]:
        start.wait()
        return [fitted.predict(future) for _ in range(rounds)]

    with ThreadPoolExecutor(max_workers=threads) as pool:
        runs = [f.result() for f in [pool.submit(forecast_repeatedly) for _ in range(threads)]]
    for forecasts in runs:
        for forecast in forecasts:
            np.testing.assert_array_equal(forecast, expected)
    prophet = fitted._require_prophet()
    # Every block has left: nothing stays installed on the Prophet object.
    assert "regressor_column_matrix" not in vars(prophet)
    assert "make_holiday_features" not in vars(prophet)
    assert not prophet_module._PATCHED
