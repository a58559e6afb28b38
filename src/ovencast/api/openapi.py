"""The OpenAPI document says every answer a route can give: the statuses that any route
may answer whatever its own ones (the body limit's 413 and, with a body, the 400 of an
unreadable one; 503 while the database is down), and FastAPI's default 422 schema
replaced by the shape the error handler really sends (`UnprocessableOut`). schemathesis
checks the API against this document (tests/api/test_fuzz.py)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR = {"$ref": "#/components/schemas/ErrorOut"}
UNPROCESSABLE = {"$ref": "#/components/schemas/UnprocessableOut"}
EVERY_ROUTE = {"413": "Request body over its limit (MAX_BODY_BYTES, MAX_UPLOAD_BYTES)",
               "503": "Database unavailable; try again later"}
WITH_A_BODY = {"400": "The request body could not be read (not the declared encoding)"}
METHODS = ("get", "post", "put", "patch", "delete")


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary,
                                 routes=app.routes, tags=app.openapi_tags)
            complete_error_responses(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented hook


def complete_error_responses(schema: dict[str, Any]) -> None:
    for path_item in schema.get("paths", {}).values():
        for method in METHODS:
            operation = path_item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            extra = {**EVERY_ROUTE, **(WITH_A_BODY if "requestBody" in operation else {})}
            for status, description in extra.items():
                responses.setdefault(status, _error(description, ERROR))
            if "422" in responses:
                responses["422"] = _error(responses["422"].get("description", "Invalid input"),
                                          UNPROCESSABLE)
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    if "ErrorOut" not in schemas or "UnprocessableOut" not in schemas:
        raise RuntimeError("the error schemas are not in the OpenAPI components")


def _error(description: str, ref: dict[str, str]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref}}}
