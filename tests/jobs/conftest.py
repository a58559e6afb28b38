"""A migrated PostgreSQL database holding tenant "t" (bread and rolls, generated), for
the service shape's job tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from conftest import import_directory, make_settings
from ovencast.db.runtime import Database
from ovencast.settings import Settings


@pytest.fixture
async def pg_tenant(pg_migrated_url: str, tmp_path: Path, tiny_dataset: Callable[..., Path]
                    ) -> AsyncIterator[tuple[Settings, Database]]:
    settings = make_settings(tmp_path / "home", pg_migrated_url)
    database = Database.open(settings)
    try:
        await import_directory(database, "t", tiny_dataset(("bread", "rolls")))
        yield settings, database
    finally:
        await database.close()
