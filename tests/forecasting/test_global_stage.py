"""The tenant stage (forecasting/global_stage.py): which cut-offs it trains boosters at,
when a job needs it, and that with it selection still never looks at the holdout."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ovencast.forecasting.families import lightgbm_global
from ovencast.forecasting.families.base import FitContext
from ovencast.forecasting.families.global_fits import GlobalFits, PartnerWeight
from ovencast.forecasting.families.lightgbm_global import LOCAL_PRODUCT, LightGBMModel
from ovencast.forecasting.families.registry import load_model
from ovencast.forecasting.frame import CLOSED, DATE, Y
from ovencast.forecasting.global_stage import (
    ADOPT_WITHIN_DAYS,
    HORIZON_WEIGHTS,
    cutoffs_of,
    final_cutoffs,
    needs_global_stage,
    plan_cutoffs,
    train_tenant_models,
    weigh_partner,
)
from ovencast.forecasting.holdout import HoldoutSplit
from ovencast.forecasting.selection import (
    AUTO,
    BacktestPlan,
    partner_weight,
    partner_windows,
    resolve_candidate,
)
from ovencast.training.fitting import fit_product
from ovencast.training.plan import FitPlan, FitResult

from .conftest import HistoryFactory

WEEK = np.array([60.0, 70.0, 75.0, 80.0, 95.0, 130.0, 90.0])  # Monday .. Sunday
N_DAYS = 500  # 2024-01-01 .. 2025-05-14


def day(offset: int) -> pd.Timestamp:
    return pd.Timestamp("2024-01-01") + pd.Timedelta(days=offset)


def weekly(n_days: int, *, level: float = 1.0, noise: float = 0.15, seed: int = 0,
           closed: tuple[int, ...] = ()) -> list[float | None]:
    rng = np.random.default_rng(seed)
    values = np.tile(WEEK, n_days // 7 + 1)[:n_days] * level * rng.normal(1.0, noise, n_days)
    values = np.clip(values, 0.0, None)
    values[list(closed)] = 0.0
    return [float(v) for v in values]


# -- cut-offs ---------------------------------------------------------------------------------
# With 500 days, the 28-day holdout starts on day 472; the backtest of days 0..471 has the
# recent windows 388..415, 416..443, 444..471 and the seasonal window 108..135. Each of the
# training parts below ends on a closed day, bar the one ending on day 415 (387 is open).
ENDS_CLOSED = (107, 443, 471, 499)


def test_cutoffs_are_the_last_open_day_of_every_training_part(
        make_history: HistoryFactory) -> None:
    history = make_history(weekly(N_DAYS, closed=ENDS_CLOSED), closed=ENDS_CLOSED)
    holdout, backtest = HoldoutSplit(), BacktestPlan(n_windows=3)
    found = sorted(cutoffs_of(history, holdout=holdout, backtest=backtest))
    assert found == [day(106), day(387), day(415), day(442), day(470), day(498)]
    # The final fit's cut-off is the only one inside the holdout.
    assert found[-1] == pd.Timestamp(history.loc[~history[CLOSED], DATE].max())
    assert all(c < holdout.cutoff(history) for c in found[:-1])
    # The holdout's training part and each backtest window's: one cut-off each.
    train, _ = holdout.split(history)
    windows = backtest.windows(train)
    assert len(windows) == 4
    for window in windows:
        open_rows = window.train.loc[~window.train[CLOSED]]
        assert pd.Timestamp(open_rows[DATE].max()) in found
    # Without the seasonal window, its cut-off is not asked for.
    recent = BacktestPlan(n_windows=3, seasonal=False)
    assert sorted(cutoffs_of(history, holdout=holdout, backtest=recent)) == found[1:]


def test_cutoffs_of_short_and_empty_histories(make_history: HistoryFactory) -> None:
    assert cutoffs_of(make_history([]), holdout=HoldoutSplit(),
                      backtest=BacktestPlan()) == set()
    # 60 days: no backtest window, only the holdout's and the final fit's cut-offs.
    short = make_history(weekly(60))
    assert sorted(cutoffs_of(short, holdout=HoldoutSplit(), backtest=BacktestPlan())) == [
        day(31), day(59)]


@pytest.mark.parametrize(("families", "expected"), [
    ((AUTO,), True),
    (("lightgbm",), True),
    (("mstl", "lightgbm"), True),
    (("mstl",), False),
    (("mstl_weekly", "seasonal_naive"), False),
    (("prophet",), False),
])
def test_needs_global_stage(families: tuple[str, ...], expected: bool) -> None:
    assert needs_global_stage(families) is expected


def test_tenant_models_cover_every_products_cutoffs(make_history: HistoryFactory) -> None:
    histories = {"bread": make_history(weekly(N_DAYS, closed=ENDS_CLOSED), closed=ENDS_CLOSED),
                 # a newer product: 200 days, ending on the same day
                 "cake": make_history(weekly(200, level=2.0, seed=1),
                                      start=day(N_DAYS - 200).date().isoformat())}
    fits = train_tenant_models(histories, ())
    wanted: set[pd.Timestamp] = set()
    for history in histories.values():
        wanted |= cutoffs_of(history, holdout=HoldoutSplit(), backtest=BacktestPlan())
    # Bread's parts end on closed days, a day before cake's: cake's final cut-off adopts
    # bread's (a day older), and every needed cut-off has a booster no older than the
    # reach, never a later one.
    assert set(fits.boosters) | set(fits.aliases) == {c.date().isoformat() for c in wanted}
    assert not set(fits.boosters) & set(fits.aliases)
    assert fits.aliases[day(N_DAYS - 1).date().isoformat()] == day(N_DAYS - 2).date().isoformat()
    for cutoff, trained in fits.aliases.items():
        assert 0 < (pd.Timestamp(cutoff) - pd.Timestamp(trained)).days <= ADOPT_WITHIN_DAYS
        assert trained in fits.boosters
    assert fits.products == ("bread", "cake")
    assert fits.summary()["products"] == 2

    # A job for cake alone: boosters at cake's cut-offs only, trained on both products.
    only_cake = train_tenant_models(histories, (), cutoffs_for=["cake"])
    cake_cutoffs = cutoffs_of(histories["cake"], holdout=HoldoutSplit(),
                              backtest=BacktestPlan())
    assert sorted(only_cake.boosters) == sorted(c.date().isoformat() for c in cake_cutoffs)
    assert only_cake.aliases == {}
    assert cake_cutoffs < wanted
    assert only_cake.products == ("bread", "cake")


def iso(offset: int) -> str:
    return day(offset).date().isoformat()


def test_the_shared_cutoffs_are_trained_and_the_others_adopt_one_within_reach() -> None:
    assert ADOPT_WITHIN_DAYS == 28
    shared = {day(100), day(128), day(156)}
    plan = plan_cutoffs([shared, shared, shared,
                         {day(110), day(138)},  # 10 days after two shared: adopts them
                         {day(20)}, {day(40)}, {day(60)}])  # single ends before them all
    trained, aliases = plan
    # 40 is within reach of 20 (oldest first: the interval cover), 60 is not (40 was
    # not trained).
    assert trained == [day(20), day(60), day(100), day(128), day(156)]
    assert aliases == {iso(110): iso(100), iso(138): iso(128), iso(40): iso(20)}
    # Only ever an earlier booster: a cut-off before every trained one is trained.
    assert plan_cutoffs([{day(50)}, {day(50)}, {day(49)}]) == ([day(49), day(50)], {})
    # Never one of the product's own: its windows (and final fit) keep their boosters.
    assert plan_cutoffs([{day(10), day(30)}]) == ([day(10), day(30)], {})
    # Two products a day apart: one set trained, the other adopts it a day older.
    assert plan_cutoffs([{day(10), day(38)}, {day(11), day(39)}]) == (
        [day(10), day(38)], {iso(11): iso(10), iso(39): iso(38)})
    assert plan_cutoffs([]) == ([], {})


def test_a_product_ending_on_a_day_of_its_own_adopts_the_shared_boosters(
        make_history: HistoryFactory) -> None:
    holdout, backtest = HoldoutSplit(), BacktestPlan()
    histories = {"bread": make_history(weekly(N_DAYS)),
                 "rolls": make_history(weekly(N_DAYS, level=1.5, seed=2)),
                 # discontinued 20 days before the others' end
                 "cake": make_history(weekly(N_DAYS - 20, level=2.0, seed=1))}
    fits = train_tenant_models(histories, (), holdout=holdout, backtest=backtest)
    shared = {c.date().isoformat() for c in cutoffs_of(histories["bread"], holdout=holdout,
                                                       backtest=backtest)}
    own = {c.date().isoformat() for c in cutoffs_of(histories["cake"], holdout=holdout,
                                                    backtest=backtest)}
    # Cake's cut-offs adopt the shared ones 8 days before them, bar the two with none
    # before them (its seasonal window's, day 87, and its oldest recent window's, 283:
    # the others' are 107 and 303), which are trained.
    oldest = {iso(87), iso(283)}
    assert oldest < own
    assert set(fits.aliases) == own - oldest
    assert set(fits.boosters) == shared | oldest
    assert fits.aliases[iso(N_DAYS - 21)] == iso(N_DAYS - 29)
    assert GlobalFits.from_bytes(fits.to_bytes()).aliases == fits.aliases
    assert fits.summary()["adopted_cutoffs"] == len(own) - 2

    # Cake's final model adopts that booster, and its serving copy holds it.
    model = LightGBMModel()
    model.fit(histories["cake"], context=FitContext(product="cake", global_fits=fits))
    assert model.adopted
    assert model._state()["booster"] == fits.boosters[iso(N_DAYS - 29)]
    assert sorted(fits.serving_copy(final_cutoffs(histories)).boosters) == [
        iso(N_DAYS - 29), iso(N_DAYS - 1)]
    # Its backtest windows are forecast from the adopted boosters, as fitting each
    # window with them gives.
    train, _ = holdout.split(histories["cake"])
    windows = backtest.windows(train)
    context = FitContext(product="cake", global_fits=fits)
    at_once = LightGBMModel().backtest_forecasts(windows, context=context)
    assert all(forecast is not None for forecast in at_once)
    for window, forecast in zip(windows, at_once, strict=True):
        one = LightGBMModel()
        one.fit(window.train, context=context)
        assert one.adopted
        np.testing.assert_allclose(forecast, one.predict(window.test))


# -- the two members and their weight -------------------------------------------------------
def test_the_horizon_members_weight_is_the_best_on_the_pooled_backtests(
        make_history: HistoryFactory) -> None:
    holdout, backtest = HoldoutSplit(), BacktestPlan()
    histories = _histories(make_history)
    fits = train_tenant_models(histories, (), holdout=holdout, backtest=backtest)
    assert fits.horizon is not None
    evidence = fits.horizon.evidence
    assert set(evidence) == {f"{w:g}" for w in HORIZON_WEIGHTS}
    assert evidence[f"{fits.horizon.weight:g}"] == min(evidence.values())

    # Recomputed independently: every product's backtest windows, pooled, each member
    # alone (weight 0: the level member; weight 1: the horizon member).
    y, by_weight = [], {0.0: [], 1.0: []}
    for weight, forecasts in by_weight.items():
        weighed = fits.with_horizon_weight(weight, {})
        for product, history in histories.items():
            train, _ = holdout.split(history)
            for window in backtest.windows(train):
                test = window.test.loc[~window.test[CLOSED]]
                model = LightGBMModel().fit(window.train, context=FitContext(
                    product=product, global_fits=weighed))
                assert model.adopted
                assert model.horizon_weight == weight
                forecasts.append(model.predict(test))
                if weight == 0.0:
                    y.append(test[Y].to_numpy())
    actual = np.concatenate(y)
    for weight, forecasts in by_weight.items():
        pooled = np.abs(actual - np.concatenate(forecasts)).sum() / actual.sum()
        assert evidence[f"{weight:g}"] == pytest.approx(pooled)


def test_a_blended_model_forecasts_the_weighted_members(make_history: HistoryFactory) -> None:
    histories = _histories(make_history)
    history = histories["bread"]
    train, test = history.iloc[:-28], history.iloc[-28:]
    fits = train_tenant_models({p: h.iloc[:-28] for p, h in histories.items()}, ()
                               ).with_horizon_weight(0.25, {})
    model = LightGBMModel().fit(train, context=FitContext(product="bread", global_fits=fits))
    level, horizon = model.member_forecasts(test)
    assert horizon is not None
    assert not np.allclose(level, horizon)
    expected = np.where(test[CLOSED], 0.0, 0.75 * level + 0.25 * horizon)
    np.testing.assert_allclose(model.predict(test), expected)
    # Stored and loaded, it forecasts the same; a weight-0 model stores no second member.
    restored = load_model(model.to_bytes())
    np.testing.assert_allclose(restored.predict(test), model.predict(test))
    alone = LightGBMModel().fit(train, context=FitContext(
        product="bread", global_fits=fits.with_horizon_weight(0.0, {})))
    assert b'"horizon":null' in alone.to_bytes()
    np.testing.assert_allclose(alone.predict(test), np.where(test[CLOSED], 0.0, level))


# -- the key property, with the tenant stage: selection never sees the holdout ------------------
PRODUCTS = {"bread": (1.0, 5), "cake": (0.4, 6), "rolls": (2.5, 7)}
STAGE_CLOSED = (50, 200, 443, 471, 480)  # 480: inside the holdout


def _histories(make_history: HistoryFactory) -> dict[str, pd.DataFrame]:
    return {product: make_history(weekly(N_DAYS, level=level, seed=seed, closed=STAGE_CLOSED),
                                  closed=STAGE_CLOSED)
            for product, (level, seed) in PRODUCTS.items()}


def _with_other_holdout(history: pd.DataFrame, holdout: HoldoutSplit, seed: int
                        ) -> pd.DataFrame:
    """A holdout nothing like the past: uniform noise on its open days."""
    changed = history.copy()
    inside = (changed[DATE] >= holdout.cutoff(changed)) & ~changed[CLOSED]
    rng = np.random.default_rng(seed)
    changed.loc[inside, Y] = rng.uniform(0.0, 500.0, size=int(inside.sum()))
    return changed


def _train_tenant(histories: dict[str, pd.DataFrame], holdout: HoldoutSplit
                  ) -> tuple[GlobalFits, dict[str, FitResult]]:
    fits = train_tenant_models(histories, (), holdout=holdout)
    results = {}
    for product, history in histories.items():
        plan = FitPlan(families=(AUTO,), product_class="high_volume", country=None,
                       subdivision=None, regressors=(), time_limit_s=600, holdout=holdout,
                       context=FitContext(product=product, global_fits=fits))
        results[product] = fit_product(history, plan)
    return fits, results


def _without_timings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_selection_never_looks_at_the_holdout_with_the_global_stage(
        make_history: HistoryFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every lightgbm fit of a product must adopt a tenant booster: a fit on the product
    # alone would also never see the holdout, and the test would prove nothing.
    local_fits: list[pd.Timestamp] = []
    fit_booster: Callable[..., Any] = lightgbm_global.fit_booster

    def spy(*args: Any, **kwargs: Any) -> Any:
        if tuple(kwargs["products"]) == (LOCAL_PRODUCT,):  # not the tenant stage's
            local_fits.append(kwargs["cutoff"])
        return fit_booster(*args, **kwargs)

    monkeypatch.setattr(lightgbm_global, "fit_booster", spy)
    holdout = HoldoutSplit()
    histories = _histories(make_history)
    first_fits, first = _train_tenant(histories, holdout)
    changed = {p: _with_other_holdout(h, holdout, seed)
               for seed, (p, h) in enumerate(histories.items())}
    second_fits, second = _train_tenant(changed, holdout)
    assert local_fits == []

    # Only the final fit's booster (its cut-off inside the holdout) saw the change.
    final = max(first_fits.boosters)
    assert sorted(first_fits.boosters) == sorted(second_fits.boosters)
    assert first_fits.boosters[final] != second_fits.boosters[final]
    assert {c: t for c, t in first_fits.boosters.items() if c != final} == {
        c: t for c, t in second_fits.boosters.items() if c != final}
    assert all(pd.Timestamp(c) < holdout.cutoff(histories["bread"])
               for c in first_fits.boosters if c != final)
    # The members were weighed on the backtest windows only: same weight, same evidence.
    assert first_fits.horizon is not None
    assert second_fits.horizon is not None
    assert first_fits.horizon.evidence == second_fits.horizon.evidence
    assert first_fits.horizon.weight == second_fits.horizon.weight

    for product in PRODUCTS:
        before, after = first[product], second[product]
        assert before.details["selection"]["basis"] == "backtest"
        assert before.details["selection"] == after.details["selection"]
        assert (before.details["selection"]["chosen"]
                == after.details["selection"]["chosen"])
        assert _without_timings(before.leaderboard) == _without_timings(after.leaderboard)
        wapes = {row["family"]: row.get("wape") for row in before.leaderboard}
        assert wapes.get("lightgbm") is not None, before.leaderboard  # it was backtested
        assert before.best.family == after.best.family
        quantiles = [{k: v for k, v in r.details["quantiles"].items()
                      if k != "holdout_coverage"} for r in (before, after)]
        assert quantiles[0] == quantiles[1]
        # ...while the holdout itself did change what the choice scores there.
        assert before.best.metrics.wape != pytest.approx(after.best.metrics.wape)
        last_window_end = before.details["selection"]["windows"][-1][1]
        assert pd.Timestamp(last_window_end) < holdout.cutoff(histories[product])


# -- a large tenant's blend partner, weighed once ---------------------------------------------
def test_a_tenants_partner_weight_pools_its_products_partner_windows(
        make_history: HistoryFactory) -> None:
    holdout, backtest = HoldoutSplit(), BacktestPlan()
    histories = _histories(make_history)
    fits = train_tenant_models(histories, (), holdout=holdout, backtest=backtest)
    preferred, partner = resolve_candidate("lightgbm"), resolve_candidate("prophet_holidays")
    weighed = weigh_partner(fits, histories, preferred=preferred, partner=partner,
                            holdout=holdout, backtest=backtest, workers=2)
    found = weighed.partner
    assert found is not None
    assert (found.partner, found.products) == ("prophet_holidays", len(PRODUCTS))

    # Recomputed independently: both models fitted on every product's partner windows
    # (the seasonal window and the latest ones), open days pooled over the products.
    y, own, other = [], [], []
    for product, history in histories.items():
        train, _ = holdout.split(history)
        windows = backtest.windows(train)
        for index in partner_windows(windows):
            window = windows[index]
            test = window.test.loc[~window.test[CLOSED]]
            context = FitContext(product=product, global_fits=fits)
            own.append(preferred.build().fit(window.train, context=context).predict(test))
            other.append(partner.build().fit(window.train).predict(test))
            y.append(test[Y].to_numpy())
    actual = np.concatenate(y)
    own_wape = np.abs(actual - np.concatenate(own)).sum() / actual.sum()
    partner_wape = np.abs(actual - np.concatenate(other)).sum() / actual.sum()
    assert found.own_wape == pytest.approx(own_wape, abs=1e-6)
    assert found.partner_wape == pytest.approx(partner_wape, abs=1e-6)
    assert found.weight == pytest.approx(partner_weight(partner_wape, own_wape), abs=1e-5)
    assert 0.25 <= found.weight <= 0.75
    # It travels with the boosters, and the job's record shows it.
    assert GlobalFits.from_bytes(weighed.to_bytes()).partner == found
    assert weighed.summary()["partner"] == found.to_dict()


def test_a_partner_that_fails_everywhere_leaves_the_products_to_weigh_their_own(
        make_history: HistoryFactory) -> None:
    histories = _histories(make_history)
    fits = train_tenant_models(histories, ())
    partner = resolve_candidate("prophet_holidays")
    broken = dataclasses.replace(  # every fit raises
        partner, params={**partner.params, "seasonality_mode": "neither"})
    weighed = weigh_partner(fits, histories, preferred=resolve_candidate("lightgbm"),
                            partner=broken, holdout=HoldoutSplit(), backtest=BacktestPlan())
    assert weighed.partner is None


@pytest.mark.parametrize("weight", [0.4, 0.0])
def test_a_product_of_a_large_tenant_blends_at_the_tenants_weight_without_backtesting_it(
        make_history: HistoryFactory, weight: float) -> None:
    histories = _histories(make_history)
    fits = train_tenant_models(histories, ()).with_partner(PartnerWeight(
        partner="prophet_holidays", weight=weight, products=3, partner_wape=0.2,
        own_wape=0.18))
    plan = FitPlan(families=(AUTO,), product_class="high_volume", country=None,
                   subdivision=None, regressors=(), time_limit_s=600,
                   context=FitContext(product="bread", global_fits=fits))
    result = fit_product(histories["bread"], plan)

    selection = result.details["selection"]
    assert selection["tenant_blend"]["weight"] == weight
    # The partner was not backtested for this product: not on its leaderboard.
    assert "prophet_holidays" not in {row["family"] for row in result.leaderboard}
    members = {m["name"]: m["weight"] for m in selection["members"]}
    if weight:
        assert members == {"lightgbm": pytest.approx(1 - weight),
                           "prophet_holidays": pytest.approx(weight)}
        assert result.best.family == "ensemble"
    else:
        assert members == {"lightgbm": 1.0}
        assert result.best.family == "lightgbm"
