"""Every route of the API, tried as an attacker would: without a key, with a bad or revoked
key, with another tenant's key and with a read-only key where the route writes. Each is
refused (401 / 404 exactly as if the thing did not exist / 403) and nothing in the
database changes. The routes are taken from the app itself: a new route that is not in
ROUTES below fails `test_every_route_of_the_app_is_tried`.

Also: the job-events WebSocket (key, tenant, Origin) and CORS for configured origins.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import Route
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from conftest import make_settings, run_async, write_tiny_dataset
from ovencast.api.app import CONSOLE_STATIC, create_app
from ovencast.console import endpoints as console_endpoints
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.keys import service as keys_service
from ovencast.keys.roles import Role
from ovencast.settings import Settings
from ovencast.training.embedded import train_tenant

from .conftest import RunningServer, bearer, dataset_files

pytestmark = pytest.mark.postgres

VICTIM = "victim"
INTRUDER = "intruder"
GHOST = "ghost"  # a tenant that does not exist
GHOST_JOB = 987654  # a job that does not exist
ALLOWED_ORIGIN = "https://bakery.example"
FOREIGN_ORIGIN = "https://evil.example"
WS_TIMEOUT_S = 15.0
# The issue's reproduction: two rows that replaced another tenant's whole bread history.
TWO_ROWS = {"sales": ("sales.csv", b"date,product,quantity\n2024-01-10,bread,1\n"
                                   b"2024-01-11,bread,1\n", "text/csv")}

# Routes that answer without a key (probes, the Prometheus scraper) and the documentation.
PUBLIC = {("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics")}
DOCUMENTATION = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
# The web console's pages and its static files: not the API, signed in with a session
# instead of a key; tried route by route in tests/console/test_http.py.
CONSOLE = {(method, route.path) for route in console_endpoints.router.routes
           if isinstance(route, APIRoute) for method in route.methods} | {
    ("Mount", CONSOLE_STATIC)}


@dataclass(frozen=True)
class RouteCase:
    """How to call a route on the victim's things, and what access it needs: `scope`
    tenant (the path names a tenant), job (a job id) or global (no tenant)."""

    scope: str
    role: Role
    ok: int  # the status when the access is right
    json: dict[str, Any] | None = None
    files: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def writes(self) -> bool:
        return self.role is not Role.READ


ROUTES: dict[tuple[str, str], RouteCase] = {
    ("POST", "/api/v1/tenants"): RouteCase("global", Role.ADMIN, 201, json={"name": "new"}),
    ("GET", "/api/v1/tenants"): RouteCase("global", Role.READ, 200),
    ("GET", "/api/v1/circuit-breakers"): RouteCase("global", Role.READ, 200),
    ("GET", "/api/v1/tenants/{tenant}"): RouteCase("tenant", Role.READ, 200),
    ("POST", "/api/v1/tenants/{tenant}/datasets"): RouteCase("tenant", Role.TRAIN, 201,
                                                             files=TWO_ROWS),
    ("POST", "/api/v1/tenants/{tenant}/training-jobs"): RouteCase(
        "tenant", Role.TRAIN, 202, json={"products": ["bread"], "models": ["seasonal_naive"]}),
    ("GET", "/api/v1/tenants/{tenant}/training-jobs"): RouteCase("tenant", Role.READ, 200),
    ("GET", "/api/v1/training-jobs/{job_id}"): RouteCase("job", Role.READ, 200),
    ("POST", "/api/v1/training-jobs/{job_id}/cancel"): RouteCase("job", Role.TRAIN, 200),
    ("GET", "/api/v1/tenants/{tenant}/models"): RouteCase("tenant", Role.READ, 200,
                                                          params={"all": "true"}),
    ("POST", "/api/v1/tenants/{tenant}/models/{product}/versions/{version}/activate"):
        RouteCase("tenant", Role.TRAIN, 200),
    ("GET", "/api/v1/tenants/{tenant}/forecasts"): RouteCase(
        "tenant", Role.READ, 200, params={"product": "bread", "days": 3}),
    ("WS", "/api/v1/training-jobs/{job_id}/events"): RouteCase("job", Role.READ, 0),
    ("POST", "/api/v1/tenants/{tenant}/forecast-runs"): RouteCase(
        "tenant", Role.TRAIN, 201, json={"products": ["bread"], "days": 3}),
    ("GET", "/api/v1/tenants/{tenant}/forecast-runs"): RouteCase("tenant", Role.READ, 200),
    ("GET", "/api/v1/tenants/{tenant}/forecast-runs/{run_id}"): RouteCase(
        "tenant", Role.READ, 200, params={"shadow": "true"}),
    ("GET", "/api/v1/tenants/{tenant}/accuracy"): RouteCase("tenant", Role.READ, 200),
    ("GET", "/api/v1/tenants/{tenant}/comparisons"): RouteCase("tenant", Role.READ, 200),
    ("POST", "/api/v1/tenants/{tenant}/comparisons/promote"): RouteCase(
        "tenant", Role.TRAIN, 200),
    ("GET", "/api/v1/tenants/{tenant}/schedule"): RouteCase("tenant", Role.READ, 200),
    ("POST", "/api/v1/tenants/{tenant}/schedule"): RouteCase(
        "tenant", Role.TRAIN, 200, json={"cron": "0 3 * * *"}),
}
HTTP_ROUTES = sorted(key for key in ROUTES if key[0] != "WS")
WRITING_ROUTES = [key for key in HTTP_ROUTES if ROUTES[key].writes]
READING_ROUTES = [key for key in HTTP_ROUTES if not ROUTES[key].writes]
ROUTE_IDS = [f"{method} {path}" for method, path in HTTP_ROUTES]

# Tables whose content a refused request must leave as it was (api_keys: their ids and
# revocations; last_used_at records the attempts).
TABLES = ("tenants", "sales_observations", "regressor_observations", "dataset_imports",
          "training_jobs", "training_runs", "model_versions", "procrastinate_jobs",
          "forecast_runs", "forecast_rows", "tenant_schedules")


@dataclass(frozen=True)
class World:
    """The victim tenant (data, two versions of bread with version 2 active, a queued
    job, a saved forecast run), an intruder tenant, and keys."""

    job_id: int
    keys: dict[str, str]
    run_id: int = 0

    def path(self, template: str, *, tenant: str = VICTIM, job_id: int | None = None) -> str:
        return template.format(tenant=tenant, job_id=self.job_id if job_id is None
                               else job_id, product="bread", version=1, run_id=self.run_id)


@pytest.fixture(scope="module")
def api_settings(api_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("api-home"), api_database_url,
                         allowed_origins=ALLOWED_ORIGIN)


@pytest.fixture(scope="module")
def world(client: httpx.Client, api_settings: Settings, issue_key: Callable[..., str],
          tmp_path_factory: pytest.TempPathFactory) -> World:
    data = tmp_path_factory.mktemp("data")
    for tenant, seed in ((VICTIM, 1), (INTRUDER, 2)):
        assert client.post("/api/v1/tenants", json={"name": tenant}).status_code == 201
        directory = write_tiny_dataset(data / tenant, ["bread", "rolls"], days=60, seed=seed)
        upload = client.post(f"/api/v1/tenants/{tenant}/datasets",
                             files=dataset_files(directory))
        assert upload.status_code == 201, upload.text
    for _ in range(2):
        trained = train_tenant(api_settings, VICTIM, products=["bread"],
                               models=["seasonal_naive"])
        assert trained.every_accepted_product_trained
    job = client.post(f"/api/v1/tenants/{VICTIM}/training-jobs", json={})
    assert job.status_code == 202, job.text
    run = client.post(f"/api/v1/tenants/{VICTIM}/forecast-runs", json={"days": 3})
    assert run.status_code == 201, run.text
    keys = {
        "victim_read": issue_key(VICTIM, Role.READ),
        "victim_train": issue_key(VICTIM, Role.TRAIN),
        "victim_revoked": issue_key(VICTIM, Role.ADMIN),
        "intruder_admin": issue_key(INTRUDER, Role.ADMIN, "the strongest foreign key"),
        "global_read": issue_key(None, Role.READ),
    }
    revoke(api_settings, keys["victim_revoked"])
    return World(job_id=job.json()["id"], keys=keys, run_id=run.json()["id"])


def revoke(settings: Settings, key: str) -> None:
    async def run() -> None:
        database = Database.open(settings)
        try:
            async with unit_of_work(database.sessions) as session:
                await keys_service.revoke_key(session, int(key.split("_")[1]))
        finally:
            await database.close()

    run_async(run)


def fingerprint(db_value: Callable[..., Any]) -> dict[str, Any]:
    """Each table's whole content, hashed; and the keys' ids and revocations."""
    found = {table: db_value(f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY "
                             f"t::text), '')) FROM {table} t") for table in TABLES}
    found["api_keys"] = db_value("SELECT string_agg(id || ':' || coalesce(revoked_at::text, "
                                 "'-'), ',' ORDER BY id) FROM api_keys")
    return found


@pytest.fixture
def unchanged(db_value: Callable[..., Any], world: World) -> Iterator[None]:
    """The database is the same after the test as before it."""
    before = fingerprint(db_value)
    yield
    assert fingerprint(db_value) == before


def call(http: httpx.Client, route: tuple[str, str], world: World, *,
         tenant: str = VICTIM, job_id: int | None = None,
         extra_params: dict[str, Any] | None = None) -> httpx.Response:
    method, template = route
    case = ROUTES[route]
    return http.request(method, world.path(template, tenant=tenant, job_id=job_id),
                        json=case.json, files=case.files,
                        params={**case.params, **(extra_params or {})})


# ------------------------------------------------------------------------- the routes
def _app_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves ("WS" for a WebSocket). FastAPI >=
    0.16x keeps included routers as such: `iter_route_contexts` gives their routes with
    the path they are served at."""
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    found: set[tuple[str, str]] = set()
    for served in (iterate(app.routes) if iterate else app.routes):
        route, path = getattr(served, "original_route", served), served.path
        if isinstance(route, APIRoute):
            found |= {(method, path) for method in served.methods}
        elif isinstance(route, APIWebSocketRoute):
            found.add(("WS", path))
        elif isinstance(route, Route) and path in DOCUMENTATION:
            continue
        else:  # something new: it must be looked at
            found.add((type(route).__name__, str(path)))
    return found


def test_every_route_of_the_app_is_tried(api_server: RunningServer) -> None:
    assert _app_routes(api_server.app) == set(ROUTES) | PUBLIC | CONSOLE


def test_probes_answer_without_a_key(anonymous: httpx.Client) -> None:
    for _, path in sorted(PUBLIC):
        assert anonymous.get(path).status_code == 200, path


# ------------------------------------------------------------------- 401: who are you?
@pytest.mark.parametrize("route", HTTP_ROUTES, ids=ROUTE_IDS)
@pytest.mark.usefixtures("unchanged")
def test_without_a_valid_key_every_route_is_401(
        route: tuple[str, str], world: World, anonymous: httpx.Client,
        client_with: Callable[[str], httpx.Client]) -> None:
    _, secret = world.keys["victim_read"].removeprefix("ovk_").split("_", 1)
    callers = {
        "no key": anonymous,
        "revoked key": client_with(world.keys["victim_revoked"]),
        "wrong secret": client_with(world.keys["victim_read"][:-4] + "AAAA"),
        "unknown id": client_with(f"ovk_424242_{secret}"),
        "not a key": client_with("hunter2"),
    }
    for what, http in callers.items():
        response = call(http, route, world)
        assert response.status_code == 401, (what, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == "unauthenticated", what
    assert anonymous.request(route[0], world.path(route[1]),
                             headers={"Authorization": "Basic dXNlcjpwdw=="}
                             ).status_code == 401


# ------------------------------------------------- 404: another tenant's things are not there
TENANT_OR_JOB_ROUTES = [key for key in HTTP_ROUTES if ROUTES[key].scope != "global"]


@pytest.mark.parametrize("route", TENANT_OR_JOB_ROUTES,
                         ids=[f"{m} {p}" for m, p in TENANT_OR_JOB_ROUTES])
@pytest.mark.usefixtures("unchanged")
def test_another_tenants_key_finds_nothing(route: tuple[str, str], world: World,
                                           client: httpx.Client,
                                           client_with: Callable[[str], httpx.Client]
                                           ) -> None:
    """404 with the body of a tenant or job that does not exist (as the global admin
    sees it), word for word but the name: the intruder learns nothing."""
    intruder = client_with(world.keys["intruder_admin"])
    response = call(intruder, route, world)
    assert response.status_code == 404, response.text
    if ROUTES[route].scope == "tenant":
        missing = call(client, route, world, tenant=GHOST)
        expected = json.loads(missing.text.replace(GHOST, VICTIM))
    else:
        missing = call(client, route, world, job_id=GHOST_JOB)
        expected = json.loads(missing.text.replace(str(GHOST_JOB), str(world.job_id)))
    assert missing.status_code == 404
    assert response.json() == expected
    # The key itself is good: its own tenant it reaches.
    assert intruder.get(f"/api/v1/tenants/{INTRUDER}").status_code == 200


GLOBAL_ROUTES = [key for key in HTTP_ROUTES if ROUTES[key].scope == "global"]


@pytest.mark.parametrize("route", GLOBAL_ROUTES, ids=[f"{m} {p}" for m, p in GLOBAL_ROUTES])
@pytest.mark.usefixtures("unchanged")
def test_routes_about_no_tenant_need_a_key_without_tenant(
        route: tuple[str, str], world: World,
        client_with: Callable[[str], httpx.Client]) -> None:
    for key in ("intruder_admin", "victim_train"):
        response = call(client_with(world.keys[key]), route, world)
        assert response.status_code == 403, (key, response.text)
        assert response.json()["error"] == "forbidden"
        assert "without tenant" in response.json()["detail"]


# ------------------------------------------------------------------ 403: not your role
@pytest.mark.parametrize("route", WRITING_ROUTES, ids=[f"{m} {p}" for m, p in WRITING_ROUTES])
@pytest.mark.usefixtures("unchanged")
def test_a_read_only_key_may_not_write(route: tuple[str, str], world: World,
                                       client_with: Callable[[str], httpx.Client]) -> None:
    for key in ("victim_read", "global_read"):
        response = call(client_with(world.keys[key]), route, world)
        assert response.status_code == 403, (key, response.text)
        assert response.json()["error"] == "forbidden"


@pytest.mark.parametrize("route", READING_ROUTES, ids=[f"{m} {p}" for m, p in READING_ROUTES])
@pytest.mark.usefixtures("unchanged")
def test_a_read_only_key_may_read(route: tuple[str, str], world: World,
                                  client_with: Callable[[str], httpx.Client]) -> None:
    key = "global_read" if ROUTES[route].scope == "global" else "victim_read"
    response = call(client_with(world.keys[key]), route, world)
    assert response.status_code == ROUTES[route].ok, response.text


# ------------------------------------------------- 422: a query parameter it does not take
@pytest.mark.parametrize("route", HTTP_ROUTES, ids=ROUTE_IDS)
@pytest.mark.usefixtures("unchanged")
def test_a_query_parameter_the_route_does_not_take_is_refused(
        route: tuple[str, str], world: World, client: httpx.Client,
        anonymous: httpx.Client) -> None:
    """`?products=` for `?product=` would otherwise answer another question with a 200;
    the reason names the parameter and what the route takes. Without a key, still 401."""
    response = call(client, route, world, extra_params={"products": "bread"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "request_validation"
    [reason] = body["reasons"]
    assert reason["location"] == "query.products"
    assert reason["type"] == "extra_forbidden"
    takes = reason["message"].removeprefix("unknown query parameter (this endpoint takes: ")
    assert set(ROUTES[route].params) <= set(takes.rstrip(")").split(", ")) | {"none"}
    assert call(anonymous, route, world,
                extra_params={"products": "bread"}).status_code == 401


def test_openapi_declares_the_bearer_scheme_on_every_api_route(anonymous: httpx.Client
                                                               ) -> None:
    spec = anonymous.get("/openapi.json").json()
    scheme = spec["components"]["securitySchemes"]["HTTPBearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "ovencast keys create" in scheme["description"]
    for method, path in HTTP_ROUTES:
        operation = spec["paths"][path][method.lower()]
        assert operation["security"] == [{"HTTPBearer": []}], (method, path)
        assert {"401", "403", "429"} <= set(operation["responses"]), (method, path)
    for _, path in PUBLIC:
        assert "security" not in spec["paths"][path]["get"], path


# ----------------------------------------------------------------------- the WebSocket
def ws_events(server: RunningServer, job_id: int, *, token: str | None = None,
              headers: dict[str, str] | None = None) -> ClientConnection:
    query = f"?token={token}" if token else ""
    return connect(f"{server.ws_url}/api/v1/training-jobs/{job_id}/events{query}",
                   additional_headers=headers)


def refusal(ws: ClientConnection) -> tuple[dict[str, Any], int | None]:
    """The error message and the close code of a refused WebSocket."""
    message = json.loads(ws.recv(timeout=WS_TIMEOUT_S))
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=WS_TIMEOUT_S)
    return message, closed.value.rcvd.code if closed.value.rcvd else None


@pytest.mark.usefixtures("unchanged")
def test_events_without_a_valid_key_are_refused(api_server: RunningServer,
                                                world: World) -> None:
    for token in (None, "ovk_1_nonsense", world.keys["victim_revoked"]):
        with ws_events(api_server, world.job_id, token=token) as ws:
            message, code = refusal(ws)
        assert (message["type"], message["error"], code) == (
            "error", "unauthenticated", 4401), token


@pytest.mark.usefixtures("unchanged")
def test_events_of_another_tenants_job_are_as_of_no_job(api_server: RunningServer,
                                                        world: World) -> None:
    intruder = world.keys["intruder_admin"]
    with ws_events(api_server, world.job_id, token=intruder) as ws:
        foreign = refusal(ws)
    with ws_events(api_server, GHOST_JOB, token=intruder) as ws:
        missing = refusal(ws)
    assert foreign[1] == missing[1] == 4404
    assert json.dumps(foreign[0]) == json.dumps(missing[0]).replace(str(GHOST_JOB),
                                                                    str(world.job_id))


def test_events_check_the_origin_a_browser_sends(api_server: RunningServer,
                                                 world: World) -> None:
    key = world.keys["victim_read"]
    with ws_events(api_server, world.job_id, token=key,
                   headers={"Origin": FOREIGN_ORIGIN}) as ws:
        message, code = refusal(ws)
    assert (message["error"], code) == ("forbidden", 4403)
    assert FOREIGN_ORIGIN in message["detail"]
    for headers in ({"Origin": ALLOWED_ORIGIN}, {}):  # an allowed browser; not a browser
        with ws_events(api_server, world.job_id, token=key, headers=headers) as ws:
            snapshot = json.loads(ws.recv(timeout=WS_TIMEOUT_S))
        assert (snapshot["type"], snapshot["job_id"]) == ("snapshot", world.job_id)
    with ws_events(api_server, world.job_id, headers=bearer(key)) as ws:  # key as header
        assert json.loads(ws.recv(timeout=WS_TIMEOUT_S))["type"] == "snapshot"


# --------------------------------------------------------------------------------- CORS
def test_cors_answers_only_the_configured_origins(anonymous: httpx.Client,
                                                  world: World) -> None:
    path = f"/api/v1/tenants/{VICTIM}/models"
    preflight = {"Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}
    allowed = anonymous.options(path, headers={"Origin": ALLOWED_ORIGIN, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed.headers

    refused = anonymous.options(path, headers={"Origin": FOREIGN_ORIGIN, **preflight})
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers

    reader = bearer(world.keys["victim_read"])
    simple = anonymous.get(path, headers={"Origin": ALLOWED_ORIGIN, **reader})
    assert simple.status_code == 200
    assert simple.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    other = anonymous.get(path, headers={"Origin": FOREIGN_ORIGIN, **reader})
    assert "access-control-allow-origin" not in other.headers


def test_no_cors_unless_origins_are_configured(tmp_path: Path) -> None:
    def cors(settings: Settings) -> list[Any]:
        return [m for m in create_app(settings).user_middleware if m.cls is CORSMiddleware]

    assert cors(make_settings(tmp_path)) == []
    assert len(cors(make_settings(tmp_path, allowed_origins=ALLOWED_ORIGIN))) == 1


# ------------------------------------------------- the right keys do get through (last)
@pytest.mark.parametrize("route", WRITING_ROUTES, ids=[f"{m} {p}" for m, p in WRITING_ROUTES])
def test_the_right_key_may_write(route: tuple[str, str], world: World,
                                 client: httpx.Client,
                                 client_with: Callable[[str], httpx.Client]) -> None:
    """The refusals above are about the keys, not the requests: with the right key each
    writing request succeeds."""
    http = client if ROUTES[route].scope == "global" else client_with(
        world.keys["victim_train"])
    response = call(http, route, world)
    assert response.status_code == ROUTES[route].ok, response.text
