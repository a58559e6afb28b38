"""The one place where exceptions become HTTP responses.

Every error body has the same shape: `{"error": <snake_case name>, "detail": <one line>}`,
sometimes with more fields (`reasons` for a request that failed validation, `problems`
for a rejected dataset). An expected condition (an `OvencastError`, a bad request, the
database being unreachable) is never answered with a 500 traceback.
"""

from __future__ import annotations

import re
from dataclasses import asdict, is_dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ovencast.db.session import DATABASE_ERRORS
from ovencast.errors import (
    ArtifactRefused,
    BadGateway,
    Conflict,
    Forbidden,
    InvalidRequest,
    Misconfigured,
    ModelFitFailed,
    NotFound,
    OvencastError,
    PayloadTooLarge,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from ovencast.observability.logs import get_logger

log = get_logger(__name__)

# Failures to reach the database are an outage (503, retry later), not a bug.
DATABASE_UNAVAILABLE = DATABASE_ERRORS


class ErrorOut(BaseModel):
    """The body of every error response."""

    error: str
    detail: str


class ValidationReason(BaseModel):
    location: str
    message: str
    type: str


class DatasetProblemOut(BaseModel):
    file: str
    line: int
    column: str | None
    message: str


class UnprocessableOut(ErrorOut):
    """422: `reasons` when the request itself is malformed (which field, why);
    `problems` when an uploaded dataset has bad cells (file, line, column)."""

    reasons: list[ValidationReason] | None = None
    problems: list[DatasetProblemOut] | None = None


# Each kind of error (errors.py) and what it is over HTTP: status and `error` code. A
# subclass answers with its kind's status and its own name as code (`TenantNotFound` ->
# 404 `tenant_not_found`); the first kind in this order that it is a subclass of decides.
KINDS: tuple[tuple[type[OvencastError], int, str], ...] = (
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (InvalidRequest, 422, "unprocessable"),
    (PayloadTooLarge, 413, "payload_too_large"),
    (Unavailable, 503, "unavailable"),
    (BadGateway, 502, "bad_gateway"),
    (ArtifactRefused, 500, "artifact_refused"),
    (Misconfigured, 500, "misconfigured"),
    (ModelFitFailed, 500, "model_fit_failed"),
    (Unauthenticated, 401, "unauthenticated"),
    (Forbidden, 403, "forbidden"),
    (RateLimited, 429, "rate_limited"),
)
UNKNOWN_KIND_STATUS = 500


def status_for(error: OvencastError | type[OvencastError]) -> int:
    """The HTTP status of an error (or error class), from its kind."""
    cls = error if isinstance(error, type) else type(error)
    return next((status for kind, status, _ in KINDS if issubclass(cls, kind)),
                UNKNOWN_KIND_STATUS)


def error_code(exc: BaseException | type[BaseException]) -> str:
    """`ChecksumMismatch` (an error or its class) -> `checksum_mismatch`; a kind itself
    by its code in KINDS (`Conflict` -> `conflict`)."""
    cls = exc if isinstance(exc, type) else type(exc)
    for kind, _, code in KINDS:
        if cls is kind:
            return code
    name = cls.__name__
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail, **extra}


def error_headers(exc: OvencastError) -> dict[str, str] | None:
    """Headers HTTP asks for with some statuses: how to authenticate (401), when to try
    again (429)."""
    if isinstance(exc, Unauthenticated):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(exc.retry_after_s)}
    return None


def ovencast_error_response(exc: OvencastError) -> JSONResponse:
    extra: dict[str, Any] = {}
    problems = getattr(exc, "problems", None)
    if isinstance(problems, list):  # a rejected dataset: every bad cell, structured
        extra["problems"] = [asdict(p) if is_dataclass(p) and not isinstance(p, type)
                             else str(p) for p in problems]
    return JSONResponse(status_code=status_for(exc),
                        content=jsonable_encoder(error_body(error_code(exc), exc.message,
                                                            **extra)),
                        headers=error_headers(exc))


async def _ovencast_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OvencastError)
    if status_for(exc) >= 500:
        log.error("api.request.failed", method=request.method, path=request.url.path,
                  error=error_code(exc), detail=exc.message)
    return ovencast_error_response(exc)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    reasons = [{"location": _location(e.get("loc", ())), "message": str(e.get("msg", "")),
                "type": str(e.get("type", ""))} for e in exc.errors()]
    summary = "; ".join(f"{r['location']}: {r['message']}" for r in reasons[:10])
    return JSONResponse(status_code=422, content=error_body(
        "request_validation", f"invalid request: {summary}", reasons=reasons))


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(status_code=exc.status_code, content=error_body(code, str(exc.detail)),
                        headers=exc.headers)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.error("api.database.unavailable", method=request.method, path=request.url.path,
              error=f"{type(exc).__name__}: {exc}")
    return JSONResponse(status_code=503, content=error_body(
        "database_unavailable",
        f"the database is unavailable ({type(exc).__name__}); try again later"))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises after this response, so the server logs the traceback.
    return JSONResponse(status_code=500, content=error_body(
        "internal_error", "unexpected server error; see the server log"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(OvencastError, _ovencast_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    for kind in DATABASE_UNAVAILABLE:
        app.add_exception_handler(kind, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)


# OpenAPI: the error responses an endpoint may give, by status.
def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {400: "Bad request", 401: "No API key, or one unknown or revoked",
                 403: "The API key's role (or scope) does not allow this",
                 404: "Not found", 409: "Conflict",
                 429: "Rate limit of the caller's tenant reached (see Retry-After)",
                 413: "Upload too large", 422: "Invalid input",
                 500: "Server-side failure (e.g. an artifact failed its checksum)",
                 503: "Database or schema not ready"}
    out: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorOut, "description": described.get(status, "Error")}
        for status in statuses}
    if 422 in statuses:
        out[422] = {"model": UnprocessableOut, "description": described[422]}
    return out


# What every authenticated route may answer besides its own statuses (api/dependencies.py).
ACCESS_ERRORS = error_responses(401, 403, 429)
