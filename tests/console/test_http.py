"""The console's access rules over plain HTTP (httpx against the real server): sign-in
and its cookie, tenant scope, roles, CSRF and origin checks, sessions that end, the
job-events WebSocket signed in by the session, and the API schema left to the API."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from api.conftest import RunningServer, create_key
from ovencast.console import endpoints as console_endpoints
from ovencast.console.session import COOKIE
from ovencast.jobs import repository as jobs_repository
from ovencast.keys import service as keys_service
from ovencast.keys.roles import Role
from ovencast.models import repository as models_repository
from ovencast.models.states import ActivationPolicy
from ovencast.schedules import service as schedules_service
from ovencast.settings import Settings
from ovencast.tenants import service as tenants_service

from .conftest import KIEL, TINY, Keys, csrf_of, db_run

pytestmark = pytest.mark.postgres

SignedIn = Callable[[str], httpx.Client]


def alert(page: str) -> str:
    """The message of an error page."""
    return page.split('role="alert">', 1)[1].split("</p>", 1)[0]


def kiel_job_id(settings: Settings) -> int:
    async def first(session: Any) -> int:
        tenant = await tenants_service.get_tenant(session, KIEL)
        return min(job.id for job in await jobs_repository.jobs_of(session, tenant.id))

    return int(db_run(settings, first))


def active_version(settings: Settings, product: str) -> int:
    async def active(session: Any) -> int:
        tenant = await tenants_service.get_tenant(session, KIEL)
        row = await models_repository.get_active(session, tenant.id, product)
        assert row is not None
        return row.version

    return int(db_run(settings, active))


# Every route of the console, from its router: a new one is tried here without asking.
ROUTES = sorted((method, route.path) for route in console_endpoints.router.routes
                if isinstance(route, APIRoute) for method in route.methods)
OPEN = {("GET", "/sign-in"), ("POST", "/sign-in")}
TENANT_ROUTES = [r for r in ROUTES if r[1].startswith("/tenants/{tenant}")]


def fill(template: str, *, job_id: int) -> str:
    return template.format(tenant=KIEL, product="rolls", version=1, job_id=job_id)


def test_the_routes_are_the_ones_tried() -> None:
    assert len(ROUTES) == 16
    assert {r[1] for r in ROUTES} - {r[1] for r in TENANT_ROUTES} == {
        "/", "/sign-in", "/sign-out"}


@pytest.mark.parametrize("route", [r for r in ROUTES if r not in OPEN], ids=str)
def test_every_route_sends_a_stranger_to_the_sign_in(
        console_server: RunningServer, console_settings: Settings,
        route: tuple[str, str]) -> None:
    method, template = route
    answer = httpx.request(method, console_server.base_url + fill(
        template, job_id=kiel_job_id(console_settings)))
    assert (answer.status_code, answer.headers["location"]) == (303, "/sign-in")


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=str)
def test_every_tenant_route_is_404_to_another_tenant(
        signed_in: SignedIn, keys: Keys, console_settings: Settings,
        route: tuple[str, str]) -> None:
    method, template = route
    other = signed_in(keys.tiny_train)
    token = csrf_of(other.get(f"/tenants/{TINY}").text)
    answer = other.request(method, fill(template, job_id=kiel_job_id(console_settings)),
                           data={"csrf_token": token} if method == "POST" else None)
    assert answer.status_code == 404
    assert alert(answer.text) == f"tenant &#39;{KIEL}&#39; does not exist (import a " \
        f"dataset first: `ovencast import DIR --tenant {KIEL}`)"


def test_sign_in_sets_a_strict_http_only_cookie_without_the_key(
        console_server: RunningServer, keys: Keys) -> None:
    with httpx.Client(base_url=console_server.base_url) as client:
        refused = client.post("/sign-in", data={"key": keys.kiel_read + "x"})
        assert refused.status_code == 401
        assert "not valid" in refused.text
        assert COOKIE not in client.cookies
        accepted = client.post("/sign-in", data={"key": keys.kiel_read})
        assert (accepted.status_code, accepted.headers["location"]) == (303, "/")
        cookie = accepted.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie.replace("Strict", "strict")
        assert "Path=/" in cookie
        secret = keys.kiel_read.split("_", 2)[2]  # ovk_<id>_<secret>; the secret may hold "_"
        assert len(secret) > 40
        assert secret not in cookie
        # A tenant key goes straight to its tenant.
        home = client.get("/")
        assert (home.status_code, home.headers["location"]) == (303, f"/tenants/{KIEL}")


def test_a_tenant_key_sees_only_its_tenant(signed_in: SignedIn, keys: Keys,
                                           console_settings: Settings) -> None:
    client = signed_in(keys.kiel_read)
    assert client.get(f"/tenants/{KIEL}").status_code == 200
    job_id = kiel_job_id(console_settings)
    other = signed_in(keys.tiny_train)
    unknown = alert(other.get("/tenants/nobody").text)
    for path in (f"/tenants/{KIEL}", f"/tenants/{KIEL}/products/rolls",
                 f"/tenants/{KIEL}/products/rolls/forecast.csv", f"/tenants/{KIEL}/jobs",
                 f"/tenants/{KIEL}/models", f"/tenants/{KIEL}/data",
                 f"/tenants/{KIEL}/models/rolls/versions/1/activate"):
        answer = other.get(path)
        assert answer.status_code == 404, path
        assert "rolls" not in answer.text.replace(path, "")
        # Word for word what a tenant that does not exist gets.
        assert alert(answer.text).replace(KIEL, "nobody") == unknown
    # Job ids count across tenants: another tenant's job under one's own tenant is 404.
    assert other.get(f"/tenants/{TINY}/jobs/{job_id}").status_code == 404
    assert other.get("/").headers["location"] == f"/tenants/{TINY}"


def test_a_global_key_picks_a_tenant(signed_in: SignedIn, keys: Keys) -> None:
    page = signed_in(keys.admin).get("/")
    assert page.status_code == 200
    assert f'href="/tenants/{KIEL}"' in page.text
    assert f'href="/tenants/{TINY}"' in page.text


def test_forms_need_the_session_csrf_token_and_our_origin(
        signed_in: SignedIn, keys: Keys, console_settings: Settings,
        console_server: RunningServer) -> None:
    client = signed_in(keys.kiel_train)
    before = active_version(console_settings, "bread")
    target = 3 if before == 1 else 1
    path = f"/tenants/{KIEL}/models/bread/versions/{target}/activate"
    token = csrf_of(client.get(path).text)
    assert client.post(path).status_code == 403
    assert client.post(path, data={"csrf_token": token + "x"}).status_code == 403
    foreign = client.post(path, data={"csrf_token": token},
                          headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    assert active_version(console_settings, "bread") == before
    done = client.post(path, data={"csrf_token": token},
                       headers={"Origin": console_server.base_url})
    assert done.status_code == 303, done.text
    assert active_version(console_settings, "bread") == target
    # Another session's token is not this session's.
    other = signed_in(keys.kiel_train)
    assert other.post(path, data={"csrf_token": token}).status_code == 403


def test_a_read_key_changes_nothing(signed_in: SignedIn, keys: Keys) -> None:
    client = signed_in(keys.kiel_read)
    jobs = client.get(f"/tenants/{KIEL}/jobs")
    assert "Start training" not in jobs.text
    token = csrf_of(jobs.text)  # the sign-out form's
    started = client.post(f"/tenants/{KIEL}/jobs", data={"csrf_token": token})
    assert started.status_code == 403
    assert "role is &#39;read&#39;" in started.text
    models = client.get(f"/tenants/{KIEL}/models")
    assert "Activate…" not in models.text
    # each version says how many days its holdout metrics scored
    assert "<th scope=\"col\" class=\"num\">Held out</th>" in models.text
    assert "28 days</td>" in models.text


def test_a_forged_or_revoked_session_ends(console_server: RunningServer, keys: Keys,
                                          console_settings: Settings,
                                          signed_in: SignedIn) -> None:
    client = signed_in(keys.kiel_read)
    value = client.cookies[COOKIE]
    with httpx.Client(base_url=console_server.base_url) as forged:
        forged.cookies.set(COOKIE, value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
        assert forged.get(f"/tenants/{KIEL}").status_code == 303
    key = create_key(console_settings, tenant=KIEL, role=Role.READ)
    doomed = signed_in(key)
    assert doomed.get(f"/tenants/{KIEL}").status_code == 200
    db_run(console_settings, lambda session: keys_service.revoke_key(
        session, int(key.split("_")[1])))
    ended = doomed.get(f"/tenants/{KIEL}")
    assert (ended.status_code, ended.headers["location"]) == (303, "/sign-in")


def test_sign_out_clears_the_cookie(signed_in: SignedIn, keys: Keys) -> None:
    client = signed_in(keys.kiel_read)
    token = csrf_of(client.get(f"/tenants/{KIEL}").text)
    out = client.post("/sign-out", data={"csrf_token": token})
    assert (out.status_code, out.headers["location"]) == (303, "/sign-in")
    assert COOKIE not in client.cookies
    assert client.get(f"/tenants/{KIEL}").status_code == 303


def test_the_forecast_csv(signed_in: SignedIn, keys: Keys) -> None:
    answer = signed_in(keys.kiel_read).get(f"/tenants/{KIEL}/products/rolls/forecast.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    lines = answer.text.splitlines()
    assert lines[0] == "date,weekday,product,forecast,p10,p90,note"
    assert len(lines) == 1 + 14
    assert {line.split(",")[2] for line in lines[1:]} == {"rolls"}


def test_an_upload_is_checked_before_its_body(console_server: RunningServer,
                                              signed_in: SignedIn, keys: Keys) -> None:
    files = {"sales": ("sales.csv", b"date,product,quantity\n2024-01-01,x,1\n", "text/csv")}
    anonymous = httpx.post(f"{console_server.base_url}/tenants/{KIEL}/data", files=files)
    assert (anonymous.status_code, anonymous.headers["location"]) == (303, "/sign-in")
    other = signed_in(keys.tiny_train).post(f"/tenants/{KIEL}/data", files=files)
    assert other.status_code == 404


def test_the_console_is_not_in_the_api_schema(console_server: RunningServer) -> None:
    paths = httpx.get(f"{console_server.base_url}/openapi.json").json()["paths"]
    assert paths
    assert [p for p in paths if not p.startswith(("/api/", "/health", "/ready", "/metrics"))
            ] == []


def _events(server: RunningServer, job_id: int, *, cookie: str, origin: str
            ) -> dict[str, Any]:
    with connect(f"{server.ws_url}/api/v1/training-jobs/{job_id}/events",
                 additional_headers={"Cookie": f"{COOKIE}={cookie}", "Origin": origin}
                 ) as ws:
        message = dict(json.loads(ws.recv(timeout=15)))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=15)
        message["close_code"] = closed.value.rcvd.code if closed.value.rcvd else None
        return message


def test_the_job_events_socket_takes_the_session_from_our_pages(
        console_server: RunningServer, signed_in: SignedIn, keys: Keys,
        console_settings: Settings) -> None:
    job_id = kiel_job_id(console_settings)
    kiel = signed_in(keys.kiel_read).cookies[COOKIE]
    ours = _events(console_server, job_id, cookie=kiel, origin=console_server.base_url)
    assert (ours["type"], ours["job_id"], ours["close_code"]) == ("snapshot", job_id, 1000)
    foreign = _events(console_server, job_id, cookie=kiel, origin="https://evil.example")
    assert (foreign["type"], foreign["close_code"]) == ("error", 4403)
    tiny = signed_in(keys.tiny_train).cookies[COOKIE]
    other = _events(console_server, job_id, cookie=tiny, origin=console_server.base_url)
    assert (other["error"], other["close_code"]) == ("not_found", 4404)


def test_the_training_page_shows_the_schedule_and_its_next_run(
        signed_in: SignedIn, keys: Keys, console_settings: Settings) -> None:
    client = signed_in(keys.tiny_train)
    assert "No scheduled training" in client.get(f"/tenants/{TINY}/jobs").text

    def schedule(cron: str | None) -> Callable[[Any], Any]:
        async def work(session: Any) -> None:
            tenant = await tenants_service.get_tenant(session, TINY)
            await schedules_service.set_schedule(session, tenant, cron=cron, days=14,
                                                 models=None,
                                                 activation=ActivationPolicy.IF_BETTER)
        return work

    db_run(console_settings, schedule("30 5 * * 1-5"))
    try:
        page = client.get(f"/tenants/{TINY}/jobs").text
    finally:
        db_run(console_settings, schedule(None))
    line = page.split('<p class="schedule">', 1)[1].split("</p>", 1)[0]
    assert "<code>30 5 * * 1-5</code> in Europe/Berlin, 14 days forecast" in line
    # the next weekday's 05:30 in the tenant's zone, not yet due
    assert re.search(r"Next run \d{4}-\d\d-\d\d 05:30\.", line), line
    assert "due now" not in line
