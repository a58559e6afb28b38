"""The tenant stage's global LightGBM boosters as data: one booster per training cut-off
(LightGBM's text format, never pickle), the product category order they were trained
with, and what they cost. `lightgbm_global` trains and reads them; `base.FitContext`
carries them to a product's fit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

LIGHTGBM = "lightgbm"
LEGACY_SALES_FEATURES = ("lag_28", "lag_35", "lag_42", "lag_49", "lag_56", "lag_364",
                         "mean_7", "mean_28", "mean_91", "same_weekday_mean",
                         "last_year_mean")
"""The sales features of artifacts stored before they held their feature list."""


@dataclass(frozen=True)
class GlobalFits:
    """The tenant's boosters (ISO cut-off date -> LightGBM model text), the products in
    category order, the regressor columns and sales features they read, and the seconds
    they took to train."""

    products: tuple[str, ...]
    regressors: tuple[str, ...]
    boosters: dict[str, str]
    seconds: float
    sales_features: tuple[str, ...]

    def to_bytes(self) -> bytes:
        return json.dumps({"products": list(self.products),
                           "regressors": list(self.regressors),
                           "sales_features": list(self.sales_features),
                           "boosters": dict(self.boosters),
                           "seconds": self.seconds}).encode()

    @classmethod
    def from_bytes(cls, payload: bytes) -> GlobalFits:
        data = json.loads(payload)
        return cls(products=tuple(data["products"]), regressors=tuple(data["regressors"]),
                   boosters=dict(data["boosters"]), seconds=float(data["seconds"]),
                   sales_features=tuple(data.get("sales_features", LEGACY_SALES_FEATURES)))

    def summary(self) -> dict[str, Any]:
        return {"family": LIGHTGBM, "products": len(self.products),
                "cutoffs": sorted(self.boosters), "seconds": round(self.seconds, 3)}

    def booster_for(self, product: str, regressors: tuple[str, ...], cutoff: str
                    ) -> str | None:
        """The booster text trained up to `cutoff` (ISO date) that a model of `product`
        reading `regressors` can adopt; None when there is none."""
        if product not in self.products or tuple(self.regressors) != tuple(regressors):
            return None
        return self.boosters.get(cutoff)
