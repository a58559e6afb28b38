"""The original approach (`--models prophet`, docs/decisions/007-faithful-original.md)
reproduces the reference method's forecasts (../shared/reference) on North Sea, whose
regressors have no gaps: the seeded search and Prophet's deterministic fit make them
equal, not only close. Built from core calls as training builds a product's data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ovencast.forecasting.classes import SearchClassRule
from ovencast.forecasting.families.prophet import ProphetModel
from ovencast.forecasting.features import build_future_frame, build_tenant_frame
from ovencast.forecasting.frame import CLOSED, PRODUCT, Y, closed_days_as_zero_sales
from ovencast.forecasting.search import SearchSpec, search_prophet

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
HORIZON = 28


def _regressors(directory: Path) -> pd.DataFrame:
    frames = [pd.read_csv(directory / f"{name}.csv") for name in ("weather", "traffic", "calendar")]
    merged = frames[0]
    for frame in frames[1:]:
        merged = merged.merge(frame, on="date", how="outer")
    return merged


@pytest.mark.parametrize(
    ("origin", "product", "trials", "objective"),
    [
        # Winter, closed days in both windows: they are fitted and forecast as zero sales.
        pytest.param(10, "item_51", 15, "mape", id="o10-item_51"),
        # No sale in the validation window: the search minimises the MAE.
        pytest.param(10, "item_133", 15, "mae", id="o10-item_133"),
        pytest.param(0, "item_13", 25, "mape", id="o00-item_13", marks=pytest.mark.slow),
    ],
)
def test_reproduces_the_reference_forecast(
    northsea_dir: Path, origin: int, product: str, trials: int, objective: str
) -> None:
    path = REFERENCE / f"northsea_original_o{origin:02d}.csv"
    if not path.is_file():
        pytest.skip(f"no reference forecasts at {path}")
    sales = pd.read_csv(northsea_dir / "sales.csv", parse_dates=["date"])
    regressors = _regressors(northsea_dir)
    end = sales["date"].max() - pd.Timedelta(days=HORIZON * origin)
    dates = pd.date_range(end - pd.Timedelta(days=HORIZON - 1), end, freq="D")
    before = sales.loc[(sales["date"] < dates[0]) & (sales["product"] == product)]
    tenant, alignment = build_tenant_frame(before, regressors, country=None, subdivision=None)
    used = alignment.used_regressors
    assert "opening_hours" in used
    history = closed_days_as_zero_sales(tenant.drop(columns=[PRODUCT]))
    future = build_future_frame(
        dates, regressors, used_regressors=used, country=None, subdivision=None
    )
    assert future[CLOSED].any() == (origin == 10)

    n_trials = SearchClassRule().trials(history[Y].to_numpy())
    result = search_prophet(history, SearchSpec(n_trials=n_trials, seed=0), regressors=used)
    model = ProphetModel(regressors=used, params=dict(result.best_params)).fit(history)
    forecast = model.predict(closed_days_as_zero_sales(future))

    assert (n_trials, result.objective) == (trials, objective)
    reference = pd.read_csv(path, parse_dates=["date"])
    expected = reference.loc[reference["product"] == product].set_index("date")["forecast"]
    np.testing.assert_allclose(forecast, expected.reindex(dates).to_numpy(), rtol=1e-5, atol=1e-3)
