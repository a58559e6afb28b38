"""The API's request metrics (observability/http_metrics.py): labelled by route template,
never by the path (ids and tenant names would each become a series), with the status the
client got, 500 for a request that raised."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import REGISTRY

from ovencast.observability.http_metrics import HttpMetrics

NAME = "ovencast_http_request_duration_seconds_count"


def count(method: str, route: str, status: str) -> float:
    return REGISTRY.get_sample_value(NAME, {"method": method, "route": route,
                                            "status": status}) or 0.0


def app() -> FastAPI:
    router = APIRouter()

    @router.get("/bakeries/{tenant}/loaves/{loaf_id}")
    async def loaf(tenant: str, loaf_id: int) -> dict[str, str]:
        return {"tenant": tenant}

    @router.get("/burnt")
    async def burnt() -> None:
        raise RuntimeError("oven on fire")

    application = FastAPI()
    application.include_router(router, prefix="/api/v1")
    application.add_middleware(HttpMetrics)
    return application


async def test_requests_are_counted_by_route_template_and_status() -> None:
    route = "/api/v1/bakeries/{tenant}/loaves/{loaf_id}"
    before = {status: count("GET", route, status) for status in ("200", "422")}
    unmatched, burnt = count("GET", "unmatched", "404"), count("GET", "/api/v1/burnt", "500")
    transport = httpx.ASGITransport(app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        for tenant in ("kiel", "hamburg", "bremen"):
            assert (await http.get(f"/api/v1/bakeries/{tenant}/loaves/1")).status_code == 200
        assert (await http.get("/api/v1/bakeries/kiel/loaves/rye")).status_code == 422
        assert (await http.get("/api/v1/nowhere/42")).status_code == 404
        assert (await http.get("/api/v1/burnt")).status_code == 500

    assert count("GET", route, "200") == before["200"] + 3
    assert count("GET", route, "422") == before["422"] + 1
    assert count("GET", "unmatched", "404") == unmatched + 1
    assert count("GET", "/api/v1/burnt", "500") == burnt + 1
    labels = {s.labels["route"] for m in REGISTRY.collect() if m.name ==
              "ovencast_http_request_duration_seconds" for s in m.samples}
    assert not any("kiel" in label or "hamburg" in label for label in labels)


@pytest.mark.parametrize("method", ["POST", "DELETE"])
async def test_the_method_is_a_label(method: str) -> None:
    before = count(method, "unmatched", "404")
    transport = httpx.ASGITransport(app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        await http.request(method, "/nothing")
    assert count(method, "unmatched", "404") == before + 1
