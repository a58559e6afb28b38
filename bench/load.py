"""Forecast requests under load, and whether the API stays responsive meanwhile. Prints
numbers, asserts nothing.

    python bench/load.py [DATASET_DIR] [--requests 2000] [--concurrency 32] [--days 7]
                         [--pg postgresql://postgres@127.0.0.1:5432]

In a fresh PostgreSQL database: migrate, import the dataset (default: the bundled Kiel
copy), train it (`auto`), start one `ovencast serve` process (no rate limit), then send
`--requests` forecast requests (`GET /api/v1/tenants/T/forecasts?days=N`) from
`--concurrency` concurrent clients while a probe asks `/health` every 50 ms. Prints the
forecast throughput and latency percentiles, and the /health latencies during the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from protocol import BUNDLED_KIEL, import_dataset_dir, scratch_database

from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.keys import service as keys_service
from ovencast.keys.roles import Role
from ovencast.settings import Settings
from ovencast.training.embedded import train_tenant

TENANT = "kiel"
HEALTH_EVERY_S = 0.05


async def _prepare(settings: Settings, directory: Path) -> str:
    database = Database.open(settings)
    try:
        await import_dataset_dir(database, TENANT, directory)
        async with unit_of_work(database.sessions) as session:
            issued = await keys_service.create_key(session, tenant=TENANT, role=Role.READ,
                                                   name="load bench")
        return issued.key
    finally:
        await database.close()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _load(base: str, key: str, *, requests: int, concurrency: int, days: int
                ) -> tuple[list[float], list[float], list[int], float]:
    latencies: list[float] = []
    statuses: list[int] = []
    health: list[float] = []
    remaining = requests
    done = asyncio.Event()
    limits = httpx.Limits(max_connections=concurrency + 1)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits,
                                 headers={"Authorization": f"Bearer {key}"}) as client:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                response = await client.get(f"/api/v1/tenants/{TENANT}/forecasts",
                                            params={"days": days})
                latencies.append(time.perf_counter() - started)
                statuses.append(response.status_code)

        async def probe() -> None:
            async with httpx.AsyncClient(base_url=base, timeout=30) as prober:
                while not done.is_set():
                    started = time.perf_counter()
                    await prober.get("/health")
                    health.append(time.perf_counter() - started)
                    await asyncio.sleep(HEALTH_EVERY_S)

        prober = asyncio.create_task(probe())
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        done.set()
        await prober
    return latencies, health, statuses, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", nargs="?", type=Path, default=BUNDLED_KIEL)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()

    with scratch_database(args.pg, "ovencast_load") as (url, home):
        settings = Settings(ovencast_home=home, database_url=url,
                            max_concurrent_training_jobs=2)
        server: subprocess.Popen[bytes] | None = None
        try:
            key = asyncio.run(_prepare(settings, args.dataset))
            train_tenant(settings, TENANT)
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            env = {**os.environ, "DATABASE_URL": url, "OVENCAST_HOME": str(home),
                   "RATE_LIMIT_PER_MINUTE": "0", "LOG_LEVEL": "WARNING"}
            server = subprocess.Popen([sys.executable, "-m", "ovencast", "serve", "--port",
                                       str(port)], env=env)
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            latencies, health, statuses, wall = asyncio.run(_load(
                base, key, requests=args.requests, concurrency=args.concurrency,
                days=args.days))
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
    ok = sum(1 for s in statuses if s == 200)
    print(f"{len(latencies)} forecast requests ({args.days} days, {ok} answered 200) at "
          f"concurrency {args.concurrency} in {wall:.1f} s: {len(latencies) / wall:.1f} "
          f"requests/s")
    print(f"forecast latency s: p50 {_percentile(latencies, 0.5):.3f}  "
          f"p95 {_percentile(latencies, 0.95):.3f}  p99 {_percentile(latencies, 0.99):.3f}  "
          f"max {max(latencies):.3f}")
    print(f"/health during the run ({len(health)} probes) ms: "
          f"p50 {statistics.median(health) * 1000:.1f}  "
          f"p99 {_percentile(health, 0.99) * 1000:.1f}  max {max(health) * 1000:.1f}")


if __name__ == "__main__":
    main()
