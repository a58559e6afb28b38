"""Fixtures of the web console's tests: one PostgreSQL database and one real uvicorn
server for the package (tests/api/conftest.start_server), with two tenants:

- `kiel`: the real Kiel data, imported up to 3 July 2018 and trained (version 1: seasonal
  naive, the fast baseline; version 2: Croston, kept as a challenger), a forecast run
  saved (the challenger in shadow), then the rest of July imported and trained again
  (version 3, active): every product has a month of realised accuracy and a champion /
  challenger comparison on real sales, as a bakery would after a month of use;
- `tiny`: a small generated dataset, for the jobs the browser starts.

Keys: `keys.admin` (global), `keys.kiel_train`, `keys.kiel_read`, `keys.tiny_train`.

Browser: Debian's chromium (/usr/bin/chromium) driven by Playwright, never a downloaded
browser. Missing: skipped locally, failed under CI=true (as PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.conftest import RunningServer, create_database, create_key, drop_database, start_server
from conftest import (
    import_directory,
    make_settings,
    run_async,
    train_in_process,
    write_tiny_dataset,
)
from ovencast.api.app import create_app
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.forecast_runs import service as forecast_runs_service
from ovencast.keys.roles import Role
from ovencast.models.states import ActivationPolicy, RunTrigger
from ovencast.settings import Settings
from ovencast.tenants import service as tenants_service
from ovencast.training import pool
from ovencast.training.embedded import finish_training, prepare_training

CHROMIUM = os.environ.get("OVENCAST_TEST_CHROMIUM", "/usr/bin/chromium")
KIEL, TINY = "kiel", "tiny"
FIRST_CUTOFF = date(2018, 7, 3)
FORECAST_RUN_DAYS = 28


@dataclass(frozen=True)
class Keys:
    admin: str
    kiel_train: str
    kiel_read: str
    tiny_train: str


def _kiel_until(source: Path, target: Path, until: date) -> Path:
    """The Kiel dataset with its sales cut at `until` (regressors whole)."""
    shutil.copytree(source, target)
    sales = (target / "sales.csv").read_text(encoding="utf-8").splitlines()
    kept = [sales[0], *(line for line in sales[1:] if line[:10] <= until.isoformat())]
    (target / "sales.csv").write_text("\n".join(kept) + "\n", encoding="utf-8")
    return target


async def train_challengers(database: Database, tenant: str, *, models: tuple[str, ...]
                            ) -> None:
    """A training whose versions are kept as challengers (`activation=never`)."""
    prepared = await prepare_training(database, tenant, models=models,
                                      activation=ActivationPolicy.NEVER)
    outcomes = await asyncio.to_thread(pool.run_tasks, list(prepared.tasks),
                                       settings=database.settings)
    await finish_training(database, prepared.job_id, outcomes)


async def _seed(settings: Settings, kiel_dir: Path, work: Path) -> None:
    database = Database.open(settings)
    try:
        early = _kiel_until(kiel_dir, work / "kiel-early", FIRST_CUTOFF)
        await import_directory(database, KIEL, early, country="DE", subdivision="SH")
        await train_in_process(database, KIEL, models=("seasonal_naive",))
        await train_challengers(database, KIEL, models=("croston",))
        async with unit_of_work(database.sessions) as session:
            tenant = await tenants_service.get_tenant(session, KIEL)
            await forecast_runs_service.save_run(session, tenant, settings=settings,
                                                 days=FORECAST_RUN_DAYS,
                                                 trigger=RunTrigger.CLI)
        await import_directory(database, KIEL, kiel_dir, country="DE", subdivision="SH")
        await train_in_process(database, KIEL, models=("seasonal_naive",))
        tiny = write_tiny_dataset(work / "tiny", ["bread", "rolls"], days=70)
        await import_directory(database, TINY, tiny, country="DE")
    finally:
        await database.close()


@pytest.fixture(scope="package")
def console_settings(pg_server_url: str, kiel_dir: Path,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    url = create_database(migrated=True)
    try:
        # DRIFT_FACTOR 1.2 (default 1.5): some Kiel products' July is enough worse than
        # their backtest for a drift warning on the overview.
        settings = make_settings(tmp_path_factory.mktemp("console-home"), url,
                                 console_session_secret="console tests: a secret", drift_factor=1.2)
        run_async(lambda: _seed(settings, kiel_dir, tmp_path_factory.mktemp("console-data")))
        yield settings
    finally:
        drop_database(url)


@pytest.fixture(scope="package")
def console_server(console_settings: Settings) -> Iterator[RunningServer]:
    running = start_server(create_app(console_settings))
    yield running
    running.stop()


@pytest.fixture(scope="package")
def keys(console_settings: Settings) -> Keys:
    def key(tenant: str | None, role: Role) -> str:
        return create_key(console_settings, tenant=tenant, role=role, name="console tests")

    return Keys(admin=key(None, Role.ADMIN), kiel_train=key(KIEL, Role.TRAIN),
                kiel_read=key(KIEL, Role.READ), tiny_train=key(TINY, Role.TRAIN))


def csrf_of(page: str) -> str:
    marker = 'name="csrf_token" value="'
    start = page.index(marker) + len(marker)
    return page[start:page.index('"', start)]


@pytest.fixture
def signed_in(console_server: RunningServer) -> Iterator[Callable[[str], httpx.Client]]:
    """`signed_in(key)`: an httpx client signed in to the console with that key (its
    cookie jar holds the session), not following redirects."""
    clients: list[httpx.Client] = []

    def sign_in(key: str) -> httpx.Client:
        client = httpx.Client(base_url=console_server.base_url, timeout=60.0)
        clients.append(client)
        answer = client.post("/sign-in", data={"key": key})
        assert answer.status_code == 303, answer.text
        return client

    yield sign_in
    for client in clients:
        client.close()


def db_run(settings: Settings, work: Callable[[Any], Any]) -> Any:
    """Run `work(session)` in a unit of work on the console's database."""

    async def run() -> Any:
        database = Database.open(settings)
        try:
            async with unit_of_work(database.sessions) as session:
                result = work(session)
                return await result if asyncio.iscoroutine(result) else result
        finally:
            await database.close()

    return run_async(run)
