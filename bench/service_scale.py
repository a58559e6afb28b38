"""Service shape at a chain's scale (issue #17): the scale tenant of bench/scale.py trained
by `ovencast worker` processes through the PostgreSQL queue. Prints numbers, asserts
nothing.

    python bench/service_scale.py N [N ...] [--workers 2] [--concurrency 1]
        [--pg postgresql://postgres@127.0.0.1:5432] [--data ../shared/data/northsea]
        [--until 2023-10-03] [--json FILE]

For each N, in a scratch PostgreSQL database (created, migrated, dropped): writes the
tenant of N products exactly as bench/scale.py does (same seed, same series), imports it
(COPY), starts `--workers` worker processes (each MAX_CONCURRENT_TRAINING_JOBS =
`--concurrency`, all on this machine), submits one training job of every product with
the default model choice (`auto`) up to `--until`, waits for it to end, stops the
workers, and prints:

- import: seconds of the import (this process, as `ovencast import` against PostgreSQL);
- train: seconds from the job's submission to its end; `first` is when the first
  product's run started (the job's preparation and tenant stage, in one worker, before);
- products/min: products trained per minute of `train`;
- CPU: CPU seconds (user + system) of the workers and their fit processes, from their
  start to their exit (the idle start-up and the shutdown included);
- WAPE: the mean holdout WAPE of the versions the job trained (the embedded shape's
  bench/scale.py trains the same data: the two must agree within noise);
- peak RSS (MB, from /proc, sampled every 0.2 s): `worker` the largest worker process,
  `fit` the largest of their fit processes, `tree` the largest sum over all of them at
  one moment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from protocol import scratch_database, submit_and_wait
from scale import DEFAULT_DATA, TENANT, RssSampler, _descendants, write_tenant

from ovencast.datasets import service as datasets_service
from ovencast.datasets.reader import DataLimits, read_dataset_dir
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.jobs.states import RunStatus
from ovencast.settings import Settings
from ovencast.tenants import service as tenants_service


@dataclass
class ServiceRun:
    products: int
    workers: int
    concurrency: int
    import_s: float
    train_s: float
    first_product_s: float
    trained: int
    refused: int
    failed: int
    products_per_min: float
    cpu_s: float
    mean_wape: float
    median_product_s: float
    worker_mb: float
    fit_mb: float
    tree_mb: float


class WorkerRss(RssSampler):
    """Peak resident memory of the worker processes (this process's children) and of
    their descendants (the fit processes), read from /proc every `interval_s`; this
    process (which only submits and waits) is not counted."""

    def __init__(self, interval_s: float = 0.2) -> None:
        super().__init__(interval_s)
        self.peaks = {"worker": 0.0, "fit": 0.0, "tree": 0.0}

    def _sample(self) -> None:
        me, tree = os.getpid(), 0.0
        for pid, (parent, hwm, rss) in _descendants(me).items():
            if pid == me:
                continue
            tree += rss
            kind = "worker" if parent == me else "fit"
            self.peaks[kind] = max(self.peaks[kind], hwm)
        self.peaks["tree"] = max(self.peaks["tree"], tree)


async def _import(settings: Settings, directory: Path) -> float:
    parsed = read_dataset_dir(directory, limits=DataLimits.from_settings(settings))
    database = Database.open(settings)
    try:
        started = time.perf_counter()
        async with unit_of_work(database.sessions) as session:
            tenant = await tenants_service.ensure_tenant(session, TENANT, country="DE",
                                                         subdivision="NI")
            await datasets_service.import_dataset(session, tenant, parsed,
                                                  source=str(directory))
        return time.perf_counter() - started
    finally:
        await database.close()


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def measure(n_products: int, args: argparse.Namespace, tmp: Path) -> ServiceRun:
    data = tmp / f"data-{n_products}"
    rows = write_tenant(args.data, data, n_products, seed=args.seed)
    with scratch_database(args.pg, "ovencast_scale") as (url, home):
        settings = Settings(ovencast_home=home, database_url=url,
                            import_max_rows=max(rows, 5_000_000))
        import_s = asyncio.run(_import(settings, data))
        env = {**os.environ, "DATABASE_URL": url, "OVENCAST_HOME": str(home),
               "IMPORT_MAX_ROWS": str(max(rows, 5_000_000)),
               "MAX_CONCURRENT_TRAINING_JOBS": str(args.concurrency), "LOG_LEVEL": "WARNING"}
        cpu_before = _children_cpu()
        workers: list[subprocess.Popen[bytes]] = []
        with WorkerRss() as rss:
            try:
                for i in range(args.workers):
                    workers.append(subprocess.Popen(
                        [sys.executable, "-m", "ovencast", "worker", "--name", f"w{i}"],
                        env=env))
                time.sleep(args.idle)
                result = asyncio.run(submit_and_wait(settings, TENANT, until=args.until,
                                                     poll_s=1.0))
            finally:
                for worker in workers:
                    worker.terminate()
                for worker in workers:
                    worker.wait(timeout=120)
        cpu_s = _children_cpu() - cpu_before
    runs = result.runs
    trained = [r for r in runs if r.status is RunStatus.TRAINED]
    refused = sum(r.status is RunStatus.REFUSED for r in runs)
    assert result.job.finished_at is not None
    train_s = result.job.finished_at.timestamp() - result.submitted
    started = [r.started_at.timestamp() for r in trained if r.started_at is not None]
    durations = [r.duration_s for r in trained if r.duration_s is not None]
    wapes = result.wapes
    return ServiceRun(
        products=n_products, workers=args.workers, concurrency=args.concurrency,
        import_s=import_s, train_s=train_s,
        first_product_s=(min(started) - result.submitted) if started else float("nan"),
        trained=len(trained), refused=refused, failed=len(runs) - len(trained) - refused,
        products_per_min=len(trained) / train_s * 60, cpu_s=cpu_s,
        mean_wape=statistics.fmean(wapes) if wapes else float("nan"),
        median_product_s=statistics.median(durations) if durations else float("nan"),
        worker_mb=rss.peaks["worker"], fit_mb=rss.peaks["fit"], tree_mb=rss.peaks["tree"])


def line(run: ServiceRun) -> str:
    return (f"N={run.products} ({run.workers} workers x {run.concurrency}): import "
            f"{run.import_s:.1f} s, train {run.train_s:.1f} s (first product at "
            f"{run.first_product_s:.1f} s, median product {run.median_product_s:.2f} s), "
            f"{run.products_per_min:.1f} products/min, CPU {run.cpu_s:.0f} s, mean WAPE "
            f"{run.mean_wape:.4f}, trained {run.trained} refused {run.refused} failed "
            f"{run.failed}, peak RSS MB worker {run.worker_mb:.0f} fit {run.fit_mb:.0f} "
            f"tree {run.tree_mb:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("products", type=int, nargs="+")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--until", type=date.fromisoformat, default=date(2023, 10, 3))
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432",
                        help="PostgreSQL server (a database is created and dropped)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="MAX_CONCURRENT_TRAINING_JOBS of each worker")
    parser.add_argument("--idle", type=float, default=3.0,
                        help="seconds the workers start up before the job is submitted")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="ovencast-service-scale-") as tmp:
        for n in args.products:
            runs.append(measure(n, args, Path(tmp)))
            print(line(runs[-1]), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in runs], indent=2))
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
