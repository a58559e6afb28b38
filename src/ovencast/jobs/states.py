"""The states of a training job and of its per-product runs, and the steps of a product's
training: one `StrEnum` each, shared by the tables (stored as their values, with a CHECK
constraint), the services, the API schemas (enums in OpenAPI), the CLI and the progress
events (`events/progress.py`)."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """queued -> running -> succeeded (every product trained) | partial (some did) |
    failed (none did, or the job could not start) | cancelled (by request)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self in TERMINAL_JOB


class RunStatus(StrEnum):
    """pending -> running -> trained | failed | timed_out | cancelled (its job was
    cancelled before it started); refused: the data rules refused the product before
    training (too few days, too many zeros...). Every end state but `trained` carries a
    reason."""

    PENDING = "pending"
    RUNNING = "running"
    TRAINED = "trained"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    REFUSED = "refused"

    @property
    def ended(self) -> bool:
        return self in TERMINAL_RUN


class Step(StrEnum):
    """What a product's training is doing, as its progress events say (its end states
    are `RunStatus` values)."""

    QUEUED = "queued"
    STARTED = "started"
    BACKTEST = "backtest"
    TRIAL = "trial"
    FAMILY_FAILED = "family_failed"
    FINISHED = "finished"


TERMINAL_JOB = frozenset({JobStatus.SUCCEEDED, JobStatus.PARTIAL, JobStatus.FAILED,
                          JobStatus.CANCELLED})
TERMINAL_RUN = frozenset({RunStatus.TRAINED, RunStatus.FAILED, RunStatus.TIMED_OUT,
                          RunStatus.CANCELLED, RunStatus.REFUSED})
