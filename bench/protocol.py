"""The evaluation protocol of the accuracy benchmarks: a real training with `--until` and a
forecast of the next 28 days, as a user would run them, scored against what sold.

Origins as in ../shared/reference/README.md: origin k's 28-day window ends k x 28 days
before the dataset's last sales date; training sees every sales row before the window.
A product is scored at an origin when its data reaches the window's end and it has at
least 365 days with a sales row before the window; a date without a sales row is skipped.
Regressors: `oracle` imports every regressor row (the window's measured weather and
footfall known, as in the reference), `fallback` only those up to the training's end, so
the forecast fills in the window's values as a bakery forecasting ahead must
(forecasting/future.py).

The service benchmarks (load.py, worker_latency.py, service_scale.py) share the set-up
at the end: a scratch PostgreSQL database with a dataset imported, and a job submitted
to the queue and waited for.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path

import asyncpg
import numpy as np
import pandas as pd
from sqlalchemy import select

from ovencast.datasets import service as datasets_service
from ovencast.datasets.reader import ParsedDataset, read_dataset_dir
from ovencast.db import migrate
from ovencast.db.runtime import Database, run_with_database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import TrainingJob, TrainingRun
from ovencast.db.tables.model_version import ModelVersion
from ovencast.forecasts.service import TenantForecast, forecast_tenant
from ovencast.jobs import repository as jobs_repository
from ovencast.jobs import service as jobs_service
from ovencast.settings import Settings
from ovencast.tenants import service as tenants_service
from ovencast.training.embedded import TrainedJob, train_tenant
from ovencast.training.pool import start_workers_early, stop_workers, worker_context

# (label, --models): every single family, the original approach, and auto.
METHODS: dict[str, list[str]] = {
    "seasonal_naive": ["seasonal_naive"],
    "auto_ets": ["auto_ets"],
    "mstl": ["mstl"],
    "mstl_weekly": ["mstl_weekly"],
    "croston": ["croston"],
    "tsb": ["tsb"],
    "lightgbm (global)": ["lightgbm"],
    "prophet (defaults)": ["prophet_holidays"],
    "original: prophet + optuna": ["prophet"],
    "auto": ["auto"],
}
ORIGINAL, AUTO = "original: prophet + optuna", "auto"
# The reference methods of ../shared/reference: file name part -> label.
REFERENCES = {"original": "reference: original", "plain_lightgbm": "reference: plain LightGBM"}

TENANT = "bench"
HORIZON = 28
MIN_HISTORY_DAYS = 365
REGRESSOR_MODES = ("oracle", "fallback")


@dataclass(frozen=True)
class Origin:
    index: int  # k: the window ends k x 28 days before the last sales date
    window_start: date
    window_end: date

    @property
    def until(self) -> date:
        return self.window_start - timedelta(days=1)


def origins(last_date: date, indexes: Sequence[int]) -> list[Origin]:
    out = []
    for k in indexes:
        end = last_date - timedelta(days=HORIZON * k)
        out.append(Origin(k, end - timedelta(days=HORIZON - 1), end))
    return out


def scored_products(sales: pd.DataFrame, origin: Origin) -> list[str]:
    """The products the reference scores at `origin` (module docstring)."""
    found = []
    for product, rows in sales.groupby("product"):
        days = pd.to_datetime(rows["date"]).dt.date
        if days.max() >= origin.window_end and (days < origin.window_start).sum() >= \
                MIN_HISTORY_DAYS:
            found.append(str(product))
    return found


def read_sales(directory: Path) -> pd.DataFrame:
    sales = pd.read_csv(directory / "sales.csv")
    sales["date"] = pd.to_datetime(sales["date"]).dt.date
    return sales


def cut(dataset: ParsedDataset, until: date, *, regressors: str) -> ParsedDataset:
    """The dataset as a user would have it on `until`: sales up to it, and the regressor
    rows up to it too (`fallback`) or all of them (`oracle`)."""
    kept = list(dataset.regressors)
    if regressors == "fallback":
        kept = [replace(c, values={d: v for d, v in c.values.items() if d <= until})
                for c in dataset.regressors]
    return ParsedDataset(sales=[r for r in dataset.sales if r.date <= until], regressors=kept,
                         files=dataset.files)


def import_cut(settings: Settings, dataset: ParsedDataset, *, country: str | None,
               subdivision: str | None) -> None:
    async def body(database: Database) -> None:
        async with unit_of_work(database.sessions) as session:
            tenant = await tenants_service.ensure_tenant(session, TENANT, country=country,
                                                         subdivision=subdivision)
            await datasets_service.import_dataset(session, tenant, dataset, source="bench")

    run_with_database(settings, body)


@dataclass(frozen=True)
class Run:
    """One method at one origin: what trained, the forecast rows, the training time."""

    trained: TrainedJob
    forecast: pd.DataFrame  # date, product, forecast, p10, p90
    seconds: float


WORKER_MODES = ("cold", "warm")


def warm_workers() -> None:
    """The pool's fork server started and done importing its preload, as in a service
    worker that has trained before (`ovencast worker` keeps its fork server): the time
    after this is the training's own."""
    start_workers_early()
    ready = worker_context().Process(target=os.getpid)  # returns once the preload is done
    ready.start()
    ready.join()


def train_and_forecast(settings: Settings, models: Sequence[str], origin: Origin, *,
                       workers: str = "cold") -> Run:
    """`ovencast train --until` then `ovencast forecast` of the window; the training
    timed from cold worker processes (a new `ovencast train`), or from warm ones
    (`workers="warm"`: a service worker's next job)."""
    if workers == "warm":
        warm_workers()
    else:
        stop_workers()
    started = time.perf_counter()
    trained = train_tenant(settings, TENANT, until=origin.until, models=list(models))
    seconds = time.perf_counter() - started

    async def forecast(database: Database) -> TenantForecast:
        async with unit_of_work(database.sessions) as session:
            tenant = await tenants_service.get_tenant(session, TENANT)
            return await forecast_tenant(session, tenant, settings=settings, days=HORIZON,
                                         start=origin.window_start)

    result = run_with_database(settings, forecast)
    return Run(trained=trained, forecast=result.forecast, seconds=seconds)


def run_at_origin(root: Path, home: str, dataset: ParsedDataset, models: Sequence[str],
                  origin: Origin, *, regressors: str, country: str | None,
                  subdivision: str | None, workers: str = "cold") -> Run:
    """One method at `origin`, in a fresh home `root/home`: the dataset as a user would
    have it on `origin.until` (`cut`) imported, then trained and forecast."""
    settings = fresh_settings(root, home)
    import_cut(settings, cut(dataset, origin.until, regressors=regressors), country=country,
               subdivision=subdivision)
    return train_and_forecast(settings, models, origin, workers=workers)


@dataclass(frozen=True)
class Score:
    wape: float
    bias: float
    coverage: float  # share of scored product-days inside P10..P90
    product_days: int


def pair(forecast: pd.DataFrame, sales: pd.DataFrame, products: Sequence[str],
         origin: Origin) -> pd.DataFrame:
    """Actual and forecast on the window's product-days with a sales row (inner join:
    a product without a forecast is left out, and counted by the caller)."""
    actual = sales.loc[sales["product"].isin(products)
                       & (sales["date"] >= origin.window_start)
                       & (sales["date"] <= origin.window_end)]
    joined = actual.merge(forecast, on=["date", "product"], how="inner")
    return joined.rename(columns={"quantity": "actual"})


def score(pairs: pd.DataFrame) -> Score:
    y = pairs["actual"].to_numpy(dtype=float)
    f = pairs["forecast"].to_numpy(dtype=float)
    total = float(np.abs(y).sum())
    low = pairs["p10"].to_numpy(dtype=float) if "p10" in pairs else np.full(len(y), np.nan)
    high = pairs["p90"].to_numpy(dtype=float) if "p90" in pairs else np.full(len(y), np.nan)
    known = ~np.isnan(low)
    inside = (y[known] >= low[known]) & (y[known] <= high[known])
    return Score(wape=float(np.abs(y - f).sum()) / total if total else float("nan"),
                 bias=float((f - y).sum()) / total if total else float("nan"),
                 coverage=float(inside.mean()) if known.any() else float("nan"),
                 product_days=len(pairs))


def reference_forecast(reference: Path | None, dataset: Path, method: str,
                       origin: Origin) -> pd.DataFrame | None:
    """The reference method's forecasts at `origin` (`<dataset>_<method>_oKK.csv`)."""
    if reference is None:
        return None
    path = reference / f"{dataset.resolve().name}_{method}_o{origin.index:02d}.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    frame["date"] = pd.to_datetime(frame["date"]).dt.date
    return frame


def fresh_settings(root: Path, name: str, *, workers: int = 2) -> Settings:
    return Settings(ovencast_home=root / name, max_concurrent_training_jobs=workers)


# -- the service benchmarks' set-up ---------------------------------------------------------
BUNDLED_KIEL = Path(__file__).resolve().parents[1] / "src" / "ovencast" / "demo_data" / "kiel"


async def _admin(server: str, statement: str) -> None:
    connection = await asyncpg.connect(f"{server}/postgres")
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def scratch_database(server: str, prefix: str) -> Iterator[tuple[str, Path]]:
    """A new database `<prefix>_<random>` on `server` (postgresql://user@host:port),
    migrated: its SQLAlchemy URL and a home directory named after it. Dropped on leaving,
    whatever happened."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(server, f"CREATE DATABASE {name}"))
    url = f"{server.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    try:
        migrate.upgrade(url)
        yield url, Path(f"/tmp/{name}")
    finally:
        asyncio.run(_admin(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def import_dataset_dir(database: Database, tenant: str, directory: Path) -> None:
    """Imports the dataset in `directory` into `tenant` (made if new, in Kiel's Germany,
    Schleswig-Holstein), in one unit of work."""
    async with unit_of_work(database.sessions) as session:
        row = await tenants_service.ensure_tenant(session, tenant, country="DE",
                                                  subdivision="SH")
        await datasets_service.import_dataset(session, row, read_dataset_dir(directory),
                                              source=str(directory))


@dataclass(frozen=True)
class FinishedJob:
    """A job submitted to the service's queue and waited for (`submit_and_wait`)."""

    submitted: float  # time.time() just before the submission
    job: TrainingJob
    runs: list[TrainingRun]
    wapes: list[float]  # the holdout WAPE of every version the job trained


async def submit_and_wait(settings: Settings, tenant: str, *,
                          models: Sequence[str] | None = None, until: date | None = None,
                          poll_s: float = 0.5) -> FinishedJob:
    """Submit a training job of every product of `tenant` to the queue, as `POST
    /training-jobs` does, and poll the database until the job has ended (the workers,
    started by the caller, train it)."""
    database = Database.open(settings)
    try:
        submitted = time.time()
        async with unit_of_work(database.sessions) as session:
            row = await tenants_service.get_tenant(session, tenant)
            job = await jobs_service.submit_job(session, row, models=models, until=until)
        while True:
            await asyncio.sleep(poll_s)
            async with unit_of_work(database.sessions) as session:
                found = await jobs_repository.get_job(session, job.id)
                assert found is not None
                if found.finished_at is None:
                    continue
                runs = list(await jobs_repository.runs_of(session, job.id))
                metrics = (await session.scalars(select(ModelVersion.metrics).where(
                    ModelVersion.training_job_id == job.id))).all()
                return FinishedJob(submitted=submitted, job=found, runs=runs,
                                   wapes=[float(m["wape"]) for m in metrics
                                          if m.get("wape") is not None])
    finally:
        await database.close()
