"""A weighted mean of fitted member models: what automatic selection stores when a
combination of the best few families backtests better than the best one alone.

Parameters (`params`, stored in the artifact envelope):

    members   list of member specs, each {"name": str (optional, for display),
              "family": str, "params": {...}, "regressors": [...]}; at least one, no
              member of family "ensemble" (no nesting)
    weights   one positive number per member; normalised to sum 1 by the constructor
              (the normalised weights are what `params` holds and what the model uses)

`regressors` is the union of the members' regressors, in member order; a constructor's
`regressors` argument is ignored (the members' specs say what they read).

`fit` fits every member on the same history; `predict` is the weighted mean of the
members' predictions (each already non-negative and 0 on closed days, so the mean is too).

State: the members' own artifact envelopes (each member's `to_bytes()` JSON, as an
object), so `load_model` of an ensemble restores every member as `load_model` does:
no member is refitted on load, and a member family's own stored-state rules (e.g. the
statistical families' stored forecast path) hold inside an ensemble too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import pandas as pd

from ovencast.forecasting.families.base import FitContext, ForecastModel, StoredLoader
from ovencast.forecasting.families.registry import model_class, restore_model
from ovencast.forecasting.frame import CLOSED, DATE

ENSEMBLE = "ensemble"


class EnsembleModel(ForecastModel):
    family = ENSEMBLE

    def __init__(
        self,
        *,
        regressors: Sequence[str] = (),
        params: Mapping[str, Any] | None = None,
    ) -> None:
        del regressors  # the union of the members' (see the module docstring)
        members, weights = _parse(params or {})
        union = tuple(dict.fromkeys(r for m in members for r in m["regressors"]))
        super().__init__(regressors=union, params={"members": members, "weights": weights})
        self._members: list[ForecastModel] = []
        self._start: list[ForecastModel] | None = None

    # -- ForecastModel ------------------------------------------------------------------
    def _fit(self, history: pd.DataFrame, context: FitContext) -> None:
        members = [model_class(spec["family"])(regressors=spec["regressors"],
                                               params=spec["params"])
                   for spec in self.params["members"]]
        for member, fitted in zip(members, self._start or (), strict=False):
            member.start_from(fitted)
        self._members = [member.fit(history, context=context) for member in members]
        self._start = None

    def start_from(self, fitted: ForecastModel) -> Self:
        """Each member starts from its counterpart in `fitted` (the same ensemble spec)."""
        if isinstance(fitted, EnsembleModel) and fitted.params == self.params:
            self._start = fitted.members
        return self

    def _predict(self, future: pd.DataFrame) -> np.ndarray:
        total = np.zeros(len(future))
        for member, weight in zip(self._members, self.weights, strict=True):
            total += weight * member.predict(future[[DATE, CLOSED, *member.regressors]])
        return total

    def _state(self) -> dict[str, Any]:
        return {"members": [json.loads(member.to_bytes()) for member in self._members]}

    def _restore(self, state: Mapping[str, Any]) -> None:
        members = [restore_model(envelope) for envelope in state["members"]]
        if len(members) != len(self.weights):
            raise ValueError(
                f"ensemble artifact has {len(members)} members for {len(self.weights)} weights"
            )
        self._members = members

    def _attach_stored(self, loader: StoredLoader | None) -> None:
        for member in self._members:
            member._attach_stored(loader)

    # -- inspection ---------------------------------------------------------------------
    @property
    def weights(self) -> list[float]:
        return [float(w) for w in self.params["weights"]]

    @property
    def members(self) -> list[ForecastModel]:
        """The fitted members, in the order of `params["members"]`."""
        return list(self._members)


def ensemble_params(
    members: Sequence[Mapping[str, Any]], weights: Sequence[float]
) -> dict[str, Any]:
    """The `params` of an ensemble of `members` (specs as in the module docstring)."""
    parsed, normalised = _parse({"members": list(members), "weights": list(weights)})
    return {"members": parsed, "weights": normalised}


def _parse(params: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[float]]:
    unknown = set(params) - {"members", "weights"}
    if unknown:
        raise ValueError(f"unknown ensemble params {sorted(unknown)}")
    members = params.get("members")
    weights = params.get("weights")
    if not isinstance(members, list | tuple) or not members:
        raise ValueError("an ensemble needs a non-empty list of members")
    if not isinstance(weights, list | tuple) or len(weights) != len(members):
        raise ValueError("an ensemble needs one weight per member")
    parsed: list[dict[str, Any]] = []
    for spec in members:
        family = spec.get("family") if isinstance(spec, Mapping) else None
        if not isinstance(family, str):
            raise ValueError(f"ensemble member without a family: {spec!r}")
        if family == ENSEMBLE:
            raise ValueError("an ensemble cannot contain an ensemble")
        model_class(family)  # unknown family: ValueError now, not at fit time
        parsed.append({
            "name": str(spec.get("name") or family),
            "family": family,
            "params": dict(spec.get("params") or {}),
            "regressors": [str(r) for r in spec.get("regressors") or ()],
        })
    values = [float(w) for w in weights]
    if any(not math.isfinite(w) or w <= 0 for w in values):
        raise ValueError(f"ensemble weights must be positive numbers, not {list(weights)!r}")
    total = sum(values)
    return parsed, [w / total for w in values]
