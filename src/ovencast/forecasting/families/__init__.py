"""Model families behind one interface (`ForecastModel`) and a registry by name."""

from __future__ import annotations

from ovencast.forecasting.families.base import (
    FAMILIES,
    ForecastModel,
    load_model,
    model_class,
    register_family,
)

__all__ = ["FAMILIES", "ForecastModel", "load_model", "model_class", "register_family"]
