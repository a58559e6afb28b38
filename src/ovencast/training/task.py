"""What one product's training needs, and what it reports back. Both cross process
boundaries (pickled), so they hold plain values and frames only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ovencast.jobs.states import RunStatus
from ovencast.settings import Settings


@dataclass(frozen=True, repr=False)
class ProductTask:
    """One product's training. Its repr is a summary, never the frames and boosters it
    holds (docs/decisions/005-worker-start-up.md)."""

    settings: Settings
    job_id: int
    run_id: int
    tenant_id: int
    tenant_name: str
    product: str
    product_class: str
    history: pd.DataFrame  # see ovencast.forecasting.frame
    regressors: tuple[str, ...]
    families: tuple[str, ...]
    country: str | None
    subdivision: str | None
    # The tenant stage's global models (GlobalFits.to_bytes()), None when the job's model
    # choice uses none; or, in its place, where the job stored them: (artifact key,
    # sha256), loaded once per process (`process_state.stored_global_fits`): both shapes'
    # tasks name them. A chain's payload is tens of MB: carried by every task, it went
    # through a pipe once per product (decisions 012 and 023).
    global_fits: bytes | None = None
    global_fits_key: tuple[str, str] | None = None

    def __repr__(self) -> str:
        return (f"ProductTask(job_id={self.job_id}, run_id={self.run_id}, "
                f"tenant={self.tenant_name!r}, product={self.product!r}, "
                f"rows={len(self.history)}, families={self.families!r})")


@dataclass(frozen=True)
class ProductOutcome:
    product: str
    run_id: int
    status: RunStatus  # trained, failed or timed_out
    reason: str | None = None
    family: str | None = None
    version: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    baseline_metrics: dict[str, Any] = field(default_factory=dict)
    duration_s: float | None = None
    # Peak resident memory of the worker process so far (it may have trained others).
    peak_rss_mb: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # True when the parent wrote this outcome because the worker could not (killed, died).
    reported_by_parent: bool = False


def time_limit_reason(settings: Settings) -> str:
    """Why a product that ran past MAX_TRAINING_TIME_MINUTES was stopped."""
    return (f"stopped after MAX_TRAINING_TIME_MINUTES={settings.max_training_time_minutes:g} "
            f"({settings.max_training_time_seconds:.0f} s)")
