"""Job and run states are enums end to end: the API's schema lists them."""

from __future__ import annotations

from pathlib import Path

from ovencast.api.app import create_app
from ovencast.jobs.states import TERMINAL_JOB, TERMINAL_RUN, JobStatus, RunStatus
from ovencast.settings import Settings


def test_the_openapi_schema_lists_every_state(tmp_path: Path) -> None:
    schemas = create_app(Settings(ovencast_home=tmp_path)).openapi()["components"]["schemas"]
    assert schemas["JobStatus"]["enum"] == [s.value for s in JobStatus]
    assert schemas["RunStatus"]["enum"] == [s.value for s in RunStatus]
    assert schemas["TrainingRunOut"]["properties"]["status"] == {
        "$ref": "#/components/schemas/RunStatus"}


def test_end_states() -> None:
    assert {s for s in JobStatus if s.ended} == TERMINAL_JOB
    assert not JobStatus.QUEUED.ended
    assert not JobStatus.RUNNING.ended
    assert {s for s in RunStatus if s.ended} == TERMINAL_RUN
    assert RunStatus.CANCELLED.ended
    assert not RunStatus.PENDING.ended
