"""Turning the SQLAlchemy DATABASE_URL into what other PostgreSQL clients want."""

from __future__ import annotations

from sqlalchemy.engine import make_url


def libpq_conninfo(database_url: str) -> str:
    """`postgresql+asyncpg://u:p@h:5432/db` -> `postgresql://u:p@h:5432/db` (psycopg,
    asyncpg.connect, procrastinate)."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ValueError(f"the service shape needs PostgreSQL, DATABASE_URL is {url.drivername}")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)
