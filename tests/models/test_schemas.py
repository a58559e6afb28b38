"""A version number in a path is range-checked (1..2^31-1): 2^63 is a 422, not a 500."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from pydantic import TypeAdapter, ValidationError

from ovencast.db.base import MAX_ROW_ID
from ovencast.models.endpoints import router
from ovencast.models.schemas import VersionNumber


@pytest.mark.parametrize(("value", "valid"), [
    (1, True), (MAX_ROW_ID, True), (0, False), (MAX_ROW_ID + 1, False), (2**63, False)])
def test_version_range(value: int, valid: bool) -> None:
    if valid:
        assert TypeAdapter(VersionNumber).validate_python(value) == value
    else:
        with pytest.raises(ValidationError):
            TypeAdapter(VersionNumber).validate_python(value)


def test_the_activate_route_declares_the_range() -> None:
    app = FastAPI()
    app.include_router(router)
    path = "/tenants/{tenant}/models/{product}/versions/{version}/activate"
    parameters = app.openapi()["paths"][path]["post"]["parameters"]
    version = next(p for p in parameters if p["name"] == "version")
    assert (version["schema"]["minimum"], version["schema"]["maximum"]) == (1, MAX_ROW_ID)
