"""How training time and memory grow with a tenant's product count (issue #17). Prints
numbers, asserts nothing.

    python bench/scale.py N [N ...] [--data ../shared/data/northsea] [--until 2023-10-03]
                          [--workers W] [--json FILE] [--plot FILE.png]
    python bench/scale.py N [N ...] --write DIR    # only the tenants' files, in DIR/N

For each N, in a fresh OVENCAST_HOME (embedded shape): writes a tenant of N products made
from the dataset's series (product i is series i mod 24 times a factor drawn from
0.25..4, with Poisson noise; seeded, so every run sees the same data; the dataset's
weather, traffic and calendar files as they are), imports it, trains it with the default
model choice (`auto`) up to `--until`, and prints:

- import: seconds to read and import the files (`ovencast import`'s work);
- train: seconds of `train_tenant` (`ovencast train`'s work), of which `prepare` (load,
  validate, the tenant stage, record the runs) and `stage` (the tenant stage's boosters);
  `first` is when the first product's training started;
- products/min: products trained per minute of `train`;
- CPU: CPU seconds (user + system) of `train`, in this process (`main cpu`) and in all
  processes (`cpu`, the pool processes included): unlike wall time, not inflated by other
  work on a shared machine; the line also says how much of `main cpu` was spent before
  the product stage (load, validate, the tenant stage): the rest competes with the pool;
- WAPE: the mean holdout WAPE of the products trained (the same data every run: a
  change that should not touch accuracy must leave it where it was), and `pooled`: the
  same WAPEs weighted by each product's holdout sales (sum |y - yhat| over sum |y| of
  the tenant, what a chain's waste and lost sales follow; small products weigh little);
- peak RSS per process kind (MB), from /proc, sampled every 0.2 s: `import` (this process
  while it imports, as `ovencast import` would), `main` (this process while it trains, as
  `ovencast train` would: it loads the data and trains the tenant stage; the kernel's peak
  is reset after the import, /proc/self/clear_refs), `worker` (the largest pool process),
  `tree` (the largest sum over this process and all its descendants at one moment, the
  import included);
- store MB: the bytes in the model store once the job has ended (the versions' artifacts
  and what they refer to: it must grow in step with the product count).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ovencast.datasets import service as datasets_service
from ovencast.datasets.reader import DataLimits, read_dataset_dir
from ovencast.db.runtime import Database, run_with_database
from ovencast.db.session import unit_of_work
from ovencast.events.progress import ProductEvent, Started
from ovencast.forecasting.holdout import HoldoutSplit
from ovencast.jobs.states import RunStatus
from ovencast.observability.logs import configure_logging
from ovencast.settings import Settings
from ovencast.tenants import service as tenants_service
from ovencast.training.embedded import train_tenant
from ovencast.training.pool import stop_workers
from ovencast.training.prepare import PreparedJob

TENANT = "chain"
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "northsea"
FACTORS = (0.25, 4.0)
HOLDOUT_DAYS = HoldoutSplit().days


def write_tenant(source: Path, target: Path, n_products: int, *, seed: int = 0) -> int:
    """A dataset directory of `n_products` products made from `source`'s series (module
    docstring). Returns the number of sales rows."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("weather.csv", "traffic.csv", "calendar.csv"):
        if (source / name).exists():
            shutil.copy(source / name, target / name)
    sales = pd.read_csv(source / "sales.csv", parse_dates=["date"])
    series = [(str(p), rows.reset_index(drop=True))
              for p, rows in sales.groupby("product", sort=True)]
    rng = np.random.default_rng(seed)
    rows = 0
    with (target / "sales.csv").open("w", encoding="utf-8") as out:
        out.write("date,product,quantity\n")
        for i in range(n_products):
            base_name, base = series[i % len(series)]
            factor = rng.uniform(*FACTORS)
            quantity = rng.poisson(base["quantity"].to_numpy() * factor)
            name = f"{base_name}_{i:05d}"
            days = base["date"].dt.strftime("%Y-%m-%d")
            out.writelines(f"{d},{name},{q}\n" for d, q in zip(days, quantity, strict=True))
            rows += len(base)
    return rows


class RssSampler:
    """Peak resident memory of this process and its descendants, read from /proc
    (VmHWM: each process's own peak, kept by the kernel; VmRSS summed over the tree)."""

    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self.peaks: dict[str, float] = {"main": 0.0, "worker": 0.0, "tree": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def restart_main(self) -> float:
        """This process's peak so far (MB); then the kernel's peak of it is reset to its
        current RSS, so that `peaks["main"]` counts what happens from here on (a separate
        process in real use: `ovencast import`, then `ovencast train`)."""
        self._sample()
        found = self.peaks["main"]
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux 4.0+)
        self.peaks["main"] = 0.0
        self._sample()
        return found

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        me = os.getpid()
        tree = 0.0
        for pid, (parent, hwm, rss) in _descendants(me).items():
            tree += rss
            if pid == me:
                self.peaks["main"] = max(self.peaks["main"], hwm)
            elif parent != me:  # forked by the fork server: a pool process
                self.peaks["worker"] = max(self.peaks["worker"], hwm)
            # (children of this process: the fork server, which only preloads imports,
            # and multiprocessing's resource tracker)
        self.peaks["tree"] = max(self.peaks["tree"], tree)


def _descendants(root: int) -> dict[int, tuple[int, float, float]]:
    """pid -> (parent pid, VmHWM, VmRSS in MB) of `root` and every process below it."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry)] = int(fields[1])
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found.update(children)
        frontier.extend(children)
    memory = {}
    for pid in found:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if "VmHWM" in values:
            memory[pid] = (parents.get(pid, 0), _mb(values["VmHWM"]), _mb(values["VmRSS"]))
    return memory


def _mb(field: str) -> float:
    return int(field.split()[0]) / 1024  # "123456 kB"


@dataclass
class ScaleRun:
    products: int
    sales_rows: int
    import_s: float
    train_s: float
    prepare_s: float
    stage_s: float
    first_product_s: float
    trained: int
    refused: int
    failed: int
    products_per_min: float
    main_cpu_s: float
    cpu_s: float
    mean_wape: float
    import_mb: float
    main_mb: float
    worker_mb: float
    tree_mb: float
    store_mb: float = float("nan")
    prepare_main_cpu_s: float = float("nan")  # of main_cpu_s, before the product stage
    pooled_wape: float = float("nan")  # the holdout WAPEs weighted by each one's sales


class _Clock:
    """The moments a training reaches: prepared, its first product started."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.job: PreparedJob | None = None
        self.prepared_s = float("nan")
        self.prepared_cpu_s = float("nan")  # this process's CPU time when prepared
        self.first_product_s = float("nan")

    def prepared(self, prepared: PreparedJob) -> None:
        self.job, self.prepared_s = prepared, time.perf_counter() - self.started
        self.prepared_cpu_s = _cpu()[0]

    def product_event(self, event: ProductEvent) -> None:
        if isinstance(event, Started) and self.first_product_s != self.first_product_s:
            self.first_product_s = time.perf_counter() - self.started

    def products_done(self) -> None:
        pass


def _cpu() -> tuple[float, float]:
    """CPU seconds so far of this process, and of it and its reaped descendants."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    mine = own.ru_utime + own.ru_stime
    return mine, mine + children.ru_utime + children.ru_stime


def import_tenant(settings: Settings, directory: Path) -> None:
    parsed = read_dataset_dir(directory, limits=DataLimits.from_settings(settings))

    async def body(database: Database) -> None:
        async with unit_of_work(database.sessions) as session:
            tenant = await tenants_service.ensure_tenant(session, TENANT, country="DE",
                                                         subdivision="NI")
            await datasets_service.import_dataset(session, tenant, parsed,
                                                  source=str(directory))

    run_with_database(settings, body)


def measure(n_products: int, args: argparse.Namespace, tmp: Path) -> ScaleRun:
    data = tmp / f"data-{n_products}"
    rows = write_tenant(args.data, data, n_products, seed=args.seed)
    options: dict[str, Any] = {"ovencast_home": tmp / f"home-{n_products}",
                               "import_max_rows": max(rows, 5_000_000)}
    if args.workers:
        options["max_concurrent_training_jobs"] = args.workers
    settings = Settings(**options)
    stop_workers()  # the fork server of the previous N must not count here
    with RssSampler() as rss:
        started = time.perf_counter()
        import_tenant(settings, data)
        import_s = time.perf_counter() - started
        import_mb = rss.restart_main()
        started, cpu = time.perf_counter(), _cpu()
        clock = _Clock(started)
        trained = train_tenant(settings, TENANT, until=args.until, observer=clock)
        train_s = time.perf_counter() - started
        stop_workers()  # reaped: its pool processes' CPU time counts as our children's
        main_cpu_s, cpu_s = (after - before for after, before in zip(_cpu(), cpu, strict=True))
    statuses = [run.status for run in trained.runs]
    done = statuses.count(RunStatus.TRAINED)
    wapes = {o.product: float(w) for o in trained.outcomes
             if (w := o.metrics.get("wape")) is not None}
    sold = holdout_sales(data / "sales.csv", args.until)
    shutil.rmtree(data)
    weights = np.array([sold.get(product, 0.0) for product in wapes])
    stage = (clock.job.global_models or {}) if clock.job else {}
    stored = Path(settings.resolved_model_storage_path)
    store_mb = sum(f.stat().st_size for f in stored.rglob("*") if f.is_file()) / 2**20
    shutil.rmtree(settings.ovencast_home, ignore_errors=True)
    return ScaleRun(
        products=n_products, sales_rows=rows, import_s=import_s, train_s=train_s,
        prepare_s=clock.prepared_s, stage_s=float(stage.get("seconds", float("nan"))),
        first_product_s=clock.first_product_s, trained=done,
        refused=statuses.count(RunStatus.REFUSED),
        failed=len(statuses) - done - statuses.count(RunStatus.REFUSED),
        products_per_min=done / train_s * 60, main_cpu_s=main_cpu_s, cpu_s=cpu_s,
        mean_wape=float(np.mean(list(wapes.values()))) if wapes else float("nan"),
        pooled_wape=(float(np.dot(list(wapes.values()), weights) / weights.sum())
                     if weights.sum() > 0 else float("nan")),
        import_mb=import_mb,
        main_mb=rss.peaks["main"],
        worker_mb=rss.peaks["worker"], tree_mb=rss.peaks["tree"], store_mb=store_mb,
        prepare_main_cpu_s=clock.prepared_cpu_s - cpu[0])


def holdout_sales(sales: Path, until: date, days: int = HOLDOUT_DAYS) -> dict[str, float]:
    """Each product's units sold on the holdout's days (the `days` up to `until`): the
    weights that pool the products' holdout WAPEs into the tenant's (sum |y - yhat| over
    sum |y|), the measure a chain's waste and lost sales follow."""
    frame = pd.read_csv(sales, usecols=["date", "product", "quantity"],
                        dtype={"date": str, "product": str, "quantity": float})
    first = (pd.Timestamp(until) - pd.Timedelta(days=days - 1)).date().isoformat()
    held = frame.loc[(frame["date"] >= first) & (frame["date"] <= until.isoformat())]
    return {str(p): float(q) for p, q in held.groupby("product")["quantity"].sum().items()}


def line(run: ScaleRun) -> str:
    return (f"N={run.products}: import {run.import_s:.1f} s, train {run.train_s:.1f} s "
            f"(prepare {run.prepare_s:.1f} s, stage {run.stage_s:.1f} s, first product at "
            f"{run.first_product_s:.1f} s), {run.products_per_min:.1f} products/min, CPU "
            f"{run.cpu_s:.0f} s (main {run.main_cpu_s:.0f} s, {run.prepare_main_cpu_s:.0f} s of it "
            f"before the product stage), mean WAPE {run.mean_wape:.4f} (pooled "
            f"{run.pooled_wape:.4f}), "
            f"trained {run.trained} refused {run.refused} failed {run.failed}, peak RSS MB "
            f"import {run.import_mb:.0f} main {run.main_mb:.0f} worker {run.worker_mb:.0f} "
            f"tree {run.tree_mb:.0f}, store {run.store_mb:.1f} MB")


def table(runs: list[ScaleRun]) -> str:
    head = ("| products | sales rows | import s | train s | prepare s | stage s | "
            "first product s | products/min | CPU s | main CPU s | WAPE | pooled WAPE | "
            "trained | "
            "import MB | main MB | worker MB | tree MB | store MB |")
    out = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in runs:
        out.append(f"| {r.products:,} | {r.sales_rows:,} | {r.import_s:.1f} | "
                   f"{r.train_s:.1f} | {r.prepare_s:.1f} | {r.stage_s:.1f} | "
                   f"{r.first_product_s:.1f} | {r.products_per_min:.1f} | {r.cpu_s:.0f} | "
                   f"{r.main_cpu_s:.0f} | {r.mean_wape:.4f} | {r.pooled_wape:.4f} | {r.trained} | "
                   f"{r.import_mb:.0f} | {r.main_mb:.0f} | {r.worker_mb:.0f} | "
                   f"{r.tree_mb:.0f} | {r.store_mb:.1f} |")
    return "\n".join(out)


def plot(runs: list[ScaleRun], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    n = [r.products for r in runs]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(n, [r.train_s / 60 for r in runs], "o-", label="train (wall)")
    left.plot(n, [r.cpu_s / 60 / (os.cpu_count() or 1) for r in runs], "s--",
              label="train CPU / cores")
    left.plot(n, [r.prepare_s / 60 for r in runs], "d-.", label="prepare (tenant stage)")
    left.plot(n, [r.import_s / 60 for r in runs], "^:", label="import")
    left.set(xscale="log", yscale="log", xlabel="products", ylabel="minutes",
             title="time")
    right.plot(n, [r.import_mb / 1024 for r in runs], "d-.", label="import")
    right.plot(n, [r.main_mb / 1024 for r in runs], "o-", label="main process (train)")
    right.plot(n, [r.worker_mb / 1024 for r in runs], "s--", label="largest worker")
    right.plot(n, [r.tree_mb / 1024 for r in runs], "^:", label="whole tree")
    right.set(xscale="log", yscale="log", xlabel="products", ylabel="GB",
              title="peak RSS")
    low, high = right.get_ylim()
    right.set_yticks([t for t in (0.25, 0.5, 1, 2, 4, 8, 16, 32) if low <= t <= high])
    for axis in (left, right):
        axis.set_xticks(n, [f"{v:,}" for v in n])
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.yaxis.set_major_formatter(ScalarFormatter())
        axis.yaxis.set_minor_formatter(NullFormatter())
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.suptitle(f"bench/scale.py, embedded shape, {os.cpu_count()} cores")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("products", type=int, nargs="+")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--until", type=date.fromisoformat, default=date(2023, 10, 3))
    parser.add_argument("--workers", type=int, default=0,
                        help="MAX_CONCURRENT_TRAINING_JOBS (default: the setting's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--write", type=Path, default=None, metavar="DIR",
                        help="only write each N's tenant to DIR/N (for "
                             "bench/origins.py) and stop")
    args = parser.parse_args()
    if args.write:
        for n in args.products:
            rows = write_tenant(args.data, args.write / str(n), n, seed=args.seed)
            print(f"{args.write / str(n)}: {n} products, {rows:,} sales rows")
        return
    runs = []
    with tempfile.TemporaryDirectory(prefix="ovencast-scale-") as tmp:
        configure_logging(log_file=Path(tmp) / "bench.log", stderr_level="ERROR")
        for n in args.products:
            runs.append(measure(n, args, Path(tmp)))
            print(line(runs[-1]), flush=True)
            if args.json:  # after every N: a long series stopped early keeps its figures
                args.json.write_text(json.dumps([asdict(r) for r in runs], indent=1))
    print(table(runs))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GB, "
          f"Python {platform.python_version()}")
    if args.plot:
        plot(runs, args.plot)


if __name__ == "__main__":
    main()
