"""Tenants and dataset uploads over HTTP, against PostgreSQL through a real server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import dataset_files

pytestmark = pytest.mark.postgres


def test_tenant_create_list_get(client: httpx.Client) -> None:
    created = client.post("/api/v1/tenants", json={
        "name": "kiel", "country": "DE", "subdivision": "SH", "time_zone": "Europe/Berlin"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert {k: body[k] for k in ("name", "country", "subdivision", "time_zone")} == {
        "name": "kiel", "country": "DE", "subdivision": "SH", "time_zone": "Europe/Berlin"}
    assert body["created_at"].endswith(("Z", "+00:00"))

    minimal = client.post("/api/v1/tenants", json={"name": "Bäckerei Nord"})
    assert minimal.status_code == 201, minimal.text
    assert minimal.json()["time_zone"] == "Europe/Berlin"

    names = [t["name"] for t in client.get("/api/v1/tenants").json()]
    assert names == sorted(names)
    assert {"kiel", "Bäckerei Nord"} <= set(names)
    shown = client.get("/api/v1/tenants/Bäckerei Nord")  # httpx percent-encodes the path
    assert shown.status_code == 200
    assert shown.json()["name"] == "Bäckerei Nord"


def test_duplicate_tenant_is_409(client: httpx.Client) -> None:
    assert client.post("/api/v1/tenants", json={"name": "twice"}).status_code == 201
    again = client.post("/api/v1/tenants", json={"name": "twice", "country": "DE"})
    assert again.status_code == 409
    assert again.json() == {"error": "tenant_exists", "detail": "tenant 'twice' already exists"}


def test_unknown_tenant_is_404_with_reason(client: httpx.Client) -> None:
    response = client.get("/api/v1/tenants/nobody")
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "tenant_not_found"
    assert "'nobody' does not exist" in body["detail"]


@pytest.mark.parametrize(("payload", "location"), [
    ({}, "body.name"),
    ({"name": ""}, "body.name"),
    ({"name": "x", "country": "Germany"}, "body.country"),
    ({"name": "x", "unexpected": 1, "time_zone": 5}, "body.time_zone"),
])
def test_malformed_tenant_request_is_422_with_reasons(client: httpx.Client,
                                                      payload: dict[str, Any],
                                                      location: str) -> None:
    response = client.post("/api/v1/tenants", json=payload)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "request_validation"
    assert location in [r["location"] for r in body["reasons"]]
    assert location in body["detail"]


@pytest.mark.parametrize(("payload", "message"), [
    ({"name": "x", "time_zone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ({"name": "x", "country": "DE", "subdivision": "XX"}, "unknown country/subdivision"),
    ({"name": "a/b"}, "must not contain '/'"),
])
def test_tenant_rules_of_the_service_are_422(client: httpx.Client, payload: dict[str, Any],
                                             message: str) -> None:
    response = client.post("/api/v1/tenants", json=payload)
    assert response.status_code == 422
    assert response.json()["error"] == "unprocessable"
    assert message in response.json()["detail"]


def test_upload_kiel_dataset(client: httpx.Client, kiel_dir: Path,
                             db_value: Callable[..., Any]) -> None:
    assert client.post("/api/v1/tenants", json={"name": "kiel-upload", "country": "DE",
                                                "subdivision": "SH"}).status_code == 201
    files = dataset_files(kiel_dir)
    assert set(files) >= {"sales", "weather", "calendar"}
    response = client.post("/api/v1/tenants/kiel-upload/datasets", files=files)
    assert response.status_code == 201, response.text
    summary = response.json()
    sales_rows = sum(1 for line in (kiel_dir / "sales.csv").read_text().splitlines()[1:]
                     if line.strip())
    assert summary["tenant"] == "kiel-upload"
    assert summary["sales_rows"] == sales_rows
    assert summary["products"] == 6
    assert {"temperature_c", "public_holiday"} <= set(summary["regressor_columns"])
    assert summary["first_date"] == "2013-07-01"
    assert summary["warnings"] == []  # no model trained on rows the upload removed
    stored = db_value("SELECT count(*) FROM sales_observations s JOIN tenants t "
                      "ON t.id = s.tenant_id WHERE t.name = $1", "kiel-upload")
    assert stored == sales_rows
    source = db_value("SELECT source FROM dataset_imports d JOIN tenants t "
                      "ON t.id = d.tenant_id WHERE t.name = $1", "kiel-upload")
    assert "sales.csv" in source

    # Idempotent: the same upload again replaces the overlapping dates.
    again = client.post("/api/v1/tenants/kiel-upload/datasets", files=files)
    assert again.status_code == 201
    assert db_value("SELECT count(*) FROM sales_observations s JOIN tenants t "
                    "ON t.id = s.tenant_id WHERE t.name = $1", "kiel-upload") == sales_rows


def test_bad_row_rejects_the_upload_naming_file_line_column(
        client: httpx.Client, kiel_dir: Path, db_value: Callable[..., Any]) -> None:
    assert client.post("/api/v1/tenants", json={"name": "bad-rows"}).status_code == 201
    lines = (kiel_dir / "sales.csv").read_text(encoding="utf-8").splitlines()
    date, product, _ = lines[41].split(",")
    lines[41] = f"{date},{product},-3"  # line 42 of the file
    files = dataset_files(kiel_dir)
    files["sales"] = ("sales.csv", ("\n".join(lines) + "\n").encode(), "text/csv")

    response = client.post("/api/v1/tenants/bad-rows/datasets", files=files)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "dataset_problems"
    assert "sales.csv line 42, column 'quantity': -3 is negative" in body["detail"]
    assert body["problems"] == [{"file": "sales.csv", "line": 42, "column": "quantity",
                                 "message": "-3 is negative (must be >= 0)"}]
    assert db_value("SELECT count(*) FROM sales_observations s JOIN tenants t "
                    "ON t.id = s.tenant_id WHERE t.name = $1", "bad-rows") == 0
    assert db_value("SELECT count(*) FROM regressor_observations s JOIN tenants t "
                    "ON t.id = s.tenant_id WHERE t.name = $1", "bad-rows") == 0
    assert db_value("SELECT count(*) FROM dataset_imports d JOIN tenants t "
                    "ON t.id = d.tenant_id WHERE t.name = $1", "bad-rows") == 0


def test_bad_regressor_cell_names_its_file(client: httpx.Client) -> None:
    assert client.post("/api/v1/tenants", json={"name": "bad-weather"}).status_code == 201
    files = {"sales": ("sales.csv", b"date,product,quantity\n2024-01-01,bread,3\n",
                       "text/csv"),
             "weather": ("w.csv", b"date,temperature_c\n2024-01-01,warm\n", "text/csv")}
    response = client.post("/api/v1/tenants/bad-weather/datasets", files=files)
    assert response.status_code == 422
    assert "weather.csv line 2, column 'temperature_c': 'warm' is not a number" in (
        response.json()["detail"])


def test_upload_needs_sales_and_an_existing_tenant(client: httpx.Client) -> None:
    assert client.post("/api/v1/tenants", json={"name": "needs-sales"}).status_code == 201
    weather_only = {"weather": ("weather.csv", b"date,t\n2024-01-01,1\n", "text/csv")}
    missing = client.post("/api/v1/tenants/needs-sales/datasets", files=weather_only)
    assert missing.status_code == 422
    assert "body.sales" in [r["location"] for r in missing.json()["reasons"]]

    sales = {"sales": ("sales.csv", b"date,product,quantity\n2024-01-01,bread,3\n",
                       "text/csv")}
    unknown = client.post("/api/v1/tenants/nobody/datasets", files=sales)
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "tenant_not_found"

    latin1 = {"sales": ("sales.csv", "date,product,quantity\n2024-01-01,Brötchen,3\n"
                        .encode("latin-1"), "text/csv")}
    not_utf8 = client.post("/api/v1/tenants/needs-sales/datasets", files=latin1)
    assert not_utf8.status_code == 422
    assert "sales.csv line 2: is not UTF-8 text" in not_utf8.json()["detail"]


@pytest.mark.parametrize("path", [
    "/api/v1/tenants/nul-lookups/models?product=br%00ot",
    "/api/v1/tenants/nul-lookups/forecasts?product=ok&product=%00",
])
def test_a_name_that_could_never_be_stored_is_a_422_not_a_driver_error(
        client: httpx.Client, path: str) -> None:
    client.post("/api/v1/tenants", json={"name": "nul-lookups"})
    response = client.get(path)
    assert response.status_code == 422, response.text
    reasons = response.json()["reasons"]
    assert any(r["location"].startswith("query.product") for r in reasons)


def test_activating_a_version_of_a_product_named_with_nul_is_a_422(
        client: httpx.Client) -> None:
    client.post("/api/v1/tenants", json={"name": "nul-lookups"})
    response = client.post("/api/v1/tenants/nul-lookups/models/a%00b/versions/1/activate")
    assert response.status_code == 422, response.text
