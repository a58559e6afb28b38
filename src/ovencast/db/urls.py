"""Turning the SQLAlchemy DATABASE_URL into what other PostgreSQL clients want."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ovencast.errors import Misconfigured

# The drivers ovencast is written against: asyncpg's COPY and error classes
# (datasets/repository.py, events/listen.py), aiosqlite for the embedded shape.
ASYNC_DRIVERS = {"postgresql": "asyncpg", "sqlite": "aiosqlite"}
SCHEME_ALIASES = {"postgres": "postgresql"}  # what Heroku-style URLs call it


def async_database_url(database_url: str) -> str:
    """DATABASE_URL with the async driver ovencast uses: `postgresql://` and `postgres://`
    become `postgresql+asyncpg://`, `sqlite://` becomes `sqlite+aiosqlite://`. Another
    backend or driver is refused with a ValueError that says what to write (the wrong
    driver would start and then fail on the first import: psycopg has no COPY records)."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        raise ValueError("is not a database URL; expected e.g. "
                         "postgresql+asyncpg://user@host:5432/db") from None
    backend = SCHEME_ALIASES.get(url.get_backend_name(), url.get_backend_name())
    driver = ASYNC_DRIVERS.get(backend)
    if driver is None:
        raise ValueError(f"names the backend {url.get_backend_name()!r}; ovencast runs on "
                         "PostgreSQL (postgresql+asyncpg://...) or SQLite")
    if "+" in url.drivername and url.get_driver_name() != driver:
        raise ValueError(f"names the driver {url.get_driver_name()!r}; ovencast talks to "
                         f"{backend} through {driver}: write {backend}+{driver}:// "
                         f"(or {backend}://)")
    return url.set(drivername=f"{backend}+{driver}").render_as_string(hide_password=False)


def libpq_conninfo(database_url: str) -> str:
    """`postgresql+asyncpg://u:p@h:5432/db` -> `postgresql://u:p@h:5432/db` (psycopg,
    asyncpg.connect, procrastinate)."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ValueError(f"the service shape needs PostgreSQL, DATABASE_URL is {url.drivername}")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def require_postgresql(database_url: str, what: str) -> None:
    """`Misconfigured` (one line from the CLI) when `what` is asked of a database that is
    not PostgreSQL, with what to do instead."""
    if make_url(database_url).get_backend_name() != "postgresql":
        raise Misconfigured(
            f"{what} needs PostgreSQL (the job queue lives there): set "
            "DATABASE_URL=postgresql://user@host:5432/db and run `ovencast db upgrade` "
            "once; without a server, train with `ovencast train` or `ovencast run`")
