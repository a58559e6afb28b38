"""The interface every model family implements.

Contract:
- `fit(history, context=...)` gets one product's history frame (see
  `ovencast.forecasting.frame`) and, explicitly, what the fit may use beyond it
  (`FitContext`: the product's name and the tenant's global models). Rows with `closed`
  set are removed before `_fit` sees them: closed days are known in advance and forecast
  as 0 by `predict`, so no family has to model them.
- `predict(future)` returns one non-negative float per row of `future`, in row order, and
  exactly 0 on rows with `closed` set.
- `regressors` names the regressor columns the model reads; `predict` needs exactly those
  in `future` (plus `date` and `closed`), nothing else.
- `to_bytes()` / `registry.load_model(bytes, stored=...)` round-trip the fitted model
  through JSON. Never pickle: artifacts are data, not code. An artifact may refer to
  another stored artifact by key and SHA-256 instead of holding it (the global LightGBM's
  shared boosters); `load_model` hands such a model a `StoredLoader` (`_attach_stored`),
  which loads and verifies it.

Families are found by name through `registry.FAMILY_CLASSES`, an explicit map.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self

import numpy as np
import pandas as pd

from ovencast.forecasting.families.global_fits import GlobalFits
from ovencast.forecasting.frame import CLOSED, DATE

ARTIFACT_FORMAT_VERSION = 1

StoredLoader = Callable[[str, str], bytes]
"""(key, sha256) -> the stored artifact's bytes, checksum verified (`ModelStore.load`)."""


@dataclass(frozen=True)
class FitContext:
    """What a fit may use besides the history it is given, passed by the caller: the
    product's name and the tenant's global models trained for this job by the tenant
    stage (`forecasting/global_stage.py`). A family that needs neither ignores it; the
    global LightGBM adopts the booster of its cut-off instead of training alone."""

    product: str = ""
    global_fits: GlobalFits | None = None


NO_CONTEXT = FitContext()


class BacktestCut(Protocol):
    """One backtest window as `ForecastModel.backtest_forecasts` reads it: the rows a
    model is fitted on, and the rows it forecasts (`selection.BacktestWindow`)."""

    @property
    def train(self) -> pd.DataFrame: ...

    @property
    def test(self) -> pd.DataFrame: ...


class ForecastModel(ABC):
    family: ClassVar[str]

    def __init__(
        self,
        *,
        regressors: Sequence[str] = (),
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.regressors: tuple[str, ...] = tuple(regressors)
        self.params: dict[str, Any] = dict(params or {})
        self.fitted = False

    # -- public API -------------------------------------------------------------------
    def fit(self, history: pd.DataFrame, *, context: FitContext = NO_CONTEXT) -> Self:
        open_days = history.loc[~history[CLOSED].astype(bool)].sort_values(DATE)
        if open_days.empty:
            raise ValueError("no open days to fit on")
        missing = [c for c in self.regressors if c not in open_days.columns]
        if missing:
            raise ValueError(f"history lacks regressor columns {missing}")
        self._fit(open_days.reset_index(drop=True), context)
        self.fitted = True
        return self

    def predict(self, future: pd.DataFrame) -> np.ndarray:
        if not self.fitted:
            raise RuntimeError(f"{self.family} model is not fitted")
        missing = [c for c in self.regressors if c not in future.columns]
        if missing:
            raise ValueError(f"future frame lacks regressor columns {missing}")
        future = future.reset_index(drop=True)
        return self._finished(self._predict(future), future)

    def _finished(self, raw: np.ndarray, future: pd.DataFrame) -> np.ndarray:
        """`raw` forecasts of `future`'s rows as `predict` returns them: finite, >= 0,
        exactly 0 on closed days."""
        yhat = np.asarray(raw, dtype=float)
        if yhat.shape != (len(future),):
            raise RuntimeError(f"{self.family} returned {yhat.shape}, expected ({len(future)},)")
        clipped: np.ndarray = np.clip(np.nan_to_num(yhat, nan=0.0, posinf=0.0, neginf=0.0),
                                      0.0, None)
        clipped[future[CLOSED].astype(bool).to_numpy()] = 0.0
        return clipped

    def backtest_forecasts(self, windows: Sequence[BacktestCut], *,
                           context: FitContext = NO_CONTEXT) -> list[np.ndarray | None]:
        """For each of `windows`: what `fit(window.train, context=context)` then
        `predict(window.test)` would return, computed at once for all of them; None
        where this family cannot (the caller then fits and predicts that window). Most
        families have nothing to share between windows: None for every one. A family
        that overrides this must give what its fit and predict give (tested for the
        global LightGBM, whose boosters the tenant stage has trained already)."""
        del context
        return [None] * len(windows)

    def to_bytes(self) -> bytes:
        if not self.fitted:
            raise RuntimeError("cannot serialise an unfitted model")
        envelope = {
            "format_version": ARTIFACT_FORMAT_VERSION,
            "family": self.family,
            "regressors": list(self.regressors),
            "params": self.params,
            "state": self._state(),
        }
        return json.dumps(envelope, separators=(",", ":"), default=_json_default).encode()

    # -- what a family implements -------------------------------------------------------
    @abstractmethod
    def _fit(self, history: pd.DataFrame, context: FitContext) -> None:
        """Fit on open days only (sorted by date, index 0..n-1)."""

    @abstractmethod
    def _predict(self, future: pd.DataFrame) -> np.ndarray:
        """Raw predictions for every row of `future`; clipping and closed days are done
        by `predict`."""

    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """JSON-serialisable fitted state."""

    @abstractmethod
    def _restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of `_state`."""

    def _attach_stored(self, loader: StoredLoader | None) -> None:
        """After `_restore`: load what the state refers to in the store instead of holding
        it; ValueError when it refers to something and `loader` is None. Most families
        hold everything: nothing to do."""
        del loader

    def start_from(self, fitted: ForecastModel) -> Self:
        """Before `fit`: start the optimiser where `fitted`, the same spec fitted on a
        shorter history, ended (the refit after a holdout). Most families have no
        optimiser to start: nothing to do."""
        del fitted
        return self


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
