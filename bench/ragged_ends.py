"""A dataset whose products end on days of their own, as a chain's seasonal and
discontinued products do (issue #17, decision 024). Writes a copy of a dataset
directory in which `--products` of its products (drawn with `--seed`) stop selling on a
day drawn uniformly from the `--within` days before `--until` (their later rows
dropped); the other files are copied as they are. Prints which products end when.

    python bench/ragged_ends.py ../shared/data/northsea /tmp/ragged --until 2023-10-03 \\
        [--products 8] [--within 365] [--seed 0]

Then import and train it as usual (`ovencast import /tmp/ragged --tenant ragged ...`,
`ovencast train --tenant ragged --until 2023-10-03`): the line "global model: ... N
boosters" says how many cut-offs the tenant stage trained, and `ovencast models` the
holdout WAPE of every product.
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
    parser.add_argument("--until", required=True, help="the last day a training will see")
    parser.add_argument("--products", type=int, default=8)
    parser.add_argument("--within", type=int, default=365)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    sales = pd.read_csv(args.data / "sales.csv", parse_dates=["date"])
    names = sorted(sales["product"].unique())
    if not 0 < args.products <= len(names):
        parser.error(f"--products must be 1..{len(names)}")
    rng = np.random.default_rng(args.seed)
    ending = sorted(rng.choice(names, size=args.products, replace=False))
    until = pd.Timestamp(args.until)
    ends = {name: until - pd.Timedelta(days=int(rng.integers(1, args.within + 1)))
            for name in ending}
    last = sales["product"].map(ends).fillna(pd.Timestamp.max)
    kept = sales.loc[sales["date"] <= last]

    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.data.glob("*.csv"):
        if path.name != "sales.csv":
            shutil.copy(path, args.out / path.name)
    kept.assign(date=kept["date"].dt.date).to_csv(args.out / "sales.csv", index=False)
    for name, end in ends.items():
        print(f"{name} ends on {end.date()}")
    print(f"{len(names) - len(ends)} products run to the end; {len(sales) - len(kept)} rows "
          f"dropped; written to {args.out}")


if __name__ == "__main__":
    main()
