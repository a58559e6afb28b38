"""training/worker.py: what a pool process keeps between the products it trains."""

from __future__ import annotations

from ovencast.forecasting.families.global_fits import GlobalFits
from ovencast.training.worker import parsed_global_fits


def test_a_pool_process_parses_a_jobs_global_models_once() -> None:
    """Every task of a job carries the same payload (a new bytes object per task once
    unpickled in the pool process): parsed once, the same models for each."""
    fits = GlobalFits(products=("bread", "rolls"), regressors=(), boosters={"2024-01-01": "t"},
                      seconds=1.0, sales_features=("mean_91",))
    first, second = fits.to_bytes(), bytes(bytearray(fits.to_bytes()))
    assert first is not second
    assert parsed_global_fits(first) is parsed_global_fits(second)
    assert parsed_global_fits(first) == fits
    other = GlobalFits(products=fits.products, regressors=(), boosters=fits.boosters,
                       seconds=2.0, sales_features=fits.sales_features)
    assert parsed_global_fits(other.to_bytes()) is not parsed_global_fits(first)
