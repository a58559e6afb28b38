"""Model families behind one interface (`ForecastModel`), found by name through an
explicit map (`registry.FAMILY_CLASSES`)."""

from __future__ import annotations

from ovencast.forecasting.families.base import FitContext, ForecastModel
from ovencast.forecasting.families.registry import FAMILY_CLASSES, load_model, model_class

__all__ = ["FAMILY_CLASSES", "FitContext", "ForecastModel", "load_model", "model_class"]
