"""The promotion gate: whether a freshly trained version replaces the active one.

Both are scored on the same windows of the NEW data: the last `PromotionPolicy.windows`
28-day windows of the history the new version was trained on (the last of them is its
holdout), each model spec (family, params, regressors) fitted on every row before a
window, as the backtest of `forecasting/selection.py` does. The active version is not
replayed from its artifact (it ends where its data ended) but refitted there, so both
see exactly the same information. Scores pool the windows' observed open days (WAPE).

The new version becomes active when its WAPE is at most the active one's times
(1 + PROMOTION_TOLERANCE); otherwise it is kept as a challenger, with the comparison
stored on the version (`model_versions.promotion`). Why this and not the holdout WAPE
alone: docs/decisions/008-model-governance.md.

The comparison runs after the fit, outside any transaction, in a thread of the process
that trains the product (the embedded pool's worker process, or the service worker).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ovencast.db.session import unit_of_work
from ovencast.forecasting.families.base import FitContext
from ovencast.forecasting.families.registry import model_class
from ovencast.forecasting.frame import CLOSED, DATE, ZERO_SALES, Y, closed_days_as_zero_sales
from ovencast.forecasting.selection import BacktestPlan, BacktestWindow
from ovencast.jobs import repository as jobs_repository
from ovencast.jobs.states import JobStatus
from ovencast.models import repository as models_repository
from ovencast.models.states import ActivationPolicy, Verdict
from ovencast.observability.logs import get_logger
from ovencast.training.plan import FitPlan, FitResult, json_number
from ovencast.training.task import ProductTask

log = get_logger(__name__)

DEFAULT_TOLERANCE = 0.02
DEFAULT_WINDOWS = 3
WINDOW_DAYS = 28


@dataclass(frozen=True, slots=True)
class PromotionPolicy:
    """How a new version is compared with the active one; `promotes` is the one rule."""

    tolerance: float = DEFAULT_TOLERANCE
    windows: int = DEFAULT_WINDOWS
    window_days: int = WINDOW_DAYS

    def __post_init__(self) -> None:
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"tolerance must be in [0, 1), got {self.tolerance}")
        if self.windows < 1 or self.window_days < 1:
            raise ValueError("windows and window_days must be >= 1")

    def plan(self) -> BacktestPlan:
        return BacktestPlan(n_windows=self.windows, horizon_days=self.window_days,
                            seasonal=False)

    def promotes(self, new_wape: float, active_wape: float) -> bool:
        """Not worse than the active version beyond the tolerance. An active WAPE that
        is NaN (no sales in the windows) cannot be beaten or lost to: promoted; a NaN
        new WAPE against a finite active one: not."""
        if math.isnan(active_wape):
            return True
        if math.isnan(new_wape):
            return False
        return new_wape <= active_wape * (1.0 + self.tolerance)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What to refit: a version's family, params and regressors, and whether it sees
    closed days as zero-sales days (the original approach, training/original.py)."""

    family: str
    params: Mapping[str, Any]
    regressors: tuple[str, ...]
    zero_sales_closed_days: bool = False

    @classmethod
    def of(cls, family: str, params: Mapping[str, Any], regressors: Sequence[str],
           details: Mapping[str, Any] | None) -> ModelSpec:
        return cls(family, dict(params), tuple(regressors),
                   (details or {}).get("closed_days") == ZERO_SALES)

    def forecast(self, window: BacktestWindow, context: FitContext) -> np.ndarray:
        """Fitted on the rows before the window, its forecast of the window's rows."""
        train, test = window.train, window.test
        if self.zero_sales_closed_days:
            train, test = closed_days_as_zero_sales(train), closed_days_as_zero_sales(test)
        model = model_class(self.family)(regressors=self.regressors, params=self.params)
        model.fit(train, context=context)
        return model.predict(test[[DATE, CLOSED, *self.regressors]])


@dataclass(frozen=True, slots=True)
class Comparison:
    """Both specs on the same windows: pooled WAPE and per window, open days scored."""

    windows: tuple[tuple[str, str], ...]
    new_wape: float
    active_wape: float
    new_window_wapes: tuple[float, ...]
    active_window_wapes: tuple[float, ...]
    n_days: int

    def to_dict(self) -> dict[str, Any]:
        return {"windows": [list(w) for w in self.windows],
                "new_wape": json_number(self.new_wape),
                "active_wape": json_number(self.active_wape),
                "new_window_wapes": [json_number(w) for w in self.new_window_wapes],
                "active_window_wapes": [json_number(w) for w in self.active_window_wapes],
                "n_days": self.n_days}


class SpecFailed(RuntimeError):
    """One side of the comparison could not be fitted; `side` is "new" or "active"."""

    def __init__(self, side: str, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.side = side


def compare(history: pd.DataFrame, new: ModelSpec, active: ModelSpec,
            policy: PromotionPolicy, *, context: FitContext) -> Comparison:
    """Score both specs on the policy's windows of `history` (the new data). Raises
    ValueError when there is no window, `SpecFailed` when a spec cannot be fitted."""
    history = history.sort_values(DATE, kind="stable").reset_index(drop=True)
    windows = policy.plan().windows(history)
    if not windows:
        raise ValueError(f"no {policy.window_days}-day window to compare on")
    pooled: dict[str, list[np.ndarray]] = {"new": [], "active": []}
    per_window: dict[str, list[float]] = {"new": [], "active": []}
    actual: list[np.ndarray] = []
    for window in windows:
        is_open = ~window.test[CLOSED].to_numpy(dtype=bool)
        y = window.test[Y].to_numpy(dtype=float)[is_open]
        actual.append(y)
        for side, spec in (("new", new), ("active", active)):
            try:
                forecast = spec.forecast(window, context)[is_open]
            except Exception as exc:
                raise SpecFailed(side, exc) from exc
            pooled[side].append(forecast)
            per_window[side].append(_wape(y, forecast))
    y_all = np.concatenate(actual)
    return Comparison(
        windows=tuple((w.start.date().isoformat(), w.end.date().isoformat())
                      for w in windows),
        new_wape=_wape(y_all, np.concatenate(pooled["new"])),
        active_wape=_wape(y_all, np.concatenate(pooled["active"])),
        new_window_wapes=tuple(per_window["new"]),
        active_window_wapes=tuple(per_window["active"]), n_days=int(y_all.size))


def _wape(actual: np.ndarray, forecast: np.ndarray) -> float:
    total = float(np.sum(np.abs(actual)))
    return float(np.sum(np.abs(actual - forecast))) / total if total > 0 else math.nan


@dataclass(frozen=True, slots=True)
class Promotion:
    """The gate's decision about one new version, stored with it."""

    verdict: Verdict
    policy: ActivationPolicy
    activate: bool
    challenger: bool
    reason: str
    active_version: int | None = None
    comparison: Comparison | None = None
    tolerance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict.value, "policy": self.policy.value,
                "reason": self.reason, "active_version": self.active_version,
                "tolerance": self.tolerance,
                "comparison": self.comparison.to_dict() if self.comparison else None}

    def as_cancelled(self) -> Promotion:
        return Promotion(Verdict.CANCELLED_JOB, self.policy, activate=False,
                         challenger=False, reason="its job was cancelled: kept, not active",
                         active_version=self.active_version, comparison=self.comparison,
                         tolerance=self.tolerance)


def judge(comparison: Comparison, policy: PromotionPolicy, *, active_version: int
          ) -> Promotion:
    """The verdict of `policy` on a comparison with the active version."""
    change = (comparison.new_wape / comparison.active_wape - 1.0
              if comparison.active_wape and not math.isnan(comparison.active_wape)
              else math.nan)
    numbers = (f"WAPE {comparison.new_wape:.3f} vs {comparison.active_wape:.3f} of "
               f"version {active_version} on {len(comparison.windows)} windows "
               f"({change:+.1%}, tolerance {policy.tolerance:.0%})")
    promoted = policy.promotes(comparison.new_wape, comparison.active_wape)
    return Promotion(
        Verdict.PROMOTED if promoted else Verdict.KEPT, ActivationPolicy.IF_BETTER,
        activate=promoted, challenger=not promoted,
        reason=("not worse: " if promoted else "worse, kept as challenger: ") + numbers,
        active_version=active_version, comparison=comparison, tolerance=policy.tolerance)


async def decide(task: ProductTask, sessions: async_sessionmaker[AsyncSession],
                 result: FitResult, plan: FitPlan) -> Promotion:
    """What becomes of the version `result` is about to be recorded as: the job's
    activation policy, and under `if-better` the comparison with the active version
    (computed in a thread, no transaction open meanwhile)."""
    async with unit_of_work(sessions) as session:
        job = await jobs_repository.get_job(session, task.job_id, reports=False)
        active = await models_repository.get_active(session, task.tenant_id, task.product)
        policy = job.activation if job is not None else ActivationPolicy.IF_BETTER
        cancelled = job is None or job.status is JobStatus.CANCELLED
        active_spec = None if active is None else ModelSpec.of(
            active.family, active.params, active.regressors, active.details)
        active_version = None if active is None else active.version
    if cancelled:
        return Promotion(Verdict.CANCELLED_JOB, policy, activate=False, challenger=False,
                         reason="its job was cancelled: kept, not active")
    if policy is ActivationPolicy.ALWAYS:
        return Promotion(Verdict.FORCED, policy, activate=True, challenger=False,
                         reason="activation policy 'always'", active_version=active_version)
    if policy is ActivationPolicy.NEVER:
        return Promotion(Verdict.HELD, policy, activate=False, challenger=True,
                         reason="activation policy 'never': kept as challenger",
                         active_version=active_version)
    if active_spec is None or active_version is None:
        return Promotion(Verdict.FIRST, policy, activate=True, challenger=False,
                         reason="the product's first active version")
    settings = task.settings
    gate = PromotionPolicy(tolerance=settings.promotion_tolerance,
                           windows=settings.promotion_windows)
    best = result.best
    new_spec = ModelSpec.of(best.family, best.model.params, best.model.regressors,
                            result.details)
    try:
        comparison = await asyncio.to_thread(compare, task.history, new_spec, active_spec,
                                             gate, context=plan.context)
    except SpecFailed as exc:
        if exc.side == "new":
            return Promotion(Verdict.KEPT, policy, activate=False, challenger=True,
                             reason=f"could not be compared on the new data ({exc}): kept "
                                    "as challenger", active_version=active_version)
        return _uncompared(policy, active_version, str(exc))
    except ValueError as exc:
        return _uncompared(policy, active_version, str(exc))
    decision = judge(comparison, gate, active_version=active_version)
    log.info("training.promotion.decided", job_id=task.job_id, product=task.product,
             verdict=decision.verdict, new_wape=comparison.new_wape,
             active_wape=comparison.active_wape, active_version=active_version)
    return decision


def _uncompared(policy: ActivationPolicy, active_version: int, why: str) -> Promotion:
    return Promotion(Verdict.UNCOMPARED, policy, activate=True, challenger=False,
                     reason=f"version {active_version} could not be replayed on the new "
                            f"data ({why}): replaced", active_version=active_version)
