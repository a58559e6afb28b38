"""Fixtures shared by the service-level and CLI tests.

Databases: `database_url` runs a test once on SQLite and once on PostgreSQL, each a fresh
database at the head revision (PostgreSQL: cloned from a template migrated once per
session). `pg_database_url` is a fresh *empty* PostgreSQL database, for migration tests.
A test that needs PostgreSQL is skipped when the server is down, except under CI=true,
where it fails: CI must never silently skip the PostgreSQL half of the suite.

CLI: `run_cli` runs `python -m ovencast ...` in a subprocess with an environment built
from a `Settings` object (`settings_env`), so the child sees exactly what the test
configured and nothing leaks in from the developer's shell.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import numpy as np
import pytest

from ovencast.datasets import service as datasets_service
from ovencast.datasets.reader import read_dataset_dir
from ovencast.db import migrate
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.db.tables import TrainingJob, TrainingRun
from ovencast.settings import Settings, get_settings
from ovencast.sources.breakers import BreakerRegistry
from ovencast.sources.http import HttpSource
from ovencast.tenants import service as tenants_service
from ovencast.testing.upstream_server import (
    RunningServer,
    ServedTenant,
    serve_in_thread,
    served_tenant,
)
from ovencast.training import pool
from ovencast.training.embedded import finish_training, prepare_training
from ovencast.training.prepare import PreparedJob
from ovencast.training.task import ProductTask

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
BUNDLED_DATA = REPO_ROOT / "src" / "ovencast" / "demo_data"

# The server the PostgreSQL tests use; the default is the one CI starts (.ci/run).
PG_HOST = os.environ.get("OVENCAST_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("OVENCAST_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("OVENCAST_TEST_PG_USER", "postgres")
PG_CONNECT_TIMEOUT_S = 3.0
# A CLI command that takes longer than this is hung, not slow.
CLI_TIMEOUT_S = 240.0


def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking call (Alembic, which runs its own event loop; `asyncio.run`) in a
    fresh thread, so it works whether or not the caller is inside a running loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result()


def run_async(make_coro: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make_coro()

    return in_thread(asyncio.run, main())


# ------------------------------------------------------------------------ environment
SETTINGS_ENV_VARS = tuple(name.upper() for name in Settings.model_fields)


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OVENCAST_HOME, DATABASE_URL, ... from the developer's shell reaches a test, nor
    a terminal size: pytest-xdist's workers set COLUMNS=80, and the CLI children's tables
    (140 wide without a terminal) would wrap differently under `-n`."""
    for name in (*SETTINGS_ENV_VARS, "COLUMNS", "LINES"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment under which a child `ovencast` process sees `settings`."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTINGS_ENV_VARS}
    env.update({
        "OVENCAST_HOME": str(settings.ovencast_home),
        "DATABASE_URL": settings.resolved_database_url,
        "MAX_TRAINING_TIME_MINUTES": repr(settings.max_training_time_minutes),
        "LOCK_WAIT_TIMEOUT_SECONDS": repr(settings.lock_wait_timeout_seconds),
        "MAX_CONCURRENT_TRAINING_JOBS": str(settings.max_concurrent_training_jobs),
        "MODEL_VERSIONING_ENABLED": str(settings.model_versioning_enabled).lower(),
        "MODEL_BACKUP_ENABLED": str(settings.model_backup_enabled).lower(),
        "PYTHONUNBUFFERED": "1",
    })
    if settings.model_storage_path:
        env["MODEL_STORAGE_PATH"] = settings.model_storage_path
    env.update(extra)
    return env


def cli_command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "ovencast", *map(str, args)]


def run_cli_process(args: Sequence[str], env: Settings | Mapping[str, str], *,
                    timeout: float = CLI_TIMEOUT_S, cwd: Path | None = None
                    ) -> subprocess.CompletedProcess[str]:
    environment = settings_env(env) if isinstance(env, Settings) else dict(env)
    return subprocess.run(cli_command(args), env=environment, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`run_cli(args, env)`: run `python -m ovencast *args` with `env` (a `Settings` or a
    complete environment); returns the CompletedProcess (text stdout/stderr)."""

    def run(args: Sequence[str], env: Settings | Mapping[str, str], *,
            timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return run_cli_process(args, env, timeout=timeout, cwd=tmp_path)

    return run


def one_line(text: str) -> str:
    """CLI output with rich's line wrapping undone, for asserting on messages."""
    return " ".join(text.split())


# ------------------------------------------------------------------------- PostgreSQL
def pg_url(database: str, *, driver: str = "asyncpg") -> str:
    scheme = f"postgresql+{driver}" if driver else "postgresql"
    return f"{scheme}://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER,
                                       database="postgres", timeout=PG_CONNECT_TIMEOUT_S)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def pg_admin(statement: str) -> None:
    run_async(lambda: _admin(statement))


def _create_database(*, template: str | None = None) -> str:
    name = f"ovencast_test_{uuid.uuid4().hex[:8]}"
    suffix = f" TEMPLATE {template}" if template else ""
    pg_admin(f"CREATE DATABASE {name}{suffix}")
    return name


def _drop_database(name: str) -> None:
    pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The maintenance database URL of the PostgreSQL server, once it answered."""
    try:
        pg_admin("SELECT 1")
    except Exception as exc:
        reason = (f"PostgreSQL at {PG_HOST}:{PG_PORT} (user {PG_USER}) is not reachable: "
                  f"{type(exc).__name__}: {exc}")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL is required in CI. {reason}")
        pytest.skip(reason)
    return pg_url("postgres")


@pytest.fixture(scope="session")
def pg_template_database(pg_server_url: str) -> Iterator[str]:
    """A database migrated to head once per session; tests get clones of it."""
    name = _create_database()
    try:
        in_thread(migrate.upgrade, pg_url(name))
        yield name
    finally:
        _drop_database(name)


@pytest.fixture
def pg_database_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database (no schema), dropped after the test."""
    name = _create_database()
    yield pg_url(name)
    _drop_database(name)


@pytest.fixture
def pg_migrated_url(pg_template_database: str) -> Iterator[str]:
    """A fresh PostgreSQL database at the head revision, dropped after the test."""
    name = _create_database(template=pg_template_database)
    yield pg_url(name)
    _drop_database(name)


# ------------------------------------------------------------------------------ Redis
# The server the rate-limit tests use (the machine's; CI has the same).
REDIS_URL = os.environ.get("OVENCAST_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis server's URL, once it answered; skipped when it is down, failed under
    CI=true (as PostgreSQL)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=PG_CONNECT_TIMEOUT_S)
    try:
        client.ping()
    except redis.RedisError as exc:
        reason = f"Redis at {REDIS_URL} is not reachable: {type(exc).__name__}: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Redis is required in CI. {reason}")
        pytest.skip(reason)
    finally:
        client.close()
    return REDIS_URL


# ----------------------------------------------------------------------------- SQLite
@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a not yet existing SQLite database file in the test's directory."""
    return f"sqlite+aiosqlite:///{tmp_path / 'db' / 'ovencast.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str:
    """A fresh database at the head revision, on each backend in turn."""
    if backend == "postgres":
        return str(request.getfixturevalue("pg_migrated_url"))
    url = str(request.getfixturevalue("sqlite_url"))
    Path(url.removeprefix("sqlite+aiosqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    in_thread(migrate.upgrade, url)
    return url


def make_settings(home: Path, database_url: str | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "ovencast_home": home,
        "database_url": database_url,
        # Each pool process imports the whole modelling stack (seconds of CPU); the tiny
        # jobs of these tests train faster in one. Tests of parallelism ask for more.
        "max_concurrent_training_jobs": 1,
        "lock_wait_timeout_seconds": 120.0,
        "log_level": "INFO",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "home", database_url)


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    database = Database.open(settings)
    await database.ready()
    try:
        yield database
    finally:
        await database.close()


# ------------------------------------------------------------------------------- data
def _dataset_dir(name: str) -> Path | None:
    for root in (SHARED_DATA, BUNDLED_DATA):
        if (root / name / "sales.csv").is_file():
            return root / name
    return None


@pytest.fixture(scope="session")
def kiel_dir() -> Path:
    """The real Kiel bakery data (shared/data/kiel, else the copy bundled for the demo)."""
    found = _dataset_dir("kiel")
    if found is None:
        pytest.fail("the Kiel dataset is missing from shared/data and src/ovencast/demo_data")
    return found


@pytest.fixture(scope="session")
def northsea_dir() -> Path:
    found = _dataset_dir("northsea")
    if found is None:
        pytest.skip("the North Sea dataset is not available (shared/data/northsea)")
    return found


def copy_dataset(source: Path, target: Path) -> Path:
    """A writable copy of a dataset directory (shared data is read-only)."""
    shutil.copytree(source, target)
    for path in target.iterdir():
        path.chmod(0o644)
    target.chmod(0o755)
    return target


def write_tiny_dataset(directory: Path, products: Mapping[str, int] | Sequence[str], *,
                       days: int = 90, start: date = date(2024, 1, 1), seed: int = 7,
                       weather: bool = False, calendar: bool = False) -> Path:
    """Write a generated dataset: `products` maps each product to its number of days
    (or is a list of products that all get `days` days, ending on the same date).
    Series are weekly-seasonal Poisson counts, distinct per product."""
    counts = dict(products) if isinstance(products, Mapping) else dict.fromkeys(products, days)
    span = max(counts.values())
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["date,product,quantity"]
    for index, (product, n_days) in enumerate(counts.items()):
        level = 20.0 + 15.0 * index
        first = start + timedelta(days=span - n_days)
        for offset in range(n_days):
            day = first + timedelta(days=offset)
            weekly = 1.0 + 0.4 * (day.weekday() >= 5)
            lines.append(f"{day.isoformat()},{product},{rng.poisson(level * weekly)}")
    (directory / "sales.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    all_days = [start + timedelta(days=i) for i in range(span + 60)]
    if weather:
        rows = [f"{d.isoformat()},{10 + 8 * np.sin(i / 20):.2f}" for i, d in enumerate(all_days)]
        (directory / "weather.csv").write_text(
            "date,temperature_c\n" + "\n".join(rows) + "\n", encoding="utf-8")
    if calendar:
        rows = [f"{d.isoformat()},{int(d.month == 12 and d.day in (25, 26))}"
                for d in all_days]
        (directory / "calendar.csv").write_text(
            "date,public_holiday\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return directory


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Callable[..., Path]:
    """Factory: `tiny_dataset(products=("a", "b"), days=90, name="tiny", ...)` writes a
    small generated dataset directory under tmp_path and returns it."""

    def make(products: Mapping[str, int] | Sequence[str] = ("bread", "rolls"), *,
             name: str = "tiny", **kwargs: Any) -> Path:
        return write_tiny_dataset(tmp_path / name, products, **kwargs)

    return make


# -------------------------------------------------------------- service-level helpers
async def import_directory(database: Database, tenant: str, directory: Path, *,
                           country: str | None = None, subdivision: str | None = None
                           ) -> datasets_service.ImportSummary:
    """What `ovencast import` does, in-process."""
    dataset = read_dataset_dir(directory)
    async with unit_of_work(database.sessions) as session:
        row = await tenants_service.ensure_tenant(session, tenant, country=country,
                                                  subdivision=subdivision)
        return await datasets_service.import_dataset(session, row, dataset,
                                                     source=str(directory))


@dataclass(frozen=True)
class JobResult:
    job: TrainingJob
    runs: dict[str, TrainingRun]
    prepared: PreparedJob


async def train_in_process(
    database: Database, tenant: str, *, products: Sequence[str] | None = None,
    models: Sequence[str] = ("seasonal_naive",), until: date | None = None,
    settings: Settings | None = None,
    adjust_tasks: Callable[[list[ProductTask]], list[ProductTask]] | None = None,
) -> JobResult:
    """What `ovencast train` does (training.embedded: prepare, process pool, finish) on
    this test's database. `adjust_tasks` may replace tasks before they go to the pool."""
    settings = settings or database.settings
    prepared = await prepare_training(database, tenant, products=products, until=until,
                                      models=models)
    tasks = list(prepared.tasks)
    if adjust_tasks is not None:
        tasks = adjust_tasks(tasks)
    outcomes = await asyncio.to_thread(pool.run_tasks, tasks, settings=settings)
    trained = await finish_training(database, prepared.job_id, outcomes)
    return JobResult(job=trained.job, runs={r.product: r for r in trained.runs},
                     prepared=prepared)


# ---------------------------------------------------------------- upstream data server
# The real data server (ovencast.testing.upstream_server) on an ephemeral loopback port
# (in a thread, uvicorn), settings pointing at it, and its admin endpoints: used by the
# tests of sources/ (the HTTP client) and of testing/ (the server itself).
UPSTREAM_TENANT = "kiel"



@pytest.fixture(scope="session")
def kiel_served(kiel_dir: Path) -> ServedTenant:
    """The Kiel data as the services hold it (parsed once per session)."""
    return served_tenant(kiel_dir, tenant=UPSTREAM_TENANT, country="DE", subdivision="SH")


@pytest.fixture
def data_server(kiel_served: ServedTenant) -> Iterator[RunningServer]:
    """A fresh data server (no faults, zero counters) serving the Kiel data."""
    with serve_in_thread(kiel_served) as server:
        yield server


class Admin:
    """The data server's admin endpoints."""

    def __init__(self, url: str) -> None:
        self.url = url

    def faults(self, *specs: str | dict[str, Any], replace: bool = True) -> None:
        response = httpx.post(f"{self.url}/_faults",
                              json={"faults": list(specs), "replace": replace})
        response.raise_for_status()

    def clear_faults(self) -> None:
        httpx.delete(f"{self.url}/_faults").raise_for_status()

    def requests(self, service: str | None = None) -> int:
        stats = httpx.get(f"{self.url}/_stats").json()
        return int(stats["total"] if service is None else stats["requests"][service])

    def reset_stats(self) -> None:
        httpx.delete(f"{self.url}/_stats").raise_for_status()


@pytest.fixture
def admin(data_server: RunningServer) -> Admin:
    return Admin(data_server.url)


def upstream_settings(home: Path, url: str | None, **overrides: Any) -> Settings:
    """Settings with all three services at `url`, short timeouts and fast retries."""
    values: dict[str, Any] = {
        "ovencast_home": home,
        "sales_service_url": url, "weather_service_url": url, "traffic_service_url": url,
        "http_connect_timeout": 2.0, "http_read_timeout": 5.0,
        "http_write_timeout": 2.0, "http_pool_timeout": 2.0,
        "upstream_retry_attempts": 3, "upstream_retry_total_s": 5.0,
        "upstream_retry_initial_s": 0.01, "upstream_retry_max_s": 0.05,
        "upstream_retry_jitter_s": 0.01,
        "breaker_sales_recovery_s": 0.5, "breaker_weather_recovery_s": 0.5,
        "breaker_traffic_recovery_s": 0.5,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def http_source(tmp_path: Path, data_server: RunningServer) -> Callable[..., HttpSource]:
    """Factory: `http_source(**settings_overrides)` -> an HttpSource on the data server
    with breakers of its own. Use it as `async with http_source() as source:`."""

    def make(**overrides: Any) -> HttpSource:
        settings = upstream_settings(tmp_path / "home", data_server.url, **overrides)
        return HttpSource.from_settings(settings,
                                        breakers=BreakerRegistry.from_settings(settings))

    return make
