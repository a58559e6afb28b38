"""Training progress events: one discriminated union, the same objects in every place
they travel. Worker processes put them on the pool's queue, the CLI renders them, the
service shape publishes them with NOTIFY (`events/publish.py`) and the WebSocket
forwards them as JSON (`model_dump(mode="json", exclude_none=True)`).

    {"type": "product", "job_id", "product", "event": queued|started|backtest|trial|
     family_failed|finished|failed|timed_out|refused, ...fields of that event}
    {"type": "job", "job_id", "status", "error"}   the job's end
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from ovencast.jobs.states import JobStatus, RunStatus, Step


class _ProductEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: Literal["product"] = "product"
    job_id: int
    product: str


class Queued(_ProductEvent):
    event: Literal[Step.QUEUED] = Step.QUEUED


class Started(_ProductEvent):
    event: Literal[Step.STARTED] = Step.STARTED


class Backtest(_ProductEvent):
    """Candidate `n` of `total` is being backtested."""

    event: Literal[Step.BACKTEST] = Step.BACKTEST
    family: str
    n: int
    total: int


class Trial(_ProductEvent):
    """Optuna trial `n` of `total` finished; `mape` its objective (None: it failed)."""

    event: Literal[Step.TRIAL] = Step.TRIAL
    n: int
    total: int
    mape: float | None = None


class FamilyFailed(_ProductEvent):
    event: Literal[Step.FAMILY_FAILED] = Step.FAMILY_FAILED
    family: str
    reason: str


class Finished(_ProductEvent):
    """Trained: the version it produced and its holdout metrics; `model` what selection
    chose (e.g. "ensemble(lightgbm+tsb)")."""

    event: Literal[Step.FINISHED] = Step.FINISHED
    family: str | None = None
    version: int | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None


class Failed(_ProductEvent):
    event: Literal[RunStatus.FAILED] = RunStatus.FAILED
    reason: str | None = None


class TimedOut(_ProductEvent):
    event: Literal[RunStatus.TIMED_OUT] = RunStatus.TIMED_OUT
    reason: str | None = None


class Refused(_ProductEvent):
    """The data rules refused the product; `reason` says which."""

    event: Literal[RunStatus.REFUSED] = RunStatus.REFUSED
    reason: str | None = None


ProductEvent = Annotated[Queued | Started | Backtest | Trial | FamilyFailed | Finished
                         | Failed | TimedOut | Refused, Field(discriminator="event")]


class JobEvent(BaseModel):
    """The job's end (or its cancellation)."""

    model_config = ConfigDict(frozen=True)

    type: Literal["job"] = "job"
    job_id: int
    status: JobStatus
    error: str | None = None


Event = Annotated[ProductEvent | JobEvent, Field(discriminator="type")]
EVENT: TypeAdapter[Event] = TypeAdapter(Event)
"""Parses an event from JSON (`EVENT.validate_json`) or a dict."""

EventSink = Callable[[ProductEvent], None]
"""Receives a product's progress events (in whichever process or thread emits them)."""

ENDS: dict[RunStatus, type[Failed] | type[TimedOut] | type[Refused]] = {
    RunStatus.FAILED: Failed, RunStatus.TIMED_OUT: TimedOut, RunStatus.REFUSED: Refused}


def run_ended(job_id: int, product: str, status: RunStatus, reason: str | None
              ) -> ProductEvent:
    """The event of a run that ended without training (failed, timed out, refused; a
    cancelled run is announced as failed with its reason)."""
    return ENDS.get(status, Failed)(job_id=job_id, product=product, reason=reason)
