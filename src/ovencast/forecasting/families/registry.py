"""Model families by name: an explicit map from each family's name to the class that
implements it (`module:Class`), imported when the family is first used. Adding a family
means adding a line here, never relying on an import's side effect."""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from typing import Any

from ovencast.forecasting.families.base import ARTIFACT_FORMAT_VERSION, ForecastModel, StoredLoader

_PACKAGE = "ovencast.forecasting.families"
FAMILY_CLASSES: dict[str, str] = {
    "seasonal_naive": f"{_PACKAGE}.seasonal_naive:SeasonalNaive",
    "lightgbm": f"{_PACKAGE}.lightgbm_global:LightGBMModel",
    "prophet": f"{_PACKAGE}.prophet:ProphetModel",
    "auto_ets": f"{_PACKAGE}.statistical:AutoETSModel",
    "mstl": f"{_PACKAGE}.statistical:MSTLModel",
    "auto_arima": f"{_PACKAGE}.statistical:AutoARIMAModel",
    "croston": f"{_PACKAGE}.intermittent:CrostonModel",
    "tsb": f"{_PACKAGE}.intermittent:TSBModel",
    "adida": f"{_PACKAGE}.intermittent:ADIDAModel",
    "imapa": f"{_PACKAGE}.intermittent:IMAPAModel",
    "ensemble": f"{_PACKAGE}.ensemble:EnsembleModel",
}


def model_class(family: str) -> type[ForecastModel]:
    """The class of `family`; ValueError naming the known families for an unknown one."""
    try:
        target = FAMILY_CLASSES[family]
    except KeyError:
        known = ", ".join(sorted(FAMILY_CLASSES))
        raise ValueError(f"unknown model family {family!r} (known: {known})") from None
    module, _, name = target.partition(":")
    cls: Any = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, ForecastModel)
            and cls.family == family):
        raise TypeError(f"{target} is not the ForecastModel of family {family!r}")
    return cls


def load_model(payload: bytes, *, stored: StoredLoader | None = None) -> ForecastModel:
    """A fitted model from its artifact bytes (`ForecastModel.to_bytes`); `stored` loads
    the artifacts it refers to (ValueError when it refers to one and there is none)."""
    model = restore_model(json.loads(payload))
    model._attach_stored(stored)
    return model


def restore_model(envelope: Mapping[str, Any]) -> ForecastModel:
    """A fitted model from its parsed artifact envelope, not yet attached to the
    artifacts it may refer to (`load_model` attaches them; an ensemble its members)."""
    if envelope.get("format_version") != ARTIFACT_FORMAT_VERSION:
        raise ValueError(f"unsupported artifact format {envelope.get('format_version')!r}")
    cls = model_class(envelope["family"])
    model = cls(regressors=envelope["regressors"], params=envelope["params"])
    model._restore(envelope["state"])
    model.fitted = True
    return model
