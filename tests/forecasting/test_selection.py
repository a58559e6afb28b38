from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ovencast.events.progress import Backtest, ProductEvent
from ovencast.forecasting.classes import ProductClass
from ovencast.forecasting.families.base import FitContext, ForecastModel
from ovencast.forecasting.families.ensemble import EnsembleModel
from ovencast.forecasting.families.registry import FAMILY_CLASSES
from ovencast.forecasting.frame import CLOSED, DATE, YHAT, Y
from ovencast.forecasting.holdout import HoldoutSplit
from ovencast.forecasting.selection import (
    AUTO,
    BLEND_FAIL_RATIO,
    INTERMITTENT_CANDIDATES,
    REGULAR_CANDIDATES,
    SEASONAL_LAG_DAYS,
    WINDOW,
    BacktestPlan,
    Candidate,
    CandidatePolicy,
    FamilyBacktest,
    NoBacktestWindow,
    NoCandidate,
    backtest_family,
    choose,
    partner_windows,
    resolve_candidate,
    select,
    windows_won,
)
from ovencast.training.fitting import fit_product, plan_candidates
from ovencast.training.plan import FitPlan

from .conftest import HistoryFactory

WEEK = [60.0, 70.0, 75.0, 80.0, 95.0, 130.0, 90.0]


def weekly(weeks: int, *, noise: float = 0.0, seed: int = 0) -> list[float | None]:
    rng = np.random.default_rng(seed)
    values = np.tile(WEEK, weeks) * rng.normal(1.0, noise, size=7 * weeks)
    return [float(v) for v in np.clip(values, 0.0, None)]


def day(offset: int) -> str:
    return (pd.Timestamp("2024-01-01") + pd.Timedelta(days=offset)).date().isoformat()


# -- the plan -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n_days", "n_windows", "horizon", "expected"),
    [
        # 2024-01-01 .. 2024-04-09: three 28-day windows ending on the last day.
        (100, 3, 28, [(16, 43), (44, 71), (72, 99)]),
        # The oldest window would leave no day to fit on: left out.
        (70, 3, 28, [(14, 41), (42, 69)]),
        # Exactly min_train_days (14) open days before the first window: kept.
        (98, 3, 28, [(14, 41), (42, 69), (70, 97)]),
        (30, 2, 7, [(16, 22), (23, 29)]),
        (30, 1, 1, [(29, 29)]),
        # Too short for any window.
        (40, 3, 28, []),
    ],
)
def test_windows_table(make_history: HistoryFactory, n_days: int, n_windows: int,
                       horizon: int, expected: list[tuple[int, int]]) -> None:
    history = make_history([5.0] * n_days)
    windows = BacktestPlan(n_windows=n_windows, horizon_days=horizon).windows(history)
    assert [(w.start.date().isoformat(), w.end.date().isoformat()) for w in windows] == [
        (day(a), day(b)) for a, b in expected]
    for window in windows:
        assert window.train[DATE].max() < window.start
        assert window.test[DATE].min() == window.start
        assert window.test[DATE].max() == window.end
        assert len(window.test) == horizon
        # Expanding origin: everything before the window is fitted on.
        assert len(window.train) == (window.start - pd.Timestamp("2024-01-01")).days


def test_windows_stay_strictly_inside_the_data_given(make_history: HistoryFactory) -> None:
    history = make_history(weekly(30))
    until = pd.Timestamp("2024-06-15")
    given = history.loc[history[DATE] <= until]
    windows = BacktestPlan(n_windows=3).windows(given)
    assert len(windows) == 3
    assert windows[-1].end == until
    for window in windows:
        # Nothing after `until` is ever fitted on or scored.
        assert window.train[DATE].max() < window.start <= window.end <= until
        assert window.test[DATE].max() <= until
    for earlier, later in itertools.pairwise(windows):
        assert earlier.end + pd.Timedelta(days=1) == later.start  # no overlap, no gap


def test_window_without_open_days_is_left_out(make_history: HistoryFactory) -> None:
    # 84 days; the middle 28-day window (days 28..55) is all closed.
    values = [5.0] * 84
    for i in range(28, 56):
        values[i] = 0.0
    history = make_history(values, closed=range(28, 56))
    windows = BacktestPlan(n_windows=2, horizon_days=28).windows(history)
    assert [(w.start.date().isoformat()) for w in windows] == [day(56)]


# -- the seasonal window ----------------------------------------------------------------------
def test_seasonal_window_comes_first(make_history: HistoryFactory) -> None:
    history = make_history(weekly(70))  # 490 days: 2024-01-01 .. 2025-05-04
    plan = BacktestPlan()
    windows = plan.windows(history)
    assert len(windows) == plan.n_windows + 1
    seasonal, recent = windows[0], windows[1:]
    after_last = history[DATE].max() + pd.Timedelta(days=1)
    assert seasonal.start == after_last - pd.Timedelta(days=SEASONAL_LAG_DAYS) == pd.Timestamp(
        day(490 - 364))
    assert seasonal.start.dayofweek == after_last.dayofweek  # the same weekdays
    assert seasonal.end == seasonal.start + pd.Timedelta(days=plan.horizon_days - 1)
    assert len(seasonal.test) == plan.horizon_days
    assert seasonal.test[DATE].min() == seasonal.start
    assert seasonal.test[DATE].max() == seasonal.end
    assert seasonal.train[DATE].max() < seasonal.start
    assert len(seasonal.train) == 490 - 364  # every row before it
    # The recent windows are those of the plan without the seasonal window.
    without = BacktestPlan(seasonal=False).windows(history)
    assert [(w.start, w.end) for w in recent] == [(w.start, w.end) for w in without]
    assert len(without) == plan.n_windows
    assert seasonal.end < recent[0].start
    assert without[-1].end == history[DATE].max()
    assert plan.to_dict()["seasonal"] is True
    assert BacktestPlan(seasonal=False).to_dict()["seasonal"] is False


@pytest.mark.parametrize(("n_days", "seasonal_start"), [
    (200, None),  # a year back is before the history
    (364 + 13, None),  # 13 days before it: fewer than min_train_days (14)
    (364 + 14, 14),  # exactly min_train_days before it: kept
    (460, 460 - 364),
])
def test_seasonal_window_needs_training_days(make_history: HistoryFactory, n_days: int,
                                             seasonal_start: int | None) -> None:
    history = make_history([5.0] * n_days)
    windows = BacktestPlan().windows(history)
    recent = BacktestPlan(seasonal=False).windows(history)
    if seasonal_start is None:
        assert [(w.start, w.end) for w in windows] == [(w.start, w.end) for w in recent]
    else:
        assert len(windows) == len(recent) + 1
        assert windows[0].start == pd.Timestamp(day(seasonal_start))
        assert int((~windows[0].train[CLOSED]).sum()) >= BacktestPlan().min_train_days
    assert [w.seasonal for w in windows] == (
        [True] * (seasonal_start is not None) + [False] * len(recent))


def test_seasonal_window_left_out_when_closed_or_overlapping(
        make_history: HistoryFactory) -> None:
    n_days = 490
    start = n_days - SEASONAL_LAG_DAYS
    values = [5.0] * n_days
    closed = range(start, start + 28)  # the seasonal window's days, all closed
    for i in closed:
        values[i] = 0.0
    windows = BacktestPlan(n_windows=3).windows(make_history(values, closed=closed))
    assert len(windows) == 3
    assert windows[0].start > pd.Timestamp(day(start + 27))
    # Long recent windows reach back past a year: no seasonal window on top of them.
    history = make_history([5.0] * 900)
    long = BacktestPlan(n_windows=3, horizon_days=100)
    assert [(w.start, w.end) for w in long.windows(history)] == [
        (w.start, w.end) for w in dataclasses.replace(long, seasonal=False).windows(history)]
    assert len(long.windows(history)) == 3


@pytest.mark.parametrize("kwargs", [{"n_windows": 0}, {"horizon_days": 0},
                                    {"min_train_days": 0}])
def test_plan_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=rf"{next(iter(kwargs))} must be >= 1"):
        BacktestPlan(**kwargs)


# -- candidates -----------------------------------------------------------------------------
def test_candidate_sets_per_class() -> None:
    policy = CandidatePolicy()
    regular = [c.name for c in policy.for_class(ProductClass.HIGH_VOLUME)]
    assert regular == [*REGULAR_CANDIDATES, "prophet_holidays"]  # + the blend partner
    assert regular[0] == "seasonal_naive"  # the fallback without a backtest window
    assert "lightgbm" in regular
    assert "auto_arima" not in regular
    intermittent = [c.name for c in policy.for_class("intermittent")]
    assert intermittent == list(INTERMITTENT_CANDIDATES)
    assert "lightgbm" in intermittent
    assert [c.name for c in policy.for_class("")] == regular  # unknown class: regular
    weekly_mstl = resolve_candidate("mstl_weekly")
    assert (weekly_mstl.family, dict(weekly_mstl.params)) == (
        "mstl", {"yearly_seasonality": False})


@pytest.mark.parametrize("name", ["ensemble", "auto", "crystal_ball"])
def test_resolve_refuses(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        resolve_candidate(name)


def test_prophet_candidates_get_the_holidays_natively() -> None:
    policy = CandidatePolicy(regular=("prophet_holidays", "mstl_weekly", "lightgbm"))
    plan = FitPlan(families=(AUTO,), product_class="high_volume", country="DE",
                   subdivision="SH", regressors=("temperature_c", "public_holiday"),
                   time_limit_s=60, candidates=policy)
    by_name = {c.name: c for c in plan_candidates(plan)}
    # auto's Prophet reads no regressor: holidays come from the country calendar.
    holidays = by_name["prophet_holidays"]
    assert (holidays.family, holidays.regressors) == ("prophet", ())
    assert holidays.params == {"country": "DE", "subdivision": "SH",
                               "seasonality_mode": "multiplicative"}  # decision 027
    assert by_name["mstl_weekly"].params == {"yearly_seasonality": False}
    # The global model reads the tenant's regressors, the public holiday column included.
    assert by_name["lightgbm"].regressors == ("temperature_c", "public_holiday")
    # A forced "prophet" reads the tenant's regressors, bar the 0/1 holiday column.
    forced = plan_candidates(dataclasses.replace(plan, families=("prophet", "mstl")))
    assert forced[0].regressors == ("temperature_c",)
    assert forced[0].params["country"] == "DE"


# -- backtest and selection --------------------------------------------------------------------
def test_backtest_pools_every_window(make_history: HistoryFactory) -> None:
    pattern = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]
    history = make_history(pattern * 10)
    result = backtest_family(history, resolve_candidate("croston"),
                             BacktestPlan(n_windows=2, horizon_days=14))
    assert len(result.window_metrics) == 2
    assert set(result.predictions["window"]) == {0, 1}
    actual, forecast = result.residuals
    assert len(actual) == len(forecast) == 28
    assert result.wape == pytest.approx(np.abs(actual - forecast).sum() / actual.sum())
    assert result.seconds >= 0


def test_selects_the_family_that_knows_the_weekly_pattern(
        make_history: HistoryFactory) -> None:
    history = make_history(weekly(20))
    candidates = [resolve_candidate(n) for n in ("croston", "seasonal_naive", "tsb")]
    events: list[tuple[str, int, int]] = []
    selection = select(history, candidates, BacktestPlan(),
                       on_backtest=lambda *event: events.append(event))
    assert selection.chosen == "seasonal_naive"
    assert selection.weighting == "single"
    assert selection.wape == 0.0
    assert events == [("croston", 1, 3), ("seasonal_naive", 2, 3), ("tsb", 3, 3)]
    board = selection.leaderboard()
    assert board[0]["family"] == "seasonal_naive"
    assert board[0]["chosen"] is True
    assert board[1]["wape"] > 0.1  # a flat rate misses the weekly swing
    json.dumps(board, allow_nan=False)
    json.dumps(selection.to_dict(), allow_nan=False)
    assert selection.to_dict()["windows"][-1][1] == history[DATE].max().date().isoformat()


class _Scaled(ForecastModel):
    """Test family: forecasts its one regressor times params["factor"]."""

    family = "test_scaled"

    def _fit(self, history: pd.DataFrame, context: FitContext) -> None:
        pass

    def _predict(self, future: pd.DataFrame) -> np.ndarray:
        return future[self.regressors[0]].to_numpy(dtype=float) * float(self.params["factor"])

    def _state(self) -> dict[str, Any]:
        return {}

    def _restore(self, state: Mapping[str, Any]) -> None:
        pass


@pytest.fixture
def scaled_family(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(FAMILY_CLASSES, _Scaled.family, f"{__name__}:_Scaled")
    return _Scaled.family


def test_combination_is_chosen_when_it_backtests_better(
        make_history: HistoryFactory, scaled_family: str) -> None:
    values = weekly(20, noise=0.4)  # too noisy for the seasonal naive (WAPE ~0.45)
    history = make_history(values, truth=values)
    # One forecasts 30 % too high, one 20 % too low: neither alone is good, the
    # inverse-WAPE weighted mean (0.4 * 1.3 + 0.6 * 0.8 = 1.0) is exact.
    high = Candidate("high", scaled_family, {"factor": 1.3}, ("truth",))
    low = Candidate("low", scaled_family, {"factor": 0.8}, ("truth",))
    naive = resolve_candidate("seasonal_naive")
    selection = select(history, [naive, high, low], BacktestPlan())
    assert selection.weighting == "inverse_wape"
    assert [c.name for c, _ in selection.members] == ["low", "high"]
    assert [w for _, w in selection.members] == pytest.approx([0.6, 0.4])
    assert selection.wape == pytest.approx(0.0, abs=1e-12)
    assert selection.chosen == "ensemble(low+high)"
    board = selection.leaderboard()
    assert board[0]["family"] == "ensemble(low+high)"
    assert board[0]["chosen"] is True
    assert {r["family"] for r in board} == {"ensemble(low+high)", "low", "high",
                                            "seasonal_naive"}
    # The stored spec is an ensemble that forecasts what the backtest scored.
    spec = selection.model_spec()
    model = spec.build().fit(history)
    assert isinstance(model, EnsembleModel)
    assert model.regressors == ("truth",)
    future = pd.DataFrame({DATE: pd.date_range("2024-06-01", periods=3), CLOSED: False,
                           "truth": [10.0, 20.0, 30.0]})
    assert model.predict(future) == pytest.approx([10.0, 20.0, 30.0])


def test_no_combination_without_enough_gain(make_history: HistoryFactory,
                                            scaled_family: str) -> None:
    values = weekly(20, noise=0.1)
    history = make_history(values, truth=values)
    # Both too high: any mean of them is worse than the better one.
    high = Candidate("high", scaled_family, {"factor": 1.3}, ("truth",))
    higher = Candidate("higher", scaled_family, {"factor": 1.5}, ("truth",))
    selection = select(history, [higher, high], BacktestPlan())
    assert (selection.chosen, selection.weighting) == ("high", "single")
    assert selection.model_spec() is high


@pytest.mark.parametrize(
    ("other_factor", "chosen", "kept"),
    [
        # 5 % below the preferred one's backtest WAPE (0.095 vs 0.10): the preferred stays.
        (1.095, "pref", ("pref", "other", 0.095)),
        # 50 % below (0.05 vs 0.10): clear evidence, the other is chosen. (Both forecast
        # too high, so no combination of them beats the better one.)
        (1.05, "other", None),
        # Worse than the preferred one: the preferred is the best anyway, no override.
        (1.2, "pref", None),
    ],
)
def test_the_preferred_candidate_is_kept_unless_beaten_clearly(
        make_history: HistoryFactory, scaled_family: str, other_factor: float, chosen: str,
        kept: tuple[str, str, float] | None) -> None:
    values = weekly(20, noise=0.1)
    history = make_history(values, truth=values)
    # A forecast of truth x factor has backtest WAPE |factor - 1|.
    preferred = Candidate("pref", scaled_family, {"factor": 1.10}, ("truth",))
    other = Candidate("other", scaled_family, {"factor": other_factor}, ("truth",))
    selection = select(history, [other, preferred], BacktestPlan(), prefer="pref")
    assert (selection.chosen, selection.weighting) == (chosen, "single")
    if kept is None:
        assert selection.kept_preferred is None
    else:
        assert selection.kept_preferred is not None
        assert selection.kept_preferred[:2] == kept[:2]
        assert selection.kept_preferred[2] == pytest.approx(kept[2])
        assert selection.to_dict()["kept_preferred"]["over"] == "other"
    expected = {"pref": 0.10, "other": abs(other_factor - 1)}[chosen]
    assert selection.wape == pytest.approx(expected)
    # The quantile calibration reads the chosen model's backtest forecasts.
    assert np.sum(np.abs(selection.actual - selection.predicted)) / np.sum(
        selection.actual) == pytest.approx(expected)
    assert ("kept_preferred" in selection.to_dict()) == (kept is not None)
    assert next(r for r in selection.leaderboard() if r.get("chosen"))["family"] == chosen
    # Without a preference the lowest WAPE decides.
    plain = select(history, [other, preferred], BacktestPlan())
    assert plain.chosen == min(("pref", 0.10), ("other", abs(other_factor - 1)),
                               key=lambda pair: pair[1])[0]


def test_a_clearly_better_combination_beats_the_preferred_candidate(
        make_history: HistoryFactory, scaled_family: str) -> None:
    values = weekly(20, noise=0.1)
    history = make_history(values, truth=values)
    high = Candidate("high", scaled_family, {"factor": 1.3}, ("truth",))
    low = Candidate("low", scaled_family, {"factor": 0.8}, ("truth",))
    preferred = Candidate("pref", scaled_family, {"factor": 1.05}, ("truth",))
    selection = select(history, [high, low, preferred], BacktestPlan(), prefer="pref")
    # The best single (pref, 0.05) and the exact combination of high and low (0.0):
    # combinations only take the top 3, which here are all three.
    assert selection.weighting != "single"
    assert selection.kept_preferred is None
    assert selection.wape < 0.05 * (1 - 0.10)


def _backtest(name: str, actual: list[list[float]], forecast: list[list[float]]
              ) -> FamilyBacktest:
    """A finished backtest of one candidate: window i has days actual[i], forecast[i]."""
    parts = [pd.DataFrame({WINDOW: index, DATE: pd.date_range("2024-01-01", periods=len(y)),
                           Y: y, CLOSED: False, YHAT: f})
             for index, (y, f) in enumerate(zip(actual, forecast, strict=True))]
    predictions = pd.concat(parts, ignore_index=True)
    y_all = predictions[Y].to_numpy(dtype=float)
    wape = float(np.abs(y_all - predictions[YHAT]).sum() / y_all.sum())
    return FamilyBacktest(candidate=Candidate(name, "seasonal_naive"), wape=wape,
                          window_metrics=(), predictions=predictions, seconds=0.0)


@pytest.mark.parametrize(
    ("other_errors", "chosen", "won"),
    [
        # Exact in the big window only, worse in the two others: its pooled WAPE (40 /
        # 1200) is far below the preferred one's (0.10), yet it wins 1 window of 3.
        ([0.0, 0.2, 0.2], "pref", (1, 3)),
        # Better in 2 of 3 windows and pooled: clear evidence.
        ([0.0, 0.05, 0.2], "other", None),
    ],
)
def test_the_preferred_candidate_is_kept_unless_beaten_in_most_windows(
        other_errors: list[float], chosen: str, won: tuple[int, int] | None) -> None:
    actual = [[100.0] * 10, [10.0] * 10, [10.0] * 10]
    preferred = _backtest("pref", actual, [[v * 1.1 for v in w] for w in actual])
    other = _backtest("other", actual, [[v * (1 + e) for v in w]
                                        for w, e in zip(actual, other_errors, strict=True)])
    assert other.wape < preferred.wape * (1 - 0.10)
    choice = choose([other, preferred], combine_top=1, prefer="pref")
    assert choice.members[0][0].name == chosen
    assert choice.windows_won == won
    assert (choice.kept_preferred is not None) == (won is not None)
    # Without a preference the lowest pooled WAPE decides, as before.
    assert choose([other, preferred], combine_top=1).members[0][0].name == "other"
    assert windows_won(other.predictions, other.predictions[YHAT].to_numpy(),
                       preferred.predictions[YHAT].to_numpy()) == (
        won or (2, 3))


def test_the_preferred_candidate_is_blended_with_the_yearly_family() -> None:
    actual = [[100.0] * 10, [50.0] * 10, [80.0] * 10]
    # The global model 10 % high, the partner 20 % low: the blend is better than either.
    preferred = _backtest("lightgbm", actual, [[v * 1.1 for v in w] for w in actual])
    partner = _backtest("yearly", actual, [[v * 0.8 for v in w] for w in actual])
    choice = choose([partner, preferred], prefer="lightgbm", blend="yearly")
    assert choice.weighting == "blend"
    inverse = (1 / 0.2) / (1 / 0.2 + 1 / 0.1)
    weight = 0.5 * inverse + 0.25  # shrunk halfway toward equal weights
    assert [(c.name, w) for c, w in choice.members] == [
        ("lightgbm", pytest.approx(1 - weight)), ("yearly", pytest.approx(weight))]
    assert choice.wape == pytest.approx(abs((1 - weight) * 0.1 - weight * 0.2))
    assert choice.kept_preferred is None
    # Without a preference (a list of named families) there is no blend.
    assert choose([partner, preferred], blend="yearly").weighting != "blend"


def test_the_blend_partner_is_never_chosen_alone_and_loses_its_weight_when_it_fails(
        ) -> None:
    actual = [[100.0] * 10, [50.0] * 10, [80.0] * 10]
    preferred = _backtest("lightgbm", actual, [[v * 1.1 for v in w] for w in actual])
    # Far better than the preferred one: still only a blend member.
    good = _backtest("yearly", actual, [[v * 0.99 for v in w] for w in actual])
    assert choose([good, preferred], prefer="lightgbm", blend="yearly").weighting == "blend"
    # Pooled WAPE more than BLEND_FAIL_RATIO (2) times the preferred one's: weight 0.
    bad = _backtest("yearly", actual, [[v * 0.75 for v in w] for w in actual])
    assert bad.wape > BLEND_FAIL_RATIO * preferred.wape
    choice = choose([bad, preferred], prefer="lightgbm", blend="yearly")
    assert (choice.weighting, choice.members[0][0].name) == ("single", "lightgbm")


def test_the_blend_partner_runs_on_the_seasonal_and_latest_windows_only(
        make_history: HistoryFactory) -> None:
    history = make_history(weekly(80, noise=0.1))  # 560 days: the seasonal window too
    windows = BacktestPlan().windows(history)
    assert [w.seasonal for w in windows] == [True] + [False] * 6
    assert partner_windows(windows) == [0, 5, 6]
    assert partner_windows(BacktestPlan(seasonal=False).windows(history)) == [4, 5]
    assert partner_windows(windows[-1:]) == [0]
    selection = select(history, [resolve_candidate("tsb"), resolve_candidate("seasonal_naive")],
                       BacktestPlan(), prefer="tsb", blend="seasonal_naive")
    by_name = {b.family: b for b in selection.backtests}
    assert sorted(by_name["seasonal_naive"].predictions[WINDOW].unique()) == [0, 5, 6]
    assert sorted(by_name["tsb"].predictions[WINDOW].unique()) == list(range(7))
    # Without a preference the named family is an ordinary candidate on every window.
    plain = select(history, [resolve_candidate("tsb"), resolve_candidate("seasonal_naive")],
                   BacktestPlan(), blend="seasonal_naive")
    assert all(len(b.predictions[WINDOW].unique()) == 7 for b in plain.backtests)


def test_a_blend_weighs_and_calibrates_on_the_partners_windows_only() -> None:
    actual = [[100.0] * 10, [50.0] * 10, [80.0] * 10]
    # The preferred one is exact in window 0 and 10 % high in windows 1 and 2, where the
    # partner ran (20 % low).
    preferred = _backtest("lightgbm", actual,
                          [[v * (1.0 if i == 0 else 1.1) for v in w]
                           for i, w in enumerate(actual)])
    full = _backtest("yearly", actual, [[v * 0.8 for v in w] for w in actual])
    rows = full.predictions[WINDOW].isin([1, 2]).to_numpy()
    partner = dataclasses.replace(full, predictions=full.predictions.loc[rows],
                                  wape=0.2)
    choice = choose([partner, preferred], prefer="lightgbm", blend="yearly")
    inverse = (1 / 0.2) / (1 / 0.2 + 1 / 0.1)  # against the preferred one's 0.1 there
    weight = 0.5 * inverse + 0.25
    assert [(c.name, w) for c, w in choice.members] == [
        ("lightgbm", pytest.approx(1 - weight)), ("yearly", pytest.approx(weight))]
    # Window 0 keeps the preferred forecast (exact); the others are blended.
    blended_error = abs((1 - weight) * 0.1 - weight * 0.2)
    assert choice.wape == pytest.approx(blended_error * 130 / 230)
    # The quantiles are calibrated on the blended windows' days only.
    assert len(choice.actual) == 20
    assert choice.predicted == pytest.approx(
        np.array([50.0] * 10 + [80.0] * 10) * (1 + (1 - weight) * 0.1 - weight * 0.2))


def test_regular_products_backtest_the_blend_partner() -> None:
    policy = CandidatePolicy()
    assert [c.name for c in policy.for_class("high_volume")][-1] == "prophet_holidays"
    assert policy.blend_for("high_volume") == "prophet_holidays"
    assert policy.blend_for(ProductClass.INTERMITTENT) is None
    assert "prophet_holidays" not in [c.name for c in policy.for_class("intermittent")]
    assert CandidatePolicy(blend_regular=None).blend_for("high_volume") is None


def test_every_product_class_prefers_the_global_model() -> None:
    policy = CandidatePolicy()
    assert policy.preferred_for(ProductClass.HIGH_VOLUME) == "lightgbm"
    assert policy.preferred_for("medium_volume") == "lightgbm"
    assert policy.preferred_for("") == "lightgbm"  # unknown: treated as regular
    assert policy.preferred_for(ProductClass.INTERMITTENT) == "lightgbm"
    assert CandidatePolicy(prefer_regular=None).preferred_for("high_volume") is None
    assert CandidatePolicy(prefer_intermittent=None).preferred_for("intermittent") is None
    assert CandidatePolicy(prefer_intermittent=None).preferred_for("low_volume") == "lightgbm"


def test_failed_candidates_are_reported_not_fatal(make_history: HistoryFactory,
                                                  scaled_family: str) -> None:
    history = make_history(weekly(20))
    broken = Candidate("broken", scaled_family, {"factor": 1.0}, ("no_such_column",))
    selection = select(history, [broken, resolve_candidate("seasonal_naive")], BacktestPlan())
    assert selection.chosen == "seasonal_naive"
    assert "no_such_column" in selection.errors["broken"]
    assert selection.leaderboard()[-1]["family"] == "broken"
    with pytest.raises(NoCandidate):
        select(history, [broken], BacktestPlan())


def test_too_short_for_a_backtest(make_history: HistoryFactory) -> None:
    with pytest.raises(NoBacktestWindow, match="open days"):
        select(make_history([5.0] * 40), [resolve_candidate("seasonal_naive")], BacktestPlan())


# -- the key property: selection never sees the holdout ---------------------------------------
def _without_timings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_selection_never_looks_at_the_holdout(make_history: HistoryFactory) -> None:
    values = weekly(40, noise=0.15, seed=5)
    history = make_history(values)
    holdout = HoldoutSplit()
    changed = history.copy()
    in_holdout = changed[DATE] >= holdout.cutoff(changed)
    # A holdout nothing like the past: a flat level far above it, then zeros.
    rng = np.random.default_rng(9)
    changed.loc[in_holdout, Y] = rng.uniform(0.0, 500.0, size=int(in_holdout.sum()))
    plan = FitPlan(families=("seasonal_naive", "auto_ets", "croston", "mstl_weekly"),
                   product_class="medium_volume", country=None, subdivision=None,
                   regressors=(), time_limit_s=600, holdout=holdout)
    first = fit_product(history, plan)
    second = fit_product(changed, plan)

    assert first.details["selection"] == second.details["selection"]
    assert _without_timings(first.leaderboard) == _without_timings(second.leaderboard)
    assert first.best.family == second.best.family
    assert first.best.model.params == second.best.model.params
    quantiles = [{k: v for k, v in r.details["quantiles"].items() if k != "holdout_coverage"}
                 for r in (first, second)]
    assert quantiles[0] == quantiles[1]
    # ...while the holdout itself did change what the choice scores there.
    assert first.best.metrics.wape != pytest.approx(second.best.metrics.wape)
    assert first.details["selection"]["basis"] == "backtest"
    last_window_end = first.details["selection"]["windows"][-1][1]
    assert pd.Timestamp(last_window_end) < holdout.cutoff(history)


def test_auto_short_history_falls_back_to_the_first_candidate(
        make_history: HistoryFactory) -> None:
    history = make_history(weekly(9))  # 63 days: 35 before the holdout, no window
    plan = FitPlan(families=(AUTO,), product_class="medium_volume", country=None,
                   subdivision=None, regressors=(), time_limit_s=600)
    result = fit_product(history, plan)
    assert result.details["selection"]["basis"] == "none"
    assert result.best.family == "seasonal_naive"
    assert result.details["quantiles"]["source"] == "holdout"
    assert math.isfinite(result.best.metrics.wape)


def test_fit_product_emits_backtest_progress(make_history: HistoryFactory) -> None:
    events: list[ProductEvent] = []
    plan = FitPlan(families=("seasonal_naive", "croston"), product_class="medium_volume",
                   country=None, subdivision=None, regressors=(), time_limit_s=600,
                   context=FitContext(product="bread"), job_id=7)
    result = fit_product(make_history(weekly(30, noise=0.1)), plan, emit=events.append)
    assert [e for e in events if isinstance(e, Backtest)] == [
        Backtest(job_id=7, product="bread", family="seasonal_naive", n=1, total=2),
        Backtest(job_id=7, product="bread", family="croston", n=2, total=2)]
    assert result.details["quantiles"]["source"] == "backtest"
    json.dumps(result.details, allow_nan=False)


def test_an_intermittent_product_keeps_the_global_model_unless_beaten_clearly() -> None:
    """Under `auto` an intermittent product prefers LightGBM as a regular one does
    (decision 029); a named list of the same candidates takes the lowest WAPE."""
    rng = np.random.default_rng(3)
    sold = rng.binomial(1, 0.3, 420) * rng.integers(1, 4, 420)  # ADI about 3
    history = pd.DataFrame({DATE: pd.date_range("2024-01-01", periods=420), Y: sold * 1.0,
                            CLOSED: False})

    def selection(families: tuple[str, ...]) -> dict[str, Any]:
        plan = FitPlan(families=families, product_class=ProductClass.INTERMITTENT,
                       country=None, subdivision=None, regressors=(), time_limit_s=600)
        return fit_product(history, plan).details["selection"]

    named = selection(INTERMITTENT_CANDIDATES)
    assert named["chosen"] == "seasonal_naive"  # backtests about 2 % better than LightGBM
    assert "kept_preferred" not in named
    kept = selection((AUTO,))
    assert kept["chosen"] == "lightgbm"
    assert kept["kept_preferred"]["over"] == "seasonal_naive"
