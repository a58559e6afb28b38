"""Model versions and forecasts over HTTP. Models are trained with the embedded training
path (`train_tenant`) against the same PostgreSQL database; the queue is not needed."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from ovencast.settings import Settings
from ovencast.store import artifact_key
from ovencast.training.embedded import train_tenant

from .conftest import dataset_files

pytestmark = pytest.mark.postgres

TENANT = "kiel"
FAMILY = "seasonal_naive"
# Four of Kiel's six products keep the training short; seasonal_bread (sold from October
# to January) is out of season in the August the forecasts ask for.
PRODUCTS = {"bread", "croissant", "rolls", "seasonal_bread"}


@pytest.fixture(scope="module")
def trained(client: httpx.Client, api_settings: Settings, kiel_dir: Path) -> dict[str, int]:
    """Kiel uploaded over HTTP, three products trained once, bread twice: product ->
    number of versions."""
    assert client.post("/api/v1/tenants", json={"name": TENANT, "country": "DE",
                                                "subdivision": "SH"}).status_code == 201
    upload = client.post(f"/api/v1/tenants/{TENANT}/datasets", files=dataset_files(kiel_dir))
    assert upload.status_code == 201, upload.text
    first = train_tenant(api_settings, TENANT, products=sorted(PRODUCTS), models=[FAMILY])
    assert {r.product: r.status for r in first.runs} == dict.fromkeys(PRODUCTS,
                                                                      "trained")
    second = train_tenant(api_settings, TENANT, products=["bread"], models=[FAMILY])
    assert second.job.status == "succeeded"
    return {**dict.fromkeys(PRODUCTS, 1), "bread": 2}


def artifact_path(settings: Settings, product: str, version: int) -> Path:
    """The one file of that version (each save adds a random suffix to the key)."""
    stem = artifact_key(TENANT, product, FAMILY, version).removesuffix(".json")
    [path] = Path(settings.resolved_model_storage_path).glob(f"{stem}-*.json")
    return path


def flip_byte(path: Path) -> bytes:
    payload = path.read_bytes()
    middle = len(payload) // 2
    path.write_bytes(payload[:middle] + bytes([payload[middle] ^ 0x01]) + payload[middle + 1:])
    return payload


def test_models_list_active_versions_with_metrics(client: httpx.Client,
                                                  trained: dict[str, int]) -> None:
    response = client.get(f"/api/v1/tenants/{TENANT}/models")
    assert response.status_code == 200
    versions = response.json()
    assert {v["product"] for v in versions} == PRODUCTS
    assert all(v["is_active"] for v in versions)
    bread = next(v for v in versions if v["product"] == "bread")
    assert bread["version"] == 2
    assert bread["family"] == FAMILY
    assert bread["metrics"]["wape"] >= 0
    assert "wape" in bread["baseline_metrics"]
    assert len(bread["sha256"]) == 64
    assert bread["size_bytes"] > 0


def test_models_all_and_product_filter(client: httpx.Client, trained: dict[str, int]) -> None:
    every = client.get(f"/api/v1/tenants/{TENANT}/models", params={"all": "true"}).json()
    assert len(every) == sum(trained.values())
    bread = client.get(f"/api/v1/tenants/{TENANT}/models",
                       params={"product": "bread", "all": "true"}).json()
    assert [(v["version"], v["is_active"]) for v in bread] == [(1, False), (2, True)]


def test_activate_rolls_back_and_forward(client: httpx.Client, trained: dict[str, int]) -> None:
    back = client.post(f"/api/v1/tenants/{TENANT}/models/bread/versions/1/activate")
    assert back.status_code == 200, back.text
    assert (back.json()["version"], back.json()["is_active"]) == (1, True)
    bread = client.get(f"/api/v1/tenants/{TENANT}/models",
                       params={"product": "bread", "all": "true"}).json()
    assert [(v["version"], v["is_active"]) for v in bread] == [(1, True), (2, False)]
    forward = client.post(f"/api/v1/tenants/{TENANT}/models/bread/versions/2/activate")
    assert forward.status_code == 200
    assert client.get(f"/api/v1/tenants/{TENANT}/models",
                      params={"product": "bread"}).json()[0]["version"] == 2


def test_activate_unknown_version_is_404(client: httpx.Client, trained: dict[str, int]) -> None:
    response = client.post(f"/api/v1/tenants/{TENANT}/models/bread/versions/9/activate")
    assert response.status_code == 404
    assert response.json()["error"] == "model_not_found"
    assert "no version 9 of product 'bread'" in response.json()["detail"]
    bad = client.post(f"/api/v1/tenants/{TENANT}/models/bread/versions/latest/activate")
    assert bad.status_code == 422
    assert bad.json()["reasons"][0]["location"] == "path.version"


def test_forecasts(client: httpx.Client, trained: dict[str, int]) -> None:
    response = client.get(f"/api/v1/tenants/{TENANT}/forecasts",
                          params={"from": "2018-08-01", "days": 14})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["errors"] == []
    assert {m["product"] for m in body["models"]} == PRODUCTS
    rows = body["rows"]
    assert len(rows) == 14 * len(PRODUCTS)
    first = date(2018, 8, 1)
    assert {r["date"] for r in rows} == {(first + timedelta(days=i)).isoformat()
                                         for i in range(14)}
    assert all(r["forecast"] >= 0 for r in rows)
    assert all(0 <= r["p10"] <= r["p50"] == r["forecast"] <= r["p90"] for r in rows)
    notes = {m["product"]: m["notes"] for m in body["models"]}
    assert notes == {**{product: [] for product in PRODUCTS - {"seasonal_bread"}},
                     "seasonal_bread": [
                         "seasonal_bread: forecast 0 on 2018-08-01..2018-08-14: outside its "
                         "season (no sales on these days of the year in 4 years of data)"]}
    assert all(r["forecast"] == r["p10"] == r["p90"] == 0 for r in rows
               if r["product"] == "seasonal_bread")

    one = client.get(f"/api/v1/tenants/{TENANT}/forecasts",
                     params={"from": "2018-08-01", "days": 3, "product": ["rolls", "bread"]})
    assert {r["product"] for r in one.json()["rows"]} == {"rolls", "bread"}


def test_forecast_refuses_a_tampered_artifact_and_returns_the_others(
        client: httpx.Client, api_settings: Settings, trained: dict[str, int]) -> None:
    path = artifact_path(api_settings, "croissant", 1)
    original = flip_byte(path)
    try:
        response = client.get(f"/api/v1/tenants/{TENANT}/forecasts",
                              params={"from": "2018-08-01", "days": 7})
        assert response.status_code == 200, response.text
        body = response.json()
        assert {r["product"] for r in body["rows"]} == PRODUCTS - {"croissant"}
        assert len(body["errors"]) == 1
        error = body["errors"][0]
        assert (error["product"], error["version"], error["error"]) == (
            "croissant", 1, "checksum_mismatch")
        assert "failed its checksum" in error["detail"]

        # Only the refused product asked for: nothing to return, the error's status.
        alone = client.get(f"/api/v1/tenants/{TENANT}/forecasts",
                           params={"days": 7, "product": "croissant"})
        assert alone.status_code == 500
        assert alone.json()["error"] == "checksum_mismatch"
        assert alone.json()["errors"][0]["product"] == "croissant"
        assert "failed its checksum" in alone.json()["detail"]
    finally:
        path.write_bytes(original)
    assert client.get(f"/api/v1/tenants/{TENANT}/forecasts",
                      params={"days": 7, "product": "croissant"}).status_code == 200


def test_forecast_request_errors(client: httpx.Client, trained: dict[str, int]) -> None:
    too_long = client.get(f"/api/v1/tenants/{TENANT}/forecasts", params={"days": 1000})
    assert too_long.status_code == 422
    assert too_long.json()["reasons"][0]["location"] == "query.days"
    bad_date = client.get(f"/api/v1/tenants/{TENANT}/forecasts", params={"from": "01.08.2018"})
    assert bad_date.status_code == 422
    assert bad_date.json()["reasons"][0]["location"] == "query.from"
    unknown = client.get(f"/api/v1/tenants/{TENANT}/forecasts", params={"product": "pie"})
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "model_not_found"
    assert client.get("/api/v1/tenants/nobody/forecasts").status_code == 404


def test_finished_jobs_show_each_products_outcome(client: httpx.Client,
                                                  trained: dict[str, int]) -> None:
    jobs = client.get(f"/api/v1/tenants/{TENANT}/training-jobs").json()
    assert [j["status"] for j in jobs] == ["succeeded", "succeeded"]
    latest, first = jobs
    assert latest["products"] == ["bread"]

    detail = client.get(f"/api/v1/training-jobs/{first['id']}").json()
    assert detail["started_at"]
    assert detail["finished_at"]
    assert detail["validation_report"] is not None
    assert detail["alignment_report"] is not None
    runs = {r["product"]: r for r in detail["runs"]}
    assert set(runs) == PRODUCTS
    for run in runs.values():
        assert run["status"] == "trained"
        assert run["reason"] is None
        assert run["class"] in {"high_volume", "medium_volume", "low_volume", "intermittent"}
        assert run["duration_s"] > 0
        assert run["started_at"]
        assert run["finished_at"]
        assert run["model_version"] == 1
    second = client.get(f"/api/v1/training-jobs/{latest['id']}").json()
    assert [(r["product"], r["model_version"]) for r in second["runs"]] == [("bread", 2)]
