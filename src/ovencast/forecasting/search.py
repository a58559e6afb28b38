"""Optuna hyper-parameter search for the Prophet family, one product at a time.

Contract of `search_prophet(history, spec, ...)`:

- The last `spec.validation_days` calendar days of `history` are the validation window;
  every trial fits a `ProphetModel` on the days before it and is scored on the window's
  open days. The objective is the MAPE on days with non-zero sales (a fraction, see
  `ovencast.forecasting.metrics`), or the MAE on the scored days when the window has no
  non-zero day (`SearchResult.objective` says which); MAPE, MAE and WAPE are recorded per
  trial.
- Exactly `spec.n_trials` trials run, unless the early stop below ends the search after
  the first one. Trials run one after another in this process.
- Every trial's optimiser has a hard time limit, `spec.trial_timeout_s`: the cmdstan
  process is terminated when it passes (see `ProphetModel.fit_timeout_s`), the trial is
  recorded as "pruned" with the reason and the search goes on. A trial that fails for
  any other reason is recorded as "error" with the error. Neither stops the search.
- Reproducible: the sampler is `TPESampler(seed=spec.seed)` and fits are deterministic,
  so the same history and spec give the same trials, parameters and scores.
- Warm start: `spec.previous_best_params` is enqueued as trial 0. With
  `spec.previous_best_mape` and `spec.stop_if_within` set, the search stops after trial 0
  when its MAPE <= previous_best_mape * (1 + stop_if_within) (never under the MAE
  objective: it has no MAPE to compare). Separately,
  `warm_start_from` (a fitted ProphetModel, e.g. the product's current model) starts every
  trial's optimiser from that model's parameters.
- Uncertainty sampling is off in trials (`uncertainty_samples=0`).
- Raises ValueError when the history cannot be split (nothing to train on, or no open day
  to score in the validation window) and `SearchFailed` when no trial completes.

The original approach (`--models prophet`, docs/decisions/007-faithful-original.md) runs
this search on all of a product's training data with the trial budget of
`classes.SearchClassRule`, fits its closed days as zero sales
(`closed_days_as_zero_sales`, `opening_hours` as a regressor), uses every regressor and no
holiday calendar object, and refits the best parameters on all the training data.

The returned `SearchResult.best_params` holds only the searched keys (`SEARCH_SPACE`);
fit the final model with `{**base_params, **result.best_params}`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import optuna
import pandas as pd

from ovencast.forecasting.families.prophet import FitTimeout, ProphetModel
from ovencast.forecasting.frame import CLOSED, DATE, Y
from ovencast.forecasting.metrics import compute_metrics

# Optuna logs every trial at INFO; progress goes through `on_trial` instead.
optuna.logging.set_verbosity(optuna.logging.WARNING)

DEFAULT_VALIDATION_DAYS = 28
"""Validation window at the end of the training data, in calendar days."""
DEFAULT_TRIAL_TIMEOUT_S = 30.0
"""Hard limit on one trial's optimiser; a Prophet fit of 5 years of daily data takes < 1 s."""

SEARCH_SPACE: Mapping[str, tuple[float, float] | tuple[str, ...]] = {
    "changepoint_prior_scale": (0.001, 0.5),
    "seasonality_prior_scale": (0.01, 10.0),
    "holidays_prior_scale": (0.01, 10.0),
    "seasonality_mode": ("additive", "multiplicative"),
}
"""Searched Prophet parameters: float ranges are sampled log-uniformly, tuples of strings
are categorical."""

class TrialState(StrEnum):
    COMPLETE = "complete"
    PRUNED = "pruned"
    ERROR = "error"
Objective = Literal["mape", "mae"]
TrialCallback = Callable[[int, int, float | None], None]
"""`on_trial(n_done, n_total, value)`, called after every trial; value is the trial's
objective (MAPE, or MAE where the validation window has no non-zero day), None when the
trial did not complete. n_total is the planned number of trials."""


class SearchFailed(RuntimeError):
    """No trial of a search completed; `trials` says why each one did not."""

    def __init__(self, message: str, trials: tuple[TrialRecord, ...]) -> None:
        super().__init__(message)
        self.trials = trials


@dataclass(frozen=True, slots=True)
class SearchSpec:
    """What one product's search does. `n_trials` is the trial budget of its class
    (`ovencast.forecasting.classes.trials_for`)."""

    n_trials: int
    seed: int = 0
    validation_days: int = DEFAULT_VALIDATION_DAYS
    trial_timeout_s: float = DEFAULT_TRIAL_TIMEOUT_S
    previous_best_params: Mapping[str, Any] | None = None
    previous_best_mape: float | None = None
    stop_if_within: float | None = None

    def __post_init__(self) -> None:
        if self.n_trials < 1:
            raise ValueError("n_trials must be >= 1")
        if self.validation_days < 1:
            raise ValueError("validation_days must be >= 1")
        if not self.trial_timeout_s > 0:
            raise ValueError("trial_timeout_s must be positive")
        if self.stop_if_within is not None:
            if self.stop_if_within < 0:
                raise ValueError("stop_if_within must be >= 0")
            if self.previous_best_params is None or self.previous_best_mape is None:
                raise ValueError("stop_if_within needs previous_best_params and previous_best_mape")

    def should_stop(self, first_trial_mape: float | None) -> bool:
        """Early-stop rule, applied after the enqueued trial 0 only."""
        if self.stop_if_within is None or self.previous_best_mape is None:
            return False
        if first_trial_mape is None or math.isnan(first_trial_mape):
            return False
        return first_trial_mape <= self.previous_best_mape * (1.0 + self.stop_if_within)


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """One trial. `reason` says why a pruned/failed trial did not complete. A score the
    window cannot give (MAPE without a non-zero day, WAPE without sales) is None."""

    number: int
    params: Mapping[str, Any]
    state: TrialState
    mape: float | None
    wape: float | None
    duration_s: float
    enqueued: bool
    reason: str | None = None
    mae: float | None = None

    def value(self, objective: Objective) -> float | None:
        """The trial's score under `objective`."""
        return self.mape if objective == "mape" else self.mae

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "params": dict(self.params),
            "state": self.state,
            "mape": self.mape,
            "mae": self.mae,
            "wape": self.wape,
            "duration_s": self.duration_s,
            "enqueued": self.enqueued,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Outcome of one product's search. `n_trials` counts the trials that ran (all states),
    `n_failed` those that did not complete (pruned or failed). `objective` is what the
    best trial minimised: "mape", or "mae" when the validation window has no non-zero day
    (`best_mape` is then NaN)."""

    best_params: Mapping[str, Any]
    best_mape: float
    best_wape: float
    n_trials: int
    n_failed: int
    trials: tuple[TrialRecord, ...] = field(default=())
    stopped_early: bool = False
    objective: Objective = "mape"
    best_mae: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (no NaN: a missing score is None)."""
        return {
            "best_params": dict(self.best_params),
            "objective": self.objective,
            "best_mape": _json_float(self.best_mape),
            "best_mae": _json_float(self.best_mae),
            "best_wape": _json_float(self.best_wape),
            "n_trials": self.n_trials,
            "n_failed": self.n_failed,
            "trials": [t.to_dict() for t in self.trials],
            "stopped_early": self.stopped_early,
        }


def search_prophet(
    history: pd.DataFrame,
    spec: SearchSpec,
    *,
    regressors: Sequence[str] = (),
    base_params: Mapping[str, Any] | None = None,
    on_trial: TrialCallback | None = None,
    warm_start_from: ProphetModel | None = None,
) -> SearchResult:
    """Search Prophet hyper-parameters for one product (see the module docstring).

    `history` is the product's history frame (`ovencast.forecasting.frame`), `regressors`
    the columns the model reads, `base_params` the fixed Prophet params (e.g. country and
    subdivision) that every trial shares; searched keys in it are overridden per trial.
    """
    train, valid = split_validation(history, spec.validation_days)
    scored = valid.loc[~valid[CLOSED].astype(bool)].reset_index(drop=True)
    future = scored.drop(columns=[Y])
    actual = scored[Y].to_numpy(dtype=float)
    goal: Objective = "mape" if np.any(actual != 0) else "mae"
    fixed = dict(base_params or {})
    enqueued = spec.previous_best_params is not None

    sampler = optuna.samplers.TPESampler(seed=spec.seed)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    if spec.previous_best_params is not None:
        study.enqueue_trial(
            {k: v for k, v in spec.previous_best_params.items() if k in SEARCH_SPACE}
        )

    records: list[TrialRecord] = []
    stopped_early = False

    def objective(trial: optuna.Trial) -> float:
        record = _run_trial(trial, regressors, fixed, spec, warm_start_from, train, future,
                            actual, enqueued=enqueued and trial.number == 0)
        records.append(record)
        if record.state is TrialState.PRUNED:
            raise optuna.TrialPruned(record.reason)
        if record.state is TrialState.ERROR:
            return math.nan  # Optuna records a NaN objective as a failed trial
        value = record.value(goal)
        assert value is not None
        return value

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal stopped_early
        record = records[-1]
        if on_trial is not None:
            on_trial(len(records), spec.n_trials, record.value(goal))
        if enqueued and trial.number == 0 and spec.n_trials > 1 and spec.should_stop(record.mape):
            stopped_early = True
            study.stop()

    study.optimize(objective, n_trials=spec.n_trials, callbacks=[after_trial])
    return _result(tuple(records), goal, stopped_early=stopped_early)


def _run_trial(trial: optuna.Trial, regressors: Sequence[str], fixed: Mapping[str, Any],
               spec: SearchSpec, warm_start_from: ProphetModel | None, train: pd.DataFrame,
               future: pd.DataFrame, actual: np.ndarray, *, enqueued: bool) -> TrialRecord:
    """Fit one trial's parameters on `train` and score them on the validation window."""
    params = _suggest(trial)
    started = time.monotonic()
    state = TrialState.COMPLETE
    mape = mae = wape = None
    reason: str | None = None
    try:
        model = ProphetModel(
            regressors=regressors,
            params={**fixed, **params, "uncertainty_samples": 0},
            fit_timeout_s=spec.trial_timeout_s,
            warm_start_from=warm_start_from,
        ).fit(train)
        predicted = model.predict(future)
        metrics = compute_metrics(actual, predicted, train_history=train)
        mape, wape = metrics.mape, metrics.wape
        mae = float(np.mean(np.abs(actual - predicted)))
    except FitTimeout as exc:
        state, reason = TrialState.PRUNED, f"timeout: {exc}"
    except Exception as exc:  # a trial's error is recorded, never ends the search
        state, reason = TrialState.ERROR, f"{type(exc).__name__}: {exc}"
    complete = state is TrialState.COMPLETE
    return TrialRecord(
        number=trial.number, params=params, state=state,
        mape=_finite_or_none(mape) if complete else None,
        wape=_finite_or_none(wape) if complete else None,
        duration_s=time.monotonic() - started, enqueued=enqueued, reason=reason,
        mae=_finite_or_none(mae) if complete else None)


def _result(
    trials: tuple[TrialRecord, ...], goal: Objective, *, stopped_early: bool
) -> SearchResult:
    """The search's outcome: its best completed trial under `goal`. Raises SearchFailed
    when no trial completed."""
    completed = [t for t in trials if t.state is TrialState.COMPLETE]
    if not completed:
        reasons = "; ".join(f"trial {t.number}: {t.reason}" for t in trials)
        raise SearchFailed(f"no prophet trial completed ({reasons})", trials)
    # Ties go to the earliest trial, so the enqueued warm-start params win a tie.
    best = min(completed, key=lambda t: (t.value(goal), t.number))
    return SearchResult(
        best_params=dict(best.params),
        best_mape=_nan_if_none(best.mape),
        best_wape=_nan_if_none(best.wape),
        n_trials=len(trials),
        n_failed=len(trials) - len(completed),
        trials=trials,
        stopped_early=stopped_early,
        objective=goal,
        best_mae=_nan_if_none(best.mae),
    )


def split_validation(
    history: pd.DataFrame, validation_days: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a history frame into (train, validation): validation is the rows of the last
    `validation_days` calendar days up to the last date, train everything before.

    Raises ValueError when train has no open day or validation has no open day to score.
    A validation window without sales is allowed: the search then minimises the MAE.
    """
    frame = history.sort_values(DATE).reset_index(drop=True)
    if frame.empty:
        raise ValueError("empty history")
    cutoff = frame[DATE].iloc[-1] - pd.Timedelta(days=validation_days)
    train = frame.loc[frame[DATE] <= cutoff].reset_index(drop=True)
    valid = frame.loc[frame[DATE] > cutoff].reset_index(drop=True)
    if not (~train[CLOSED].astype(bool)).any():
        raise ValueError(
            f"no open days before the {validation_days}-day validation window to train on"
        )
    if valid[CLOSED].astype(bool).all():
        raise ValueError(f"no open day to score in the last {validation_days} days")
    return train, valid


def _suggest(trial: optuna.Trial) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, space in SEARCH_SPACE.items():
        if isinstance(space[0], str):
            params[name] = trial.suggest_categorical(name, [str(v) for v in space])
        else:
            low, high = float(space[0]), float(space[1])
            params[name] = trial.suggest_float(name, low, high, log=True)
    return params


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
