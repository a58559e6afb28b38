"""Training jobs over HTTP: submit (job row + queue entry), show, list, cancel, and the
WebSocket event stream with real PostgreSQL LISTEN/NOTIFY. No worker runs here: a job
stays queued until it is cancelled (the worker side has its own tests)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from conftest import write_tiny_dataset
from ovencast.db.urls import libpq_conninfo
from ovencast.events.progress import Started
from ovencast.events.publish import EventPublisher
from ovencast.jobs.service import PREPARE_TASK
from ovencast.keys.roles import Role

from .conftest import RunningServer, bearer, dataset_files

pytestmark = pytest.mark.postgres

TENANT = "tiny"
WS_TIMEOUT_S = 15.0


@pytest.fixture(scope="module")
def tenant(client: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> str:
    directory = write_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny",
                                   ["bread", "rolls"], days=60)
    assert client.post("/api/v1/tenants", json={"name": TENANT}).status_code == 201
    upload = client.post(f"/api/v1/tenants/{TENANT}/datasets", files=dataset_files(directory))
    assert upload.status_code == 201, upload.text
    return TENANT


def submit(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post(f"/api/v1/tenants/{TENANT}/training-jobs", json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def receive(ws: ClientConnection) -> dict[str, Any]:
    return dict(json.loads(ws.recv(timeout=WS_TIMEOUT_S)))


def closed_code(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=WS_TIMEOUT_S)
    return closed.value.rcvd.code if closed.value.rcvd else None


def test_submit_queues_the_job_and_its_work(client: httpx.Client, tenant: str,
                                            db_value: Callable[..., Any]) -> None:
    accepted = submit(client, products=["bread"], until="2024-02-15",
                      models=["seasonal_naive"])
    job_id = accepted["id"]
    assert accepted["status"] == "queued"
    assert accepted["links"] == {"self": f"/api/v1/training-jobs/{job_id}",
                                 "events": f"/api/v1/training-jobs/{job_id}/events",
                                 "cancel": f"/api/v1/training-jobs/{job_id}/cancel"}

    shown = client.get(accepted["links"]["self"])
    assert shown.status_code == 200
    job = shown.json()
    assert (job["id"], job["tenant"], job["status"]) == (job_id, TENANT, "queued")
    assert (job["products"], job["models"], job["until"]) == (
        ["bread"], ["seasonal_naive"], "2024-02-15")
    assert job["runs"] == []
    assert job["started_at"] is None
    assert db_value("SELECT status FROM training_jobs WHERE id = $1", job_id) == "queued"
    queued = db_value("SELECT args FROM procrastinate_jobs WHERE task_name = $1 "
                      "AND (args->>'job_id')::int = $2", PREPARE_TASK, job_id)
    assert queued is not None, "the job's work was not enqueued"

    listed = client.get(f"/api/v1/tenants/{TENANT}/training-jobs").json()
    assert job_id in [j["id"] for j in listed]
    assert [j["id"] for j in listed] == sorted((j["id"] for j in listed), reverse=True)


@pytest.mark.parametrize(("body", "message"), [
    ({"products": ["cake"]}, "unknown product(s) ['cake']"),
    ({"models": ["crystal_ball"]}, "crystal_ball"),
])
def test_bad_request_is_422_and_queues_nothing(client: httpx.Client, tenant: str,
                                               db_value: Callable[..., Any],
                                               body: dict[str, Any], message: str) -> None:
    jobs_before = db_value("SELECT count(*) FROM training_jobs")
    queued_before = db_value("SELECT count(*) FROM procrastinate_jobs")
    response = client.post(f"/api/v1/tenants/{TENANT}/training-jobs", json=body)
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert db_value("SELECT count(*) FROM training_jobs") == jobs_before
    assert db_value("SELECT count(*) FROM procrastinate_jobs") == queued_before


def test_malformed_body_and_unknown_tenant(client: httpx.Client, tenant: str) -> None:
    bad = client.post(f"/api/v1/tenants/{TENANT}/training-jobs", json={"until": "soon"})
    assert bad.status_code == 422
    assert [r["location"] for r in bad.json()["reasons"]] == ["body.until"]
    extra = client.post(f"/api/v1/tenants/{TENANT}/training-jobs", json={"product": ["x"]})
    assert extra.status_code == 422
    missing = client.post("/api/v1/tenants/nobody/training-jobs", json={})
    assert missing.status_code == 404
    assert missing.json()["error"] == "tenant_not_found"


def test_unknown_job_is_404(client: httpx.Client) -> None:
    for response in (client.get("/api/v1/training-jobs/999999"),
                     client.post("/api/v1/training-jobs/999999/cancel")):
        assert response.status_code == 404
        assert response.json() == {"error": "not_found",
                                   "detail": "training job 999999 does not exist"}


def test_cancel_then_cancel_again_is_409(client: httpx.Client, tenant: str) -> None:
    job_id = submit(client)["id"]
    cancelled = client.post(f"/api/v1/training-jobs/{job_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    assert client.get(f"/api/v1/training-jobs/{job_id}").json()["status"] == "cancelled"
    again = client.post(f"/api/v1/training-jobs/{job_id}/cancel")
    assert again.status_code == 409
    assert again.json()["error"] == "conflict"
    assert "already ended (cancelled)" in again.json()["detail"]


@pytest.fixture(scope="module")
def reader_key(tenant: str, issue_key: Callable[..., str]) -> str:
    """A read-only key of the tenant: enough to follow its jobs."""
    return issue_key(tenant, Role.READ)


def test_events_snapshot_then_live_events_until_the_end(
        client: httpx.Client, api_server: RunningServer, api_database_url: str,
        tenant: str, reader_key: str) -> None:
    job_id = submit(client)["id"]
    publisher = EventPublisher(libpq_conninfo(api_database_url))
    try:
        # The key as a query parameter: what a browser, which cannot set headers on a
        # WebSocket, does.
        with connect(f"{api_server.ws_url}/api/v1/training-jobs/{job_id}/events"
                     f"?token={reader_key}") as ws:
            snapshot = receive(ws)
            assert (snapshot["type"], snapshot["job_id"], snapshot["status"]) == (
                "snapshot", job_id, "queued")
            assert snapshot["links"]["cancel"].endswith(f"/{job_id}/cancel")
            # The snapshot is sent after the subscription: everything from now on arrives.
            publisher.publish(Started(job_id=job_id, product="bread"))
            publisher.publish(Started(job_id=job_id + 1000, product="bread"))  # not ours
            assert receive(ws) == {"type": "product", "job_id": job_id, "product": "bread",
                                   "event": "started"}
            assert client.post(f"/api/v1/training-jobs/{job_id}/cancel").status_code == 200
            end = receive(ws)
            assert (end["type"], end["job_id"], end["status"]) == ("job", job_id, "cancelled")
            assert closed_code(ws) == 1000
    finally:
        publisher.close()


def test_events_of_an_ended_job_are_its_snapshot(client: httpx.Client,
                                                 api_server: RunningServer,
                                                 tenant: str, reader_key: str) -> None:
    job_id = submit(client)["id"]
    assert client.post(f"/api/v1/training-jobs/{job_id}/cancel").status_code == 200
    with connect(f"{api_server.ws_url}/api/v1/training-jobs/{job_id}/events",
                 additional_headers=bearer(reader_key)) as ws:
        snapshot = receive(ws)
        assert (snapshot["type"], snapshot["status"]) == ("snapshot", "cancelled")
        assert closed_code(ws) == 1000


def test_events_of_an_unknown_job(api_server: RunningServer, admin_key: str) -> None:
    with connect(f"{api_server.ws_url}/api/v1/training-jobs/999999/events",
                 additional_headers=bearer(admin_key)) as ws:
        message = receive(ws)
        assert message == {"type": "error", "error": "not_found",
                           "detail": "training job 999999 does not exist"}
        assert closed_code(ws) == 4404


