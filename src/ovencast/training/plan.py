"""What one product's fit gets and gives back: the plan (families, class, regressors,
time limit, the tenant's global models), the previous Prophet version for warm starts,
the result, and the progress events the fit emits. Plain values: they cross process
boundaries."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ovencast.events.progress import Backtest, EventSink, FamilyFailed, Trial
from ovencast.forecasting.evaluation import Evaluation
from ovencast.forecasting.families import ForecastModel
from ovencast.forecasting.families.base import NO_CONTEXT, FitContext
from ovencast.forecasting.holdout import HoldoutSplit
from ovencast.forecasting.selection import BacktestPlan, CandidatePolicy


@dataclass(frozen=True)
class PriorFit:
    """The product's previous Prophet version: cached best parameters (the
    hyper-parameter cache), its validation MAPE, and the fitted model for warm starts."""

    params: Mapping[str, Any]
    best_mape: float | None
    model: ForecastModel | None


@dataclass(frozen=True)
class FitPlan:
    families: tuple[str, ...]  # ("auto",), ("prophet",) or candidate names
    product_class: str
    country: str | None
    subdivision: str | None
    regressors: tuple[str, ...]
    time_limit_s: float
    holdout: HoldoutSplit = field(default_factory=HoldoutSplit)
    backtest: BacktestPlan = field(default_factory=BacktestPlan)
    candidates: CandidatePolicy = field(default_factory=CandidatePolicy)
    seed: int = 0
    # The product's name and the tenant stage's global boosters
    # (`forecasting.global_stage`), passed to every fit: the "lightgbm" candidate adopts
    # them instead of training alone.
    context: FitContext = NO_CONTEXT
    # The job the fit belongs to, for its progress events.
    job_id: int = 0


@dataclass(frozen=True)
class FitResult:
    best: Evaluation
    leaderboard: list[dict[str, Any]]
    details: dict[str, Any]


@dataclass(frozen=True)
class Progress:
    """The fit's progress events, tagged with its job and product."""

    plan: FitPlan
    sink: EventSink | None

    def backtest(self, family: str, n: int, total: int) -> None:
        if self.sink is not None:
            self.sink(Backtest(job_id=self.plan.job_id, product=self.plan.context.product,
                               family=family, n=n, total=total))

    def trial(self, n: int, total: int, mape: float | None) -> None:
        if self.sink is not None:
            self.sink(Trial(job_id=self.plan.job_id, product=self.plan.context.product,
                            n=n, total=total, mape=json_number(mape)))

    def family_failed(self, family: str, reason: str) -> None:
        if self.sink is not None:
            self.sink(FamilyFailed(job_id=self.plan.job_id,
                                   product=self.plan.context.product, family=family,
                                   reason=reason))


def json_number(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
