"""`ovencast data-server`: serve a dataset directory (the shared/data layout) under the
upstream HTTP contract (docs/UPSTREAM.md), as sales, weather and traffic services on one
port, with injectable faults.

The files are parsed with the same reader as `ovencast import`, so a tenant served here
and the same directory imported give the same data.

Admin endpoints (never faulted, never counted): `GET /_stats` (requests received per
service), `DELETE /_stats` (reset), `GET|POST|DELETE /_faults` (list, add or replace,
clear the faults in force), `GET /health`.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ovencast.datasets.reader import ParsedDataset, read_dataset_dir
from ovencast.observability.logs import get_logger
from ovencast.sources import contract
from ovencast.testing.faults import Fault, FaultTable

log = get_logger(__name__)

# How long a stopping server waits for requests still in flight (e.g. a delayed answer).
SHUTDOWN_GRACE_S = 1.0


@dataclass(frozen=True)
class SeriesTable:
    columns: list[str]
    rows: list[dict[str, Any]]  # sorted by date; {"date": ISO, column: float | None}
    dates: list[date]


@dataclass
class ServedTenant:
    """One dataset directory as the services hold it."""

    name: str
    country: str | None
    subdivision: str | None
    time_zone: str | None
    sales: list[dict[str, Any]]  # sorted by (product, date)
    sales_keys: list[tuple[str, date]]
    series: dict[str, SeriesTable] = field(default_factory=dict)

    @classmethod
    def from_dataset(cls, name: str, dataset: ParsedDataset, *, country: str | None = None,
                     subdivision: str | None = None, time_zone: str | None = None
                     ) -> ServedTenant:
        ordered = sorted(dataset.sales, key=lambda r: (r.product, r.date))
        series: dict[str, SeriesTable] = {}
        for source in ("calendar", "weather", "traffic"):
            columns = [c for c in dataset.regressors if c.source == source]
            days = sorted({d for c in columns for d in c.values})
            rows = [{"date": d.isoformat(), **{c.name: c.values.get(d) for c in columns}}
                    for d in days]
            series[source] = SeriesTable([c.name for c in columns] if days else [], rows, days)
        return cls(name=name, country=country, subdivision=subdivision, time_zone=time_zone,
                   sales=[{"date": r.date.isoformat(), "product": r.product,
                           "quantity": r.quantity} for r in ordered],
                   sales_keys=[(r.product, r.date) for r in ordered], series=series)

    def add_weather_forecasts(self, issued: pd.DataFrame) -> None:
        """Serve `issued` (date, issued_at, weather columns) as forecast rows of the
        weather series: each row carries its `issued_at`; the client keeps the newest
        issue of a date, and a measured row over any forecast."""
        weather = self.series["weather"]
        columns = weather.columns or [c for c in issued.columns
                                      if c not in ("date", "issued_at")]
        rows = list(weather.rows)
        for record in issued.to_dict(orient="records"):
            rows.append({"date": str(record["date"]), "issued_at": str(record["issued_at"]),
                         **{c: (None if pd.isna(record.get(c)) else float(record[c]))
                            for c in columns}})
        rows.sort(key=lambda row: (row["date"], row.get("issued_at", "")))
        self.series["weather"] = SeriesTable(
            columns, rows, [date.fromisoformat(row["date"]) for row in rows])

    def profile(self) -> contract.TenantProfile:
        days = [day for _, day in self.sales_keys]
        return contract.TenantProfile(
            tenant=self.name, country=self.country, subdivision=self.subdivision,
            time_zone=self.time_zone, products=sorted({p for p, _ in self.sales_keys}),
            first_date=min(days, default=None), last_date=max(days, default=None))


class ContractError(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


def error_response(status: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


def _page(rows: list[dict[str, Any]], limit: int, cursor: str | None
          ) -> tuple[list[dict[str, Any]], str | None]:
    try:
        offset = int(cursor) if cursor else 0
        if offset < 0 or offset > len(rows):
            raise ValueError
    except ValueError:
        raise ContractError(400, contract.ERROR_BAD_REQUEST,
                            f"cursor {cursor!r} is not a cursor this server gave out"
                            ) from None
    end = offset + min(limit, contract.MAX_PAGE_SIZE)
    return rows[offset:end], (str(end) if end < len(rows) else None)


def _check_range(start: date | None, end: date | None) -> None:
    if start is not None and end is not None and start > end:
        raise ContractError(400, contract.ERROR_BAD_REQUEST,
                            f"start {start} is after end {end}")


class FaultsBody(BaseModel):
    faults: list[str | dict[str, Any]]
    replace: bool = False


@dataclass
class ServerState:
    tenant: ServedTenant
    faults: FaultTable = field(default_factory=FaultTable)
    requests: Counter[str] = field(default_factory=Counter)
    paths: Counter[str] = field(default_factory=Counter)

    def stats(self) -> dict[str, Any]:
        return {"requests": {s: self.requests[s] for s in contract.SERVICES},
                "total": sum(self.requests.values()), "paths": dict(self.paths)}


def create_app(tenant: ServedTenant, faults: Sequence[Fault] = ()) -> FastAPI:
    """The ASGI app serving `tenant` under the contract, faults in force from the start."""
    state = ServerState(tenant=tenant)
    state.faults.replace(list(faults))
    app = FastAPI(title="ovencast data server", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.data = state
    _error_handlers(app)
    _contract_routes(app, state)
    _admin_routes(app, state)
    app.add_middleware(FaultMiddleware, state=state)
    return app


def _error_handlers(app: FastAPI) -> None:
    """Every error in the contract's shape (docs/UPSTREAM.md)."""

    @app.exception_handler(ContractError)
    async def _contract_error(_: Request, exc: ContractError) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _bad_params(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}"
                             for e in exc.errors())
        return error_response(400, contract.ERROR_BAD_REQUEST, problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = contract.ERROR_NOT_FOUND if exc.status_code == 404 else "http_error"
        return error_response(exc.status_code, error, str(exc.detail))


def _contract_routes(app: FastAPI, state: ServerState) -> None:
    """The routes of the contract: profile, sales, calendar, weather, traffic."""

    def served(name: str) -> ServedTenant:
        if name != state.tenant.name:
            raise ContractError(404, contract.ERROR_UNKNOWN_TENANT,
                                f"tenant {name!r} is not known to this service")
        return state.tenant

    limit_query = Query(default=contract.DEFAULT_PAGE_SIZE, ge=1)

    @app.get("/tenants/{name}")
    async def profile(name: str) -> dict[str, Any]:
        return served(name).profile().model_dump(mode="json")

    @app.get("/tenants/{name}/sales")
    async def sales(name: str, start: date | None = None, end: date | None = None,
                    product: Annotated[list[str] | None, Query()] = None,
                    limit: int = limit_query, cursor: str | None = None) -> JSONResponse:
        data = served(name)
        _check_range(start, end)
        wanted = set(product or ())
        rows = [row for row, (prod, day) in zip(data.sales, data.sales_keys, strict=True)
                if (not wanted or prod in wanted) and (start is None or day >= start)
                and (end is None or day <= end)]
        page, next_cursor = _page(rows, limit, cursor)
        return JSONResponse({"tenant": data.name, "rows": page, "next_cursor": next_cursor})

    async def series(name: str, kind: str, start: date | None, end: date | None,
                     limit: int, cursor: str | None) -> JSONResponse:
        data = served(name)
        _check_range(start, end)
        table = data.series[kind]
        rows = [row for row, day in zip(table.rows, table.dates, strict=True)
                if (start is None or day >= start) and (end is None or day <= end)]
        page, next_cursor = _page(rows, limit, cursor)
        return JSONResponse({"tenant": data.name, "columns": table.columns, "rows": page,
                             "next_cursor": next_cursor})

    @app.get("/tenants/{name}/calendar")
    async def calendar(name: str, start: date | None = None, end: date | None = None,
                       limit: int = limit_query, cursor: str | None = None
                       ) -> JSONResponse:
        return await series(name, "calendar", start, end, limit, cursor)

    @app.get("/tenants/{name}/weather")
    async def weather(name: str, start: date | None = None, end: date | None = None,
                      limit: int = limit_query, cursor: str | None = None) -> JSONResponse:
        return await series(name, "weather", start, end, limit, cursor)

    @app.get("/tenants/{name}/traffic")
    async def traffic(name: str, start: date | None = None, end: date | None = None,
                      limit: int = limit_query, cursor: str | None = None) -> JSONResponse:
        return await series(name, "traffic", start, end, limit, cursor)


def _admin_routes(app: FastAPI, state: ServerState) -> None:
    """Health, request counters and faults: never faulted, never counted."""

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/_stats")
    async def get_stats() -> dict[str, Any]:
        return state.stats()

    @app.delete("/_stats")
    async def reset_stats() -> dict[str, Any]:
        state.requests.clear()
        state.paths.clear()
        return state.stats()

    @app.get("/_faults")
    async def get_faults() -> dict[str, Any]:
        return {"faults": state.faults.listing()}

    @app.post("/_faults")
    async def set_faults(body: FaultsBody) -> dict[str, Any]:
        try:
            faults = [Fault.from_value(item) for item in body.faults]
        except (TypeError, ValueError) as exc:
            raise ContractError(400, contract.ERROR_BAD_REQUEST, str(exc)) from None
        if body.replace:
            state.faults.replace(faults)
        else:
            state.faults.add(faults)
        log.info("data_server.faults_changed", faults=state.faults.listing())
        return {"faults": state.faults.listing()}

    @app.delete("/_faults")
    async def clear_faults() -> dict[str, Any]:
        state.faults.replace([])
        return {"faults": []}


class FaultMiddleware:
    """Counts every contract request per service, then applies the faults in force:
    delays first (they add up), then the first status / drop / malformed."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        service = contract.service_of_path(path)
        if service is not None:
            self.state.requests[service] += 1
            self.state.paths[path] += 1
        faults = self.state.faults.take(service, path) if not path.startswith("/_") else []
        delay = sum(f.delay for f in faults)
        if delay:
            await asyncio.sleep(delay)
        action = next((f for f in faults if f.status or f.drop or f.malformed), None)
        if action is None:
            await self.app(scope, receive, send)
        elif action.status is not None:
            await error_response(action.status, _status_error(action.status),
                                 f"fault injected by the data server: status "
                                 f"{action.status}")(scope, receive, send)
        elif action.malformed:
            body = b'{"tenant": "truncated", "rows": [{"date": "2020-01-0'
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
        else:
            await _drop(send)


def _status_error(status: int) -> str:
    if status == 404:
        return contract.ERROR_NOT_FOUND
    if status >= 500:
        return contract.ERROR_UNAVAILABLE if status in (502, 503, 504) else (
            contract.ERROR_INTERNAL)
    return contract.ERROR_BAD_REQUEST


async def _drop(send: Send) -> None:
    # Promise a body, send part of it, then return: uvicorn sees an incomplete response
    # and closes the connection, so the client sees the peer hang up mid-response.
    start: Message = {"type": "http.response.start", "status": 200,
                      "headers": [(b"content-type", b"application/json"),
                                  (b"content-length", b"4096")]}
    await send(start)
    await send({"type": "http.response.body", "body": b'{"rows": [', "more_body": True})


WEATHER_FORECAST_FILE = "weather_forecast.csv"
"""Optional in a served directory: `date,issued_at,<weather columns>`, the weather
service's forecasts (several issues of one date allowed)."""


def served_tenant(directory: Path, *, tenant: str | None = None, country: str | None = None,
                  subdivision: str | None = None, time_zone: str | None = None
                  ) -> ServedTenant:
    """Read `directory` (raises InvalidDataset like `ovencast import`) for serving; its
    `weather_forecast.csv`, if any, joins the weather series as issued forecasts."""
    dataset = read_dataset_dir(directory)
    served = ServedTenant.from_dataset(tenant or directory.resolve().name, dataset,
                                       country=country, subdivision=subdivision,
                                       time_zone=time_zone)
    forecasts = directory / WEATHER_FORECAST_FILE
    if forecasts.is_file():
        served.add_weather_forecasts(pd.read_csv(forecasts))
    return served


def run_data_server(tenant: ServedTenant, *, host: str = "127.0.0.1", port: int = 8300,
                    faults: Sequence[Fault] = (), log_level: str = "warning") -> None:
    """Serve until interrupted (the `ovencast data-server` command)."""
    app = create_app(tenant, faults)
    uvicorn.run(app, host=host, port=port, log_level=log_level,
                timeout_graceful_shutdown=int(SHUTDOWN_GRACE_S) or 1)


@dataclass(frozen=True)
class RunningServer:
    url: str  # base URL, e.g. http://127.0.0.1:41234; admin endpoints under it


@contextmanager
def serve_in_thread(tenant: ServedTenant, *, faults: Sequence[Fault] = (),
                    host: str = "127.0.0.1", startup_timeout_s: float = 10.0
                    ) -> Iterator[RunningServer]:
    """Run the data server on an ephemeral port in a background thread (tests, demos).
    Yields its base URL; stops it on exit."""
    app = create_app(tenant, faults)
    config = uvicorn.Config(app, host=host, port=0, log_level="warning", lifespan="off",
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="ovencast-data-server", daemon=True)
    thread.start()
    waited = 0.0
    while not server.started:
        if not thread.is_alive() or waited > startup_timeout_s:
            server.should_exit = True
            raise RuntimeError("the data server did not start")
        threading.Event().wait(0.02)
        waited += 0.02
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningServer(url=f"http://{host}:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=5)
