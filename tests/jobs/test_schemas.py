"""A job id in a path is range-checked (1..2^31-1, the INTEGER column): 2^63 is a 422
from the request validation, never a driver error (a 500)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from pydantic import TypeAdapter, ValidationError

from ovencast.db.base import MAX_ROW_ID
from ovencast.jobs.endpoints import router
from ovencast.jobs.schemas import JobId


@pytest.mark.parametrize("value", [1, 7, MAX_ROW_ID])
def test_ids_in_range(value: int) -> None:
    assert TypeAdapter(JobId).validate_python(value) == value


@pytest.mark.parametrize("value", [0, -1, MAX_ROW_ID + 1, 2**63])
def test_ids_out_of_range(value: int) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(JobId).validate_python(value)


# The routes and their access check (api/dependencies.job_access, which runs first)
# declare the same range.
@pytest.mark.parametrize(("path", "method"), [
    ("/training-jobs/{job_id}", "get"), ("/training-jobs/{job_id}/cancel", "post")])
def test_the_routes_declare_the_range(path: str, method: str) -> None:
    app = FastAPI()
    app.include_router(router)
    parameters = app.openapi()["paths"][path][method]["parameters"]
    job_id = next(p for p in parameters if p["name"] == "job_id")
    assert (job_id["schema"]["minimum"], job_id["schema"]["maximum"]) == (1, MAX_ROW_ID)
