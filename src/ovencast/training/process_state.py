"""What a process keeps between the products it trains (an embedded pool process, a
service worker and its fit processes): the job's global models, parsed once (carried by
the task, or loaded from the store by key and checksum), and the SQLite engine with its
compiled statements."""

from __future__ import annotations

import functools

from sqlalchemy.ext.asyncio import AsyncEngine

from ovencast.db.session import create_engine, is_sqlite
from ovencast.forecasting.families.global_fits import GlobalFits
from ovencast.settings import Settings
from ovencast.training import tenant_stage
from ovencast.training.task import ProductTask


@functools.lru_cache(maxsize=2)
def parsed_global_fits(payload: bytes) -> GlobalFits:
    """A job's global models parsed once per process: every product of the job that a
    pool process trains carries the same payload (JSON of the job's boosters, 20 MB for
    North Sea x 120 and growing with the product count), and the parsed boosters' texts
    are then the same objects for `lightgbm_global`'s booster cache. Only read."""
    return GlobalFits.from_bytes(payload)


# (key, sha256) -> the parsed models. Two jobs' worth: a service worker may interleave
# the products of two tenants' jobs.
_stored_fits: dict[tuple[str, str], GlobalFits] = {}
_STORED_KEPT = 2


def stored_global_fits(key: tuple[str, str], settings: Settings, *, job_id: int
                       ) -> GlobalFits | None:
    """A job's global models stored under `key` = (artifact key, sha256): loaded,
    checksum verified and parsed once per process, then the same object for each of the
    job's products. None (logged) when the stored copy is refused or unreachable:
    lightgbm then trains on the product alone, and the next product tries again (a
    store that was briefly down costs only the products that met it)."""
    if key not in _stored_fits:
        payload = tenant_stage.load_stored_models(*key, settings, job_id=job_id)
        if payload is None:
            return None
        while len(_stored_fits) >= _STORED_KEPT:
            del _stored_fits[next(iter(_stored_fits))]
        _stored_fits[key] = GlobalFits.from_bytes(payload)
    return _stored_fits[key]


def task_global_fits(task: ProductTask) -> GlobalFits | None:
    """The task's global models: carried (`global_fits`), or loaded from the store once
    per process by their key and checksum (`global_fits_key`, `stored_global_fits`).
    None when the job has none or its stored copy is refused."""
    if task.global_fits:
        return parsed_global_fits(task.global_fits)
    if task.global_fits_key is None:
        return None
    return stored_global_fits(task.global_fits_key, task.settings, job_id=task.job_id)


_sqlite_engines: dict[str, AsyncEngine] = {}


def task_engine(settings: Settings) -> tuple[AsyncEngine, bool]:
    """The engine of a task in a pool process, and whether it is shared by the process's
    next tasks. SQLite's (NullPool: it holds no connection between units of work, so no
    event loop's) is made once per process and database: its compiled-statement cache
    then serves every product the process trains (decision 022). Another database's
    engine pools
    connections bound to the task's event loop: one per task, disposed after it."""
    url = settings.resolved_database_url
    if not is_sqlite(url):
        return create_engine(settings), False
    if url not in _sqlite_engines:
        _sqlite_engines.clear()  # a pool process serves one job's database
        _sqlite_engines[url] = create_engine(settings)
    return _sqlite_engines[url], True
