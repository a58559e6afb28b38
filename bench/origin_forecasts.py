"""Store every method's forecasts at every origin (and `auto`'s per-product selection
details), so that rules choosing or combining among stored forecasts can be replayed
offline on exactly bench/origins.py's protocol. Prints nothing but progress.

    python bench/origin_forecasts.py DATASET_DIR --country DE --subdivision SH --out DIR
        [--origins 0,2,4,6,8,10,12] [--methods auto,lightgbm (global)]

Writes DIR/<label>_oKK.csv (date, product, forecast, p10, p90) per method and origin and
DIR/auto_oKK.json (product -> the trained version's details: selection, leaderboard).
Same training as bench/origins.py (protocol.train_and_forecast, oracle regressors).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from protocol import METHODS, origins, run_at_origin
from speed import dataset_parser

from ovencast.datasets.reader import read_dataset_dir
from ovencast.observability.logs import configure_logging


def main() -> None:
    parser = dataset_parser(__doc__)
    parser.add_argument("--origins", default="0,2,4,6,8,10,12")
    parser.add_argument("--methods", default="auto,lightgbm (global)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    dataset = read_dataset_dir(args.dataset)
    chosen = [m.strip() for m in args.methods.split(",") if m.strip()]
    grid = origins(dataset.last_date, [int(k) for k in args.origins.split(",")])
    with tempfile.TemporaryDirectory(prefix="ovencast-dump-") as tmp:
        configure_logging(log_file=Path(tmp) / "bench.log", stderr_level="ERROR")
        for origin in grid:
            for index, label in enumerate(chosen):
                result = run_at_origin(Path(tmp), f"o{origin.index:02d}-{index}", dataset,
                                       METHODS[label], origin, regressors="oracle",
                                       country=args.country, subdivision=args.subdivision)
                name = label.split(" ")[0].replace(":", "")
                result.forecast.to_csv(args.out / f"{name}_o{origin.index:02d}.csv",
                                       index=False)
                details = {o.product: {"family": o.family, "status": str(o.status),
                                       "details": o.details}
                           for o in result.trained.outcomes}
                (args.out / f"{name}_o{origin.index:02d}.json").write_text(
                    json.dumps(details, default=str, indent=1))
                print(f"origin {origin.index:2d} {label}: {result.seconds:.0f} s",
                      flush=True)


if __name__ == "__main__":
    main()
