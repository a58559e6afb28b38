"""The global LightGBM family: one product's fit and forecast, the artifact round trip,
forecasts beyond the 28-day direct horizon, and the tenant stage's boosters adopted by a
product's fit (families/lightgbm_global.py)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ovencast.forecasting.families import FitContext, load_model
from ovencast.forecasting.families import lightgbm_global as lightgbm
from ovencast.forecasting.families.global_fits import LEGACY_SALES_FEATURES, GlobalFits
from ovencast.forecasting.families.lightgbm_global import (
    LOCAL_PRODUCT,
    MIN_LAG_DAYS,
    LightGBMModel,
    train_global,
)
from ovencast.forecasting.frame import CLOSED, DATE, Y
from ovencast.forecasting.global_stage import train_tenant_models
from ovencast.forecasting.holdout import HoldoutSplit
from ovencast.forecasting.selection import BacktestPlan

from ..conftest import HistoryFactory

REGRESSORS = ("temperature_c",)
SHAPE = np.array([60.0, 70.0, 75.0, 80.0, 95.0, 130.0, 90.0])  # Monday .. Sunday
N_DAYS = 490  # 2024-01-01 (a Monday) .. 2025-05-04
TRAIN_DAYS = 430
CLOSED_DAYS = (45, 120, 200, 299, 358, 359, 429, 440, 455)  # 429: the last training day


def series(*, level: float = 1.0, seed: int = 3, n_days: int = N_DAYS
           ) -> tuple[list[float | None], list[float]]:
    """(sales, temperature): a weekly pattern with noise, a little warmer-is-busier, 0
    on the closed days."""
    rng = np.random.default_rng(seed)
    temperature = 10.0 + 8.0 * np.sin(np.arange(n_days) / 20.0)
    values = (np.tile(SHAPE, n_days // 7 + 1)[:n_days] * level
              * (1.0 + 0.01 * temperature) * rng.normal(1.0, 0.08, size=n_days))
    values[list(CLOSED_DAYS)] = 0.0
    return [float(v) for v in values], [float(t) for t in temperature]


@pytest.fixture
def history(make_history: HistoryFactory) -> pd.DataFrame:
    values, temperature = series()
    return make_history(values, closed=CLOSED_DAYS, temperature_c=temperature)


def future_of(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[[DATE, CLOSED, *REGRESSORS]].reset_index(drop=True)


def last_open_day(frame: pd.DataFrame) -> pd.Timestamp:
    return pd.Timestamp(frame.loc[~frame[CLOSED], DATE].max())


def booster_text(model: LightGBMModel) -> str:
    return str(json.loads(model.to_bytes())["state"]["booster"])


def state(model: LightGBMModel) -> dict[str, Any]:
    return dict(json.loads(model.to_bytes())["state"])


# -- one product on its own ------------------------------------------------------------------
def test_fit_on_one_product_follows_the_weekly_pattern(history: pd.DataFrame) -> None:
    train, test = history.iloc[:TRAIN_DAYS], history.iloc[TRAIN_DAYS:TRAIN_DAYS + 28]
    model = LightGBMModel(regressors=REGRESSORS).fit(train)
    assert model.adopted is False
    assert state(model)["product"] == LOCAL_PRODUCT

    forecast = model.predict(future_of(test))
    assert forecast.shape == (len(test),)
    assert np.isfinite(forecast).all()
    assert (forecast >= 0).all()
    closed = test[CLOSED].to_numpy()
    assert closed.any()
    assert (forecast[closed] == 0.0).all()
    actual = test[Y].to_numpy()
    open_forecast, open_actual = forecast[~closed], actual[~closed]
    assert (open_forecast > 0).all()
    # It knows the week: far closer than a flat mean, and in step with the truth.
    assert np.corrcoef(open_forecast, open_actual)[0, 1] > 0.5
    flat = np.full_like(open_actual, train.loc[~train[CLOSED], Y].mean())
    assert (np.abs(open_forecast - open_actual).sum()
            < 0.7 * np.abs(flat - open_actual).sum())


def test_artifact_round_trip(history: pd.DataFrame) -> None:
    train, test = history.iloc[:TRAIN_DAYS], history.iloc[TRAIN_DAYS:]
    model = LightGBMModel(regressors=REGRESSORS).fit(train)
    loaded = load_model(model.to_bytes())
    assert isinstance(loaded, LightGBMModel)
    assert loaded.regressors == REGRESSORS
    assert loaded.adopted is False
    future = future_of(test)
    np.testing.assert_allclose(loaded.predict(future), model.predict(future))
    assert loaded.to_bytes() == model.to_bytes()


def test_artifact_of_the_earlier_feature_list_still_forecasts(history: pd.DataFrame) -> None:
    """Artifacts stored before the state held its sales features were trained on
    LEGACY_SALES_FEATURES: loading one forecasts with those, not with today's list."""
    train, test = history.iloc[:TRAIN_DAYS], history.iloc[TRAIN_DAYS:TRAIN_DAYS + 28]
    model = LightGBMModel(regressors=REGRESSORS).fit(train)
    assert state(model)["sales_features"] == list(lightgbm.SALES_FEATURES)
    legacy = lightgbm.fit_booster({LOCAL_PRODUCT: train}, REGRESSORS,
                                  products=(LOCAL_PRODUCT,), cutoff=last_open_day(train),
                                  sales_features=LEGACY_SALES_FEATURES)
    assert legacy.feature_name()[-len(LEGACY_SALES_FEATURES):] == list(
        LEGACY_SALES_FEATURES)
    envelope = json.loads(model.to_bytes())
    envelope["state"]["booster"] = legacy.model_to_string()
    del envelope["state"]["sales_features"]
    old = load_model(json.dumps(envelope).encode())

    forecast = old.predict(future_of(test))
    closed = test[CLOSED].to_numpy()
    assert np.isfinite(forecast).all()
    assert (forecast[closed] == 0.0).all()
    assert np.corrcoef(forecast[~closed], test[Y].to_numpy()[~closed])[0, 1] > 0.5
    # A current model reading the legacy booster's inputs would have failed: LightGBM
    # refuses a feature count that differs from the booster's.
    assert len(legacy.feature_name()) != len(lightgbm.feature_names(REGRESSORS))


def test_forecasts_beyond_the_direct_horizon_in_blocks(history: pd.DataFrame) -> None:
    train, test = history.iloc[:TRAIN_DAYS], history.iloc[TRAIN_DAYS:TRAIN_DAYS + 60]
    assert test[DATE].iloc[0] == train[DATE].iloc[-1] + pd.Timedelta(days=1)
    assert len(test) == 60 > 2 * MIN_LAG_DAYS  # three blocks of up to 28 days
    model = LightGBMModel(regressors=REGRESSORS).fit(train)
    forecast = model.predict(future_of(test))
    assert forecast.shape == (60,)
    assert np.isfinite(forecast).all()
    assert (forecast >= 0).all()
    closed = test[CLOSED].to_numpy()
    assert (forecast[closed] == 0.0).all()
    # The later blocks, which read the earlier blocks' forecasts, still know the week.
    later = np.arange(60) >= MIN_LAG_DAYS
    open_later = later & ~closed
    assert np.corrcoef(forecast[open_later], test[Y].to_numpy()[open_later])[0, 1] > 0.5
    # Asking for more days does not change the first ones: a 60-day forecast starts as
    # the 28-day one does.
    first = model.predict(future_of(test.iloc[:MIN_LAG_DAYS]))
    np.testing.assert_allclose(forecast[:MIN_LAG_DAYS], first)
    # The loaded artifact goes on in blocks exactly the same way.
    np.testing.assert_allclose(load_model(model.to_bytes()).predict(future_of(test)),
                               forecast)


def test_answers_follow_the_dates_asked_not_their_order_or_repeats(
        history: pd.DataFrame) -> None:
    # The forecast places each asked row on its day: rows in any order, a date asked
    # twice, and a gap in the first 28 days (whose features read only fitted days) give
    # each date the forecast it gets when all 60 days are asked in order.
    train, test = history.iloc[:TRAIN_DAYS], history.iloc[TRAIN_DAYS:TRAIN_DAYS + 60]
    model = LightGBMModel(regressors=REGRESSORS).fit(train.sample(frac=1.0, random_state=2))
    np.testing.assert_array_equal(
        model.predict(future_of(test)),
        LightGBMModel(regressors=REGRESSORS).fit(train).predict(future_of(test)))
    expected = pd.Series(model.predict(future_of(test)), index=test[DATE].to_numpy())
    shuffled = future_of(pd.concat([test, test.iloc[[5, 40, 5]]]).sample(frac=1.0,
                                                                          random_state=1))
    np.testing.assert_array_equal(model.predict(shuffled),
                                  expected.loc[shuffled[DATE].to_numpy()].to_numpy())
    gappy = future_of(test.iloc[[20, 3, 11]])
    np.testing.assert_array_equal(model.predict(gappy),
                                  expected.loc[gappy[DATE].to_numpy()].to_numpy())
    assert (expected[test[CLOSED].to_numpy()] == 0.0).all()
    with pytest.raises(ValueError, match="same date twice"):
        LightGBMModel(regressors=REGRESSORS).fit(pd.concat([train, train.iloc[[7]]]))


def test_forecasts_only_after_the_last_fitted_day(history: pd.DataFrame) -> None:
    train = history.iloc[:TRAIN_DAYS - 1]  # ends on an open day
    model = LightGBMModel(regressors=REGRESSORS).fit(train)
    last = train[DATE].iloc[-1]
    overlapping = (train.iloc[-1:], train.iloc[-10:-5],
                   history.iloc[TRAIN_DAYS - 2:TRAIN_DAYS + 5])
    for frame in overlapping:
        with pytest.raises(ValueError, match="after"):
            model.predict(future_of(frame))
    assert model.predict(future_of(history.iloc[TRAIN_DAYS - 1:TRAIN_DAYS + 2])).shape == (3,)
    assert model.predict(future_of(history.iloc[:0])).shape == (0,)
    assert history[DATE].iloc[TRAIN_DAYS - 1] == last + pd.Timedelta(days=1)


def test_params_are_refused() -> None:
    with pytest.raises(ValueError, match="no params"):
        LightGBMModel(params={"x": 1})
    assert LightGBMModel(params={}).params == {}


# -- the tenant's boosters, adopted ----------------------------------------------------------
@pytest.fixture
def tenant(make_history: HistoryFactory) -> dict[str, pd.DataFrame]:
    """Two products of one tenant, the same days and regressors."""
    frames = {}
    for product, level, seed in (("A", 1.0, 3), ("B", 2.5, 4)):
        values, temperature = series(level=level, seed=seed)
        frames[product] = make_history(values, closed=CLOSED_DAYS, temperature_c=temperature)
    return frames


def test_fit_adopts_the_booster_of_its_cutoff(tenant: dict[str, pd.DataFrame]) -> None:
    train_a = tenant["A"].iloc[:TRAIN_DAYS]
    assert bool(train_a[CLOSED].iloc[-1])  # the training part ends on a closed day...
    cutoff = last_open_day(train_a)  # ...so its cut-off is the open day before
    fits = train_global(tenant, REGRESSORS, [cutoff])
    assert fits.products == ("A", "B")
    assert fits.regressors == REGRESSORS
    assert list(fits.boosters) == [cutoff.date().isoformat()]
    assert fits.summary()["cutoffs"] == [cutoff.date().isoformat()]
    assert GlobalFits.from_bytes(fits.to_bytes()) == fits

    adopted = LightGBMModel(regressors=REGRESSORS).fit(
        train_a, context=FitContext(product="A", global_fits=fits))
    assert adopted.adopted is True
    assert booster_text(adopted) == fits.boosters[cutoff.date().isoformat()]
    assert state(adopted)["product"] == "A"
    assert state(adopted)["products"] == ["A", "B"]

    # The same booster trained on the histories cut at the cut-off forecasts the same.
    cut = {p: h.loc[h[DATE] <= cutoff] for p, h in tenant.items()}
    again = train_global(cut, REGRESSORS, [cutoff])
    assert again.boosters == fits.boosters
    twin = LightGBMModel(regressors=REGRESSORS).fit(
        train_a, context=FitContext(product="A", global_fits=again))
    future = future_of(tenant["A"].iloc[TRAIN_DAYS:TRAIN_DAYS + 40])
    forecast = adopted.predict(future)
    np.testing.assert_allclose(twin.predict(future), forecast)
    assert np.isfinite(forecast).all()
    assert (forecast >= 0).all()
    assert (forecast[future[CLOSED].to_numpy()] == 0.0).all()

    # The artifact keeps the tenant's booster and the product's place among its categories.
    loaded = load_model(adopted.to_bytes())
    assert isinstance(loaded, LightGBMModel)
    assert loaded.adopted is True
    np.testing.assert_allclose(loaded.predict(future), forecast)

    # Without the tenant stage the product trains on its own: another booster.
    alone = LightGBMModel(regressors=REGRESSORS).fit(train_a)
    assert alone.adopted is False
    assert booster_text(alone) != booster_text(adopted)
    assert not np.allclose(alone.predict(future), forecast)


def test_no_adoption_without_a_matching_booster(tenant: dict[str, pd.DataFrame]) -> None:
    train_a = tenant["A"].iloc[:TRAIN_DAYS]
    cutoff = last_open_day(train_a)
    fits = train_global(tenant, REGRESSORS, [cutoff])
    shorter = train_a.loc[train_a[DATE] < cutoff]  # another cut-off: not in fits

    def fitted(history: pd.DataFrame, product: str = "A",
               regressors: tuple[str, ...] = REGRESSORS,
               fits_: GlobalFits | None = fits) -> LightGBMModel:
        return LightGBMModel(regressors=regressors).fit(
            history, context=FitContext(product=product, global_fits=fits_))

    assert fitted(train_a).adopted is True
    assert fitted(shorter).adopted is False  # a cut-off the stage did not train
    assert fitted(train_a, product="C").adopted is False  # not one of its products
    assert fitted(train_a, regressors=()).adopted is False  # not its regressors
    assert fitted(train_a, fits_=None).adopted is False
    # No context: training alone.
    assert LightGBMModel(regressors=REGRESSORS).fit(train_a).adopted is False


def test_boosters_never_see_data_after_their_cutoff(tenant: dict[str, pd.DataFrame]) -> None:
    cutoff = last_open_day(tenant["A"].iloc[:TRAIN_DAYS])
    later = last_open_day(tenant["A"])
    fits = train_global(tenant, REGRESSORS, [later, cutoff])

    changed = {}
    for product, history in tenant.items():
        after = history[DATE] > cutoff
        frame = history.copy()
        frame.loc[after, Y] = frame.loc[after, Y] * 10.0
        frame.loc[after, "temperature_c"] = -20.0
        changed[product] = frame
    again = train_global(changed, REGRESSORS, [cutoff, later])

    assert sorted(again.boosters) == sorted(fits.boosters) == [
        cutoff.date().isoformat(), later.date().isoformat()]
    assert again.boosters[cutoff.date().isoformat()] == fits.boosters[cutoff.date().isoformat()]
    # ...while the booster of a later cut-off does read the changed days.
    assert again.boosters[later.date().isoformat()] != fits.boosters[later.date().isoformat()]


def test_cutoff_without_sales_is_skipped(tenant: dict[str, pd.DataFrame]) -> None:
    before = tenant["A"][DATE].min() - pd.Timedelta(days=1)
    fits = train_global(tenant, REGRESSORS, [before])
    assert fits.boosters == {}
    with pytest.raises(ValueError, match="no observed sales"):
        lightgbm.fit_booster(tenant, REGRESSORS, products=("A", "B"), cutoff=before)


def test_a_bound_on_rows_keeps_the_same_share_of_every_product(
        tenant: dict[str, pd.DataFrame]) -> None:
    """A chain's boosters learn from at most `max_rows` rows (decision 012): every
    product keeps the same share of its observed days, the same rows each time, with
    the features of the whole history (lags and means as without the bound)."""
    products = tuple(sorted(tenant))
    full = lightgbm._matrix(tenant, [], products)
    bound = len(full.sales) // 3
    capped = lightgbm._matrix(tenant, [], products, max_rows=bound)
    again = lightgbm._matrix(tenant, [], products, max_rows=bound)

    assert abs(len(capped.sales) - bound) <= len(products)
    np.testing.assert_array_equal(capped.values, again.values)  # seeded
    for code in range(len(products)):
        start, end = full.bounds[code]
        kept_start, kept_end = capped.bounds[code]
        share = (kept_end - kept_start) / (end - start)
        assert share == pytest.approx(1 / 3, abs=0.01), products[code]
        # The kept rows are rows of the full matrix, features and all.
        full_rows = {day: i for i, day in enumerate(full.days[start:end], start)}
        for i in range(kept_start, kept_end):
            j = full_rows[capped.days[i]]
            np.testing.assert_array_equal(capped.values[i], full.values[j])
            assert capped.sales[i] == full.sales[j]
    assert len(lightgbm._matrix(tenant, [], products, max_rows=10 ** 9).sales) == len(
        full.sales)  # under the bound: every row


def test_the_backtest_at_once_is_what_fitting_each_window_gives(
        tenant: dict[str, pd.DataFrame]) -> None:
    """`backtest_forecasts`: every window's forecast from one feature matrix of the
    product's history gives exactly what adopting the window's booster and predicting
    its days does; a window whose open days reach beyond one 28-day block after its
    cut-off (it starts after a closed day), or without the stage's booster, is left to
    the fit (None)."""
    holdout, plan = HoldoutSplit(), BacktestPlan()
    # Closed the day before the latest window (days 434-461 before the 28-day holdout):
    # that window's open days run 2..29 days after its cut-off.
    tenant = {product: history.assign(**{CLOSED: history[CLOSED] | (history.index == 433),
                                         Y: history[Y].where(history.index != 433, 0.0)})
              for product, history in tenant.items()}
    fits = train_tenant_models(tenant, REGRESSORS, holdout=holdout, backtest=plan)
    model = LightGBMModel(regressors=REGRESSORS)
    shared = skipped = 0
    for product, history in tenant.items():
        train, _ = holdout.split(history)
        windows = plan.windows(train)
        context = FitContext(product=product, global_fits=fits)
        at_once = model.backtest_forecasts(windows, context=context)
        assert len(at_once) == len(windows) >= 3
        for window, forecast in zip(windows, at_once, strict=True):
            fitted = LightGBMModel(regressors=REGRESSORS).fit(window.train, context=context)
            expected = fitted.predict(future_of(window.test))
            if forecast is None:
                skipped += 1
                cutoff = last_open_day(window.train)
                assert window.test.loc[~window.test[CLOSED], DATE].max() > cutoff + \
                    pd.Timedelta(days=MIN_LAG_DAYS)
                continue
            shared += 1
            assert fitted.adopted
            np.testing.assert_array_equal(forecast, expected)
            assert (forecast[window.test[CLOSED].to_numpy()] == 0.0).all()
    assert shared >= 2 * 5
    assert skipped == 2
    # Without the stage's boosters (or for another product): every window is fitted.
    train, _ = holdout.split(tenant["A"])
    windows = plan.windows(train)
    assert model.backtest_forecasts(windows) == [None] * len(windows)
    assert model.backtest_forecasts(windows, context=FitContext(
        product="C", global_fits=fits)) == [None] * len(windows)
