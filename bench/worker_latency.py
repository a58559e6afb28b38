"""Service shape: how long a freshly started worker takes to train its first product.
Prints numbers, asserts nothing.

    python bench/worker_latency.py [DATASET_DIR] [--pg postgresql://postgres@127.0.0.1:5432]
                                   [--idle 10] [--workers 2] [--models auto]

In a fresh PostgreSQL database: migrate, import the dataset (default: the bundled Kiel
copy), start one `ovencast worker` process, let it sit idle for `--idle` seconds (a
worker waiting for work), submit a training job of every product, and wait for it to end.
Prints, from the job's timestamps in the database:
  prepare s          submission -> the job's products are queued (validation, tenant stage)
  first started s    the job's start -> the first product's run marked running
  first finished s   the job's start -> the first product trained
  first product s    the first trained product's duration (lock, fit in a pool process,
                     store, record): includes the pool process's start-up
  median product s   median duration of the other products (pool processes warm)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from protocol import BUNDLED_KIEL, import_dataset_dir, scratch_database, submit_and_wait

from ovencast.db.runtime import Database
from ovencast.settings import Settings

TENANT = "latency"


async def _prepare(settings: Settings, directory: Path) -> None:
    database = Database.open(settings)
    try:
        await import_dataset_dir(database, TENANT, directory)
    finally:
        await database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", nargs="?", type=Path, default=BUNDLED_KIEL)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432",
                        help="PostgreSQL server (a database is created and dropped)")
    parser.add_argument("--idle", type=float, default=10.0,
                        help="seconds the worker waits before the job is submitted")
    parser.add_argument("--workers", type=int, default=2,
                        help="MAX_CONCURRENT_TRAINING_JOBS of the worker")
    parser.add_argument("--models", default="auto")
    args = parser.parse_args()

    with scratch_database(args.pg, "ovencast_bench") as (url, home):
        settings = Settings(ovencast_home=home, database_url=url,
                            max_concurrent_training_jobs=args.workers)
        worker: subprocess.Popen[bytes] | None = None
        try:
            asyncio.run(_prepare(settings, args.dataset))
            env = {**os.environ, "DATABASE_URL": url, "OVENCAST_HOME": str(home),
                   "MAX_CONCURRENT_TRAINING_JOBS": str(args.workers), "LOG_LEVEL": "WARNING"}
            started = time.time()
            worker = subprocess.Popen([sys.executable, "-m", "ovencast", "worker", "--name",
                                       "bench"], env=env)
            time.sleep(args.idle)
            result = asyncio.run(submit_and_wait(settings, TENANT,
                                                 models=args.models.split(",")))
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(timeout=60)
    job, runs = result.job, result.runs
    trained = sorted((r for r in runs if r.finished_at is not None and r.duration_s),
                     key=lambda r: r.finished_at)
    job_start = job.started_at.timestamp()
    first = trained[0]
    print(f"worker up {job_start - started:.1f} s before the job started "
          f"(idle {args.idle:g} s); job {job.status}, {len(trained)} products")
    print(f"prepare s          {job_start - result.submitted:.2f}")
    print(f"first started s    {min(r.started_at.timestamp() for r in trained) - job_start:.2f}")
    print(f"first finished s   {first.finished_at.timestamp() - job_start:.2f}")
    print(f"first product s    {first.duration_s:.2f}")
    others = [r.duration_s for r in trained[1:] if r.duration_s is not None]
    if others:
        print(f"median product s   {statistics.median(others):.2f}")


if __name__ == "__main__":
    main()
