"""A low-volume copy of a dataset: the same calendar, weather and footfall, and products
that sell a fraction of what the real ones sold (decision 029). Keeps the products whose
mean daily quantity is above `--min-mean` and keeps each of their units with probability
`--share` (binomial thinning, seeded): the weekly and yearly shape, the closures and the
regressors' effects stay those of the real products, the counts become small and
sporadic, like the slower products of the same shop that no shared dataset has. Prints
each written product's mean daily quantity and share of zero days.

    python bench/thinned.py ../shared/data/northsea /tmp/thin4 --share 0.04 [--min-mean 10]
        [--seed 1]

Then score it as any dataset: `python bench/origins.py /tmp/thin4 --country DE
--subdivision NI --methods "auto,lightgbm (global),original: prophet + optuna"`.
Quantities must be whole units (a count of products sold); EUR turnover is refused.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--share", type=float, required=True,
                        help="the probability each unit sold is kept (0 < share <= 1)")
    parser.add_argument("--min-mean", type=float, default=10.0,
                        help="keep only the products selling more than this a day on average")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 0 < args.share <= 1:
        parser.error("--share must be in (0, 1]")

    sales = pd.read_csv(args.data / "sales.csv")
    units = sales["quantity"].to_numpy(dtype=float)
    if (units < 0).any() or not np.array_equal(units, np.round(units)):
        parser.error(f"{args.data / 'sales.csv'}: quantities must be whole units sold "
                     "(non-negative integers) to be thinned")
    means = sales.groupby("product")["quantity"].mean()
    kept = sales.loc[sales["product"].isin(means.index[means > args.min_mean])].copy()
    if kept.empty:
        parser.error(f"no product sells more than {args.min_mean:g} a day on average")
    rng = np.random.default_rng(args.seed)
    kept["quantity"] = rng.binomial(kept["quantity"].to_numpy(dtype=np.int64), args.share)

    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.data.glob("*.csv"):
        if path.name != "sales.csv":
            shutil.copy(path, args.out / path.name)
    kept.to_csv(args.out / "sales.csv", index=False)
    summary = kept.groupby("product")["quantity"].agg(
        mean="mean", zero_share=lambda q: float((q == 0).mean()))
    for product, row in summary.sort_values("mean").iterrows():
        print(f"{product}: mean {row['mean']:.2f} a day, {row['zero_share']:.0%} zero days")
    print(f"{len(summary)} of {len(means)} products kept at share {args.share:g}; "
          f"written to {args.out}")


if __name__ == "__main__":
    main()
