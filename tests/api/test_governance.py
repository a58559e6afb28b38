"""Model governance over HTTP (live server, PostgreSQL): a worse retrained version is kept
as a challenger with its comparison in `GET /models`; a saved forecast run answers with
the champion while the challenger forecasts in shadow; once sales arrive they are scored
(`/accuracy`) and compared (`/comparisons`); a tenant's schedule is set and cleared."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pandas as pd
import pytest

from ovencast.settings import Settings
from ovencast.training.embedded import train_tenant

from .conftest import dataset_files

pytestmark = pytest.mark.postgres

TENANT = "governed"
START = date(2024, 1, 1)
CUT = date(2024, 4, 30)  # the models know sales up to here
FACTORS = (0.6, 0.7, 0.8, 0.9, 1.2, 1.9, 1.5)


@pytest.fixture(scope="module")
def sales() -> pd.DataFrame:
    rng = np.random.default_rng(9)
    days = [START + timedelta(days=i) for i in range((CUT - START).days + 15)]
    return pd.DataFrame({"date": days, "product": "bread",
                         "quantity": [float(rng.poisson(90 * FACTORS[d.weekday()]))
                                      for d in days]})


def upload(client: httpx.Client, sales: pd.DataFrame, directory: Path) -> None:
    directory.mkdir()
    sales.to_csv(directory / "sales.csv", index=False)
    response = client.post(f"/api/v1/tenants/{TENANT}/datasets",
                           files=dataset_files(directory))
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def governed(client: httpx.Client, api_settings: Settings, sales: pd.DataFrame,
             tmp_path_factory: pytest.TempPathFactory) -> None:
    """bread: seasonal naive active (v1), croston retrained and kept as challenger (v2)."""
    assert client.post("/api/v1/tenants", json={"name": TENANT}).status_code == 201
    upload(client, sales.loc[sales["date"] <= CUT], tmp_path_factory.mktemp("d") / "a")
    assert train_tenant(api_settings, TENANT, models=["seasonal_naive"]
                        ).every_accepted_product_trained
    assert train_tenant(api_settings, TENANT, models=["croston"]
                        ).every_accepted_product_trained


def test_a_worse_version_is_a_challenger_with_its_comparison(client: httpx.Client,
                                                             governed: None) -> None:
    versions = client.get(f"/api/v1/tenants/{TENANT}/models").json()
    assert [(v["version"], v["standing"], v["is_active"]) for v in versions] == [
        (1, "active", True), (2, "challenger", False)]
    gate = versions[1]["promotion"]
    assert (gate["verdict"], gate["policy"], gate["active_version"]) == (
        "kept", "if-better", 1)
    assert gate["comparison"]["new_wape"] > gate["comparison"]["active_wape"] * 1.02
    assert len(gate["comparison"]["windows"]) == 3
    assert gate["reason"].startswith("worse, kept as challenger")
    assert versions[0]["promotion"]["verdict"] == "first"


def test_a_job_request_names_its_activation_policy(client: httpx.Client,
                                                   governed: None) -> None:
    path = f"/api/v1/tenants/{TENANT}/training-jobs"
    wrong = client.post(path, json={"activation": "sometimes"})
    assert wrong.status_code == 422
    assert "if-better" in wrong.text
    accepted = client.post(path, json={"models": ["croston"], "activation": "never"})
    assert accepted.status_code == 202, accepted.text
    job = client.get(accepted.json()["links"]["self"]).json()
    assert job["activation"] == "never"
    assert client.post(f"/api/v1/training-jobs/{job['id']}/cancel").status_code == 200


def test_a_saved_run_answers_with_the_champion_and_scores_once_sales_arrive(
        client: httpx.Client, governed: None, sales: pd.DataFrame, tmp_path: Path) -> None:
    base = f"/api/v1/tenants/{TENANT}"
    saved = client.post(f"{base}/forecast-runs", json={"days": 14})
    assert saved.status_code == 201, saved.text
    run = saved.json()
    assert (run["origin"], run["start"], run["days"], run["trigger"]) == (
        CUT.isoformat(), (CUT + timedelta(days=1)).isoformat(), 14, "api")
    assert {r["version"] for r in run["rows"]} == {1}
    assert len(run["rows"]) == 14
    assert [(s["product"], s["version"], s["family"]) for s in run["shadow"]] == [
        ("bread", 2, "croston")]
    assert run["shadow_rows"] is None
    listed = client.get(f"{base}/forecast-runs").json()
    assert [r["id"] for r in listed] == [run["id"]]
    detail = client.get(f"{base}/forecast-runs/{run['id']}", params={"shadow": "true"})
    assert {r["version"] for r in detail.json()["shadow_rows"]} == {2}
    missing = client.get(f"{base}/forecast-runs/{run['id'] + 1000}")
    assert missing.status_code == 404
    assert "does not exist" in missing.json()["detail"]
    assert client.post(f"{base}/forecast-runs", json={"days": 0}).status_code == 422
    assert client.post(f"{base}/forecast-runs", json={"products": ["cake"]}
                       ).status_code == 404

    upload(client, sales.loc[sales["date"] > CUT], tmp_path / "later")
    report = client.get(f"{base}/accuracy").json()
    [bread] = report["products"]
    y = sales.set_index("date")["quantity"]
    actual = np.array([y[date.fromisoformat(r["date"])] for r in run["rows"]])
    forecast = np.array([r["forecast"] for r in run["rows"]])
    assert bread["overall"]["wape"] == pytest.approx(
        np.abs(actual - forecast).sum() / actual.sum(), abs=1e-9)
    assert bread["overall"]["n_days"] == 14
    assert sorted(v["version"] for v in bread["versions"]) == [1, 2]
    assert set(bread["versions"][0]["by_lead"]) == {"1-7", "8-14"}
    assert client.get(f"{base}/accuracy", params={"since": "soon"}).status_code == 422
    later = client.get(f"{base}/accuracy", params={"since": "2030-01-01"}).json()
    assert later["products"] == []

    compared = client.get(f"{base}/comparisons").json()["comparisons"]
    assert [(c["product"], c["challenger_version"], c["n_days"]) for c in compared] == [
        ("bread", 2, 14)]
    assert compared[0]["champion_versions"] == [1]
    promoted = client.post(f"{base}/comparisons/promote").json()
    assert promoted["promoted"] == []  # croston does not beat seasonal naive here
    active = client.get(f"{base}/models").json()
    assert [v["version"] for v in active if v["is_active"]] == [1]


def test_a_schedule_is_set_shown_and_removed(client: httpx.Client, governed: None) -> None:
    path = f"/api/v1/tenants/{TENANT}/schedule"
    assert client.get(path).json()["cron"] is None
    bad = client.post(path, json={"cron": "at 3"})
    assert bad.status_code == 422
    assert "not a cron expression" in bad.json()["detail"]
    assert client.post(path, json={"cron": "0 3 * * *", "days": 400}).status_code == 422
    assert client.post(path, json={"cron": "0 3 * * *", "models": ["nonsense"]}
                       ).status_code == 422
    done = client.post(path, json={"cron": "0  3 * * *", "days": 7,
                                   "models": ["seasonal_naive"]})
    assert done.status_code == 200, done.text
    assert (done.json()["cron"], done.json()["days"]) == ("0 3 * * *", 7)
    # the next 03:00 in the tenant's time zone, still ahead
    upcoming = datetime.fromisoformat(done.json()["next_due_at"])
    assert upcoming > datetime.now(UTC)
    assert upcoming - datetime.now(UTC) <= timedelta(days=1)
    assert upcoming.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M") == "03:00"
    assert client.get(path).json()["models"] == ["seasonal_naive"]
    assert client.post(path, json={"cron": None}).json()["cron"] is None
    assert client.get(path).json()["cron"] is None
