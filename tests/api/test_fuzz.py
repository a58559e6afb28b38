"""schemathesis against the API's own OpenAPI schema, on the real server and PostgreSQL,
with the keys of two tenants that have data and trained models: no answer is a server
error, and every answer matches what the schema declares for it."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS

from conftest import write_tiny_dataset
from ovencast.api.app import create_app
from ovencast.keys.roles import Role
from ovencast.settings import Settings
from ovencast.training.embedded import train_tenant

from .conftest import RunningServer, dataset_files

pytestmark = pytest.mark.postgres

TENANTS = ("alpha", "beta")
EXAMPLES_PER_OPERATION = 30
CHECK_NAMES = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
               "response_schema_conformance")


@pytest.fixture(scope="module")
def fuzzed(api_server: RunningServer, api_settings: Settings, client: httpx.Client,
           issue_key: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
           ) -> dict[str, Any]:
    keys = {}
    for tenant in TENANTS:
        assert client.post("/api/v1/tenants", json={"name": tenant}).status_code == 201
        data = write_tiny_dataset(tmp_path_factory.mktemp(tenant), ("bread", "rolls"),
                                  weather=True)
        upload = client.post(f"/api/v1/tenants/{tenant}/datasets",
                             files=dataset_files(data))
        assert upload.status_code == 201, upload.text
        train_tenant(api_settings, tenant, models=["seasonal_naive"])
        keys[tenant] = issue_key(tenant, Role.ADMIN)
    return {"url": api_server.base_url, "keys": keys}


# The schema as the app declares it; the running server under test, with its database,
# serves the same one. Loading it starts the app, which migrates the database of its home:
# a home of this process's own (removed when it exits), because the test processes
# (pytest-xdist) collect this module at the same time, and two migrating one SQLite file
# at once failed (alembic's batch copy of a table the other had already altered).
_SCHEMA_HOME = tempfile.TemporaryDirectory(prefix="ovencast-schema-")
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(Settings(ovencast_home=Path(_SCHEMA_HOME.name))))
CHOSEN_CHECKS = [check for check in CHECKS.get_all() if check.__name__ in CHECK_NAMES]


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_error_and_every_answer_as_declared(case: Any,
                                                      fuzzed: dict[str, Any]) -> None:
    for key in fuzzed["keys"].values():  # each tenant's key: its own data, the other's
        case.call_and_validate(base_url=fuzzed["url"],
                               headers={"Authorization": f"Bearer {key}"},
                               checks=CHOSEN_CHECKS)
