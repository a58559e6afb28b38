"""The model store as the edges report it: `GET /ready` is 503 when the store cannot be
written, and `ovencast db check` says whether it is reachable and writable. A local
store whose directory is a file stands for a store that is broken; S3 on moto's server
for one that works over the network."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.conftest import RunningServer, start_server
from conftest import in_thread, make_settings, one_line, settings_env
from ovencast.api.app import create_app
from ovencast.db import migrate
from ovencast.settings import Settings

from .s3_server import S3Server


@pytest.fixture
def migrated_sqlite(sqlite_url: str) -> str:
    Path(sqlite_url.removeprefix("sqlite+aiosqlite:///")).parent.mkdir(parents=True)
    in_thread(migrate.upgrade, sqlite_url)
    return sqlite_url


@pytest.fixture
def broken_store(tmp_path: Path) -> str:
    """A MODEL_STORAGE_PATH that cannot be written: its directory is a file."""
    path = tmp_path / "models"
    path.write_text("not a directory")
    return str(path)


@pytest.fixture
def serve() -> Iterator[Callable[[Settings], RunningServer]]:
    servers: list[RunningServer] = []

    def start(settings: Settings) -> RunningServer:
        servers.append(start_server(create_app(settings)))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_ready_is_503_while_the_model_store_cannot_be_written(
        tmp_path: Path, migrated_sqlite: str, broken_store: str,
        serve: Callable[[Settings], RunningServer]) -> None:
    server = serve(make_settings(tmp_path / "home", migrated_sqlite,
                                 model_storage_path=broken_store))

    refused = httpx.get(f"{server.base_url}/ready", timeout=30)
    assert refused.status_code == 503
    assert refused.json()["error"] == "model_store_unavailable"
    assert broken_store not in refused.text  # where the store is stays in the log

    Path(broken_store).unlink()  # repaired: ready at the next probe
    ready = httpx.get(f"{server.base_url}/ready", timeout=30)
    assert ready.status_code == 200, ready.text
    assert ready.json()["model_store"] == "writable"


def test_ready_checks_a_store_on_s3(tmp_path: Path, migrated_sqlite: str,
                                    s3_server: S3Server,
                                    serve: Callable[[Settings], RunningServer]) -> None:
    server = serve(make_settings(tmp_path / "home", migrated_sqlite,
                                 model_storage_path=f"s3://{s3_server.new_bucket()}/m",
                                 model_storage_options=s3_server.storage_options()))
    ready = httpx.get(f"{server.base_url}/ready", timeout=30)
    assert ready.status_code == 200, ready.text
    assert ready.json()["model_store"] == "writable"

    missing = serve(make_settings(tmp_path / "home2", migrated_sqlite,
                                  model_storage_path="s3://no-such-bucket-ovencast/m",
                                  model_storage_options=s3_server.storage_options()))
    assert httpx.get(f"{missing.base_url}/ready", timeout=30).status_code == 503


def test_db_check_reports_the_model_store(tmp_path: Path, migrated_sqlite: str,
                                          s3_server: S3Server, broken_store: str,
                                          run_cli: Any) -> None:
    settings = make_settings(tmp_path / "home", migrated_sqlite)
    bucket = s3_server.new_bucket()
    good = run_cli(["db", "check"], settings_env(
        settings, MODEL_STORAGE_PATH=f"s3://{bucket}/models",
        MODEL_STORAGE_OPTIONS=s3_server.storage_options_json()))
    assert good.returncode == 0, good.stderr
    assert f"model store s3://{bucket}/models reachable and writable" in one_line(
        good.stdout)

    bad = run_cli(["db", "check"], settings_env(settings, MODEL_STORAGE_PATH=broken_store))
    assert bad.returncode == 1
    assert "schema current" in one_line(bad.stdout)
    message = one_line(bad.stderr)
    assert "is not writable: write failed:" in message
    assert "Traceback" not in bad.stderr
