"""Progress events: one discriminated union, the same through every channel."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from ovencast.events.progress import (
    EVENT,
    Backtest,
    Failed,
    FamilyFailed,
    Finished,
    JobEvent,
    Queued,
    Started,
    TimedOut,
    Trial,
    run_ended,
)
from ovencast.events.publish import MAX_PAYLOAD_BYTES, encode
from ovencast.jobs.states import JobStatus, RunStatus

EVENTS = [
    Queued(job_id=1, product="bread"),
    Started(job_id=1, product="bread"),
    Backtest(job_id=1, product="bread", family="lightgbm", n=2, total=4),
    Trial(job_id=1, product="bread", n=3, total=30, mape=0.21),
    Trial(job_id=1, product="bread", n=4, total=30, mape=None),
    FamilyFailed(job_id=1, product="bread", family="mstl", reason="ValueError: x"),
    Finished(job_id=1, product="bread", family="ensemble", version=3,
             metrics={"wape": 0.18}, model="ensemble(lightgbm+tsb)"),
    Failed(job_id=1, product="bread", reason="too few days"),
    TimedOut(job_id=1, product="bread", reason="stopped after 30 min"),
    JobEvent(job_id=1, status=JobStatus.PARTIAL, error=None),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: f"{e.type}-{getattr(e, 'event', '')}")
def test_an_event_survives_notify_json_and_the_pool_queue_unchanged(event: Any) -> None:
    assert EVENT.validate_json(encode(event)) == event
    assert pickle.loads(pickle.dumps(event)) == event


def test_the_wire_format_is_the_documented_one() -> None:
    assert json.loads(encode(Backtest(job_id=7, product="rolls", family="tsb", n=1,
                                      total=4))) == {
        "type": "product", "job_id": 7, "product": "rolls", "event": "backtest",
        "family": "tsb", "n": 1, "total": 4}
    assert json.loads(encode(JobEvent(job_id=7, status=JobStatus.SUCCEEDED))) == {
        "type": "job", "job_id": 7, "status": "succeeded"}


def test_unknown_event_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="event"):
        EVENT.validate_python({"type": "product", "job_id": 1, "product": "x",
                               "event": "skipped"})


def test_a_run_that_ended_untrained_is_announced_by_its_state() -> None:
    assert run_ended(1, "x", RunStatus.TIMED_OUT, "slow") == TimedOut(
        job_id=1, product="x", reason="slow")
    assert run_ended(1, "x", RunStatus.FAILED, "bad") == Failed(job_id=1, product="x",
                                                                reason="bad")


def test_an_oversized_event_is_cut_to_fit_a_notification() -> None:
    event = Failed(job_id=1, product="bread", reason="x" * 20_000)
    payload = encode(event)
    assert len(payload.encode()) < MAX_PAYLOAD_BYTES
    parsed = EVENT.validate_json(payload)
    assert isinstance(parsed, Failed)
    assert parsed.reason is not None
    assert parsed.reason.startswith("xxx")
