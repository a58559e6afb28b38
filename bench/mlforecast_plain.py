"""mlforecast on the reference protocol: the evidence of docs/decisions/010. Prints numbers,
asserts nothing; not part of ovencast (mlforecast is not a dependency: install it into
the virtualenv to run this, `pip install 'mlforecast>=1,<2'`).

    python bench/mlforecast_plain.py DATASET_DIR [--origins 0,2,4,6,8,10,12]

At each origin (bench/protocol.py: the 28-day window ending k x 28 days before the last
sales date), `MLForecast` with LightGBM in the configuration of ../shared/reference's
plain LightGBM (tweedie, 500 rounds, learning rate 0.05, 31 leaves, min 20 rows per leaf,
feature and bagging fraction 0.8; the product as a category, day of week, day of year,
month, every regressor, sales lags 28/35/42/49 and the 7- and 28-day rolling means of
lag 28) is fitted on every sales row before the window and forecasts it directly, with
the window's measured regressors. mlforecast needs dense series: missing dates are
filled with 0 (what ovencast's data rules forbid). Scored on the reference's
product-days, pooled WAPE per origin and the mean; fit time summed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from protocol import HORIZON, origins, pair, read_sales, score, scored_products

PARAMS = dict(objective="tweedie", n_estimators=500, learning_rate=0.05, num_leaves=31,
              min_child_samples=20, colsample_bytree=0.8, subsample=0.8, subsample_freq=1,
              verbose=-1)


def regressors(directory: Path) -> pd.DataFrame:
    frames = [pd.read_csv(directory / f"{name}.csv", parse_dates=["date"])
              for name in ("weather", "traffic", "calendar")
              if (directory / f"{name}.csv").is_file()]
    merged = frames[0]
    for frame in frames[1:]:
        merged = merged.merge(frame, on="date", how="outer")
    return merged.sort_values("date").reset_index(drop=True)


def dense(sales: pd.DataFrame, until: pd.Timestamp) -> pd.DataFrame:
    """Each product's days from its first to `until`, missing ones as 0."""
    rows = []
    for product, group in sales.loc[sales["ds"] <= until].groupby("unique_id"):
        days = pd.date_range(group["ds"].min(), until, freq="D")
        full = group.set_index("ds").reindex(days).rename_axis("ds").reset_index()
        full["unique_id"], full["y"] = product, full["y"].fillna(0.0)
        rows.append(full)
    return pd.concat(rows, ignore_index=True)


def main() -> None:
    from lightgbm import LGBMRegressor
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--origins", default="0,2,4,6,8,10,12")
    args = parser.parse_args()
    sales = read_sales(args.dataset)
    long = sales.rename(columns={"product": "unique_id", "date": "ds", "quantity": "y"})
    long["ds"] = pd.to_datetime(long["ds"])
    exog = regressors(args.dataset)
    names = [c for c in exog.columns if c != "date"]
    wapes, seconds = [], 0.0
    for origin in origins(max(sales["date"]), [int(k) for k in args.origins.split(",")]):
        until = pd.Timestamp(origin.until)
        train = dense(long, until).merge(exog.rename(columns={"date": "ds"}), on="ds",
                                          how="left")
        train["product"] = train["unique_id"].astype("category")
        forecaster = MLForecast(
            models={"lgb": LGBMRegressor(**PARAMS)}, freq="D", lags=[28, 35, 42, 49],
            lag_transforms={28: [RollingMean(window_size=7), RollingMean(window_size=28)]},
            date_features=["dayofweek", "dayofyear", "month"])
        started = time.perf_counter()
        forecaster.fit(train, static_features=["product"])
        seconds += time.perf_counter() - started
        future = forecaster.make_future_dataframe(HORIZON).merge(
            exog.rename(columns={"date": "ds"})[["ds", *names]], on="ds", how="left")
        predicted = forecaster.predict(HORIZON, X_df=future)
        forecast = pd.DataFrame({
            "date": predicted["ds"].dt.date, "product": predicted["unique_id"].astype(str),
            "forecast": np.clip(predicted["lgb"].to_numpy(), 0, None)})
        products = scored_products(sales, origin)
        found = score(pair(forecast, sales, products, origin))
        wapes.append(found.wape)
        print(f"o{origin.index:02d} {origin.window_start}..{origin.window_end}: WAPE "
              f"{found.wape:.3f} ({found.product_days} product-days)", flush=True)
    print(f"mean WAPE {np.mean(wapes):.3f}; fit {seconds:.1f} s")


if __name__ == "__main__":
    main()
