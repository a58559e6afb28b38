"""The tenant stage's global LightGBM boosters as data: per training cut-off one booster of
each member (LightGBM's text format, never pickle), the product category order they were
trained with, the blend weight of the horizon-lag member, and what they cost.
`lightgbm_global` trains and reads them; `base.FitContext` carries them to a product's
fit. Members: docs/decisions/009-global-lightgbm-members.md."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

LIGHTGBM = "lightgbm"
LEGACY_SALES_FEATURES = ("lag_28", "lag_35", "lag_42", "lag_49", "lag_56", "lag_364",
                         "mean_7", "mean_28", "mean_91", "same_weekday_mean",
                         "last_year_mean")
"""The sales features of artifacts stored before they held their feature list."""


@dataclass(frozen=True)
class HorizonMember:
    """The second member: boosters reading sales lags at and beyond the horizon (ISO
    cut-off date -> model text), its sales features, and its weight in the blend (0: the
    level member alone; chosen by the tenant's pooled backtests, `global_stage`)."""

    boosters: dict[str, str]
    sales_features: tuple[str, ...]
    weight: float = 0.0
    # Pooled backtest WAPE per candidate weight (as text keys, JSON-safe): the evidence.
    evidence: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"boosters": dict(self.boosters), "sales_features": list(self.sales_features),
                "weight": self.weight, "evidence": dict(self.evidence)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HorizonMember:
        return cls(boosters=dict(data["boosters"]),
                   sales_features=tuple(data["sales_features"]),
                   weight=float(data.get("weight", 0.0)),
                   evidence={str(k): float(v) for k, v in data.get("evidence", {}).items()})


@dataclass(frozen=True)
class PartnerWeight:
    """The blend partner's weight for every regular product of a large tenant, chosen
    once on the partner windows of its largest products pooled (`global_stage.
    weigh_partner`) instead of by each product's own backtest: `partner` (a candidate
    name), `weight` (0: no blend), the products it was weighed on, and the pooled
    backtest WAPE of the partner and of the global model there (the evidence).
    docs/decisions/016-tenant-blend-weight.md."""

    partner: str
    weight: float
    products: int
    partner_wape: float
    own_wape: float

    def to_dict(self) -> dict[str, Any]:
        return {"partner": self.partner, "weight": self.weight, "products": self.products,
                "partner_wape": self.partner_wape, "own_wape": self.own_wape}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PartnerWeight:
        return cls(partner=str(data["partner"]), weight=float(data["weight"]),
                   products=int(data["products"]),
                   partner_wape=float(data["partner_wape"]),
                   own_wape=float(data["own_wape"]))


@dataclass(frozen=True)
class ServingRef:
    """Where a job's serving boosters are stored (`GlobalFits.serving_copy`: the boosters of
    the cut-offs its products' final models adopt, stored once per job and kept while a
    model version refers to them): the store key, the SHA-256 a load verifies, and the
    cut-offs (ISO dates) it holds. A product's artifact refers to them instead of holding a
    copy: a chain's booster grows with its product count (a categorical split's bitset),
    and a copy in each of 10,000 artifacts made the stored bytes grow with the square of
    the product count. docs/decisions/017-shared-serving-boosters.md."""

    key: str
    sha256: str
    cutoffs: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "sha256": self.sha256, "cutoffs": list(self.cutoffs)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServingRef:
        return cls(key=str(data["key"]), sha256=str(data["sha256"]),
                   cutoffs=tuple(str(c) for c in data["cutoffs"]))


@dataclass(frozen=True)
class GlobalFits:
    """The tenant's boosters (ISO cut-off date -> LightGBM model text) of the level
    member, the products in category order, the regressor columns and sales features
    they read, the horizon member (None: the level member alone, as artifacts stored
    before it), the seconds they all took to train, and for a large tenant the blend
partner's tenant-wide weight (None: each product weighs its partner itself), where
the serving copy of the final cut-offs' boosters is stored (None: each product artifact
holds its boosters), and the needed cut-offs the stage trained no booster at, each with
the trained cut-off it adopts instead (`aliases`, ISO dates: at most
`global_stage.ADOPT_WITHIN_DAYS` earlier; docs/decisions/024-shared-cutoffs.md)."""

    products: tuple[str, ...]
    regressors: tuple[str, ...]
    boosters: dict[str, str]
    seconds: float
    sales_features: tuple[str, ...]
    horizon: HorizonMember | None = None
    partner: PartnerWeight | None = None
    serving: ServingRef | None = None
    aliases: dict[str, str] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        return json.dumps({"products": list(self.products),
                           "regressors": list(self.regressors),
                           "sales_features": list(self.sales_features),
                           "boosters": dict(self.boosters),
                           "horizon": None if self.horizon is None else self.horizon.to_dict(),
                           "partner": None if self.partner is None else self.partner.to_dict(),
                           "serving": None if self.serving is None else self.serving.to_dict(),
                           "aliases": dict(self.aliases),
                           "seconds": self.seconds}).encode()

    @classmethod
    def from_bytes(cls, payload: bytes) -> GlobalFits:
        data = json.loads(payload)
        horizon, partner, serving = data.get("horizon"), data.get("partner"), data.get("serving")
        return cls(products=tuple(data["products"]), regressors=tuple(data["regressors"]),
                   boosters=dict(data["boosters"]), seconds=float(data["seconds"]),
                   sales_features=tuple(data.get("sales_features", LEGACY_SALES_FEATURES)),
                   horizon=None if horizon is None else HorizonMember.from_dict(horizon),
                   partner=None if partner is None else PartnerWeight.from_dict(partner),
                   serving=None if serving is None else ServingRef.from_dict(serving),
                   aliases={str(k): str(v) for k, v in data.get("aliases", {}).items()})

    def summary(self) -> dict[str, Any]:
        found: dict[str, Any] = {"family": LIGHTGBM, "products": len(self.products),
                                 "cutoffs": sorted(self.boosters),
                                 "seconds": round(self.seconds, 3)}
        if self.horizon is not None:
            found["horizon_weight"] = self.horizon.weight
            found["horizon_evidence"] = dict(self.horizon.evidence)
        if self.partner is not None:
            found["partner"] = self.partner.to_dict()
        if self.serving is not None:
            found["serving"] = self.serving.to_dict()
        if self.aliases:
            # A count: a chain's ragged product ends may need thousands of cut-offs.
            found["adopted_cutoffs"] = len(self.aliases)
        return found

    def adoptable(self, product: str, regressors: tuple[str, ...]) -> bool:
        return product in self.products and tuple(self.regressors) == tuple(regressors)

    def trained_cutoff(self, cutoff: str) -> str:
        """The cut-off (ISO date) whose boosters a model fitted up to `cutoff` adopts:
        `cutoff` itself, or the earlier one the stage trained in its place (`aliases`)."""
        return self.aliases.get(cutoff, cutoff)

    def booster_for(self, product: str, regressors: tuple[str, ...], cutoff: str
                    ) -> str | None:
        """The level booster text of `cutoff` (ISO date; `trained_cutoff`) that a model of
        `product` reading `regressors` can adopt; None when there is none."""
        if not self.adoptable(product, regressors):
            return None
        return self.boosters.get(self.trained_cutoff(cutoff))

    def with_horizon_weight(self, weight: float, evidence: Mapping[str, float]
                            ) -> GlobalFits:
        if self.horizon is None:
            raise ValueError("no horizon member to weigh")
        horizon = HorizonMember(boosters=self.horizon.boosters,
                                sales_features=self.horizon.sales_features, weight=weight,
                                evidence=dict(evidence))
        return replace(self, horizon=horizon)

    def with_partner(self, partner: PartnerWeight) -> GlobalFits:
        return replace(self, partner=partner)

    def with_serving(self, serving: ServingRef) -> GlobalFits:
        return replace(self, serving=serving)

    def serving_copy(self, cutoffs: Iterable[str]) -> GlobalFits:
        """These fits with only the boosters of `cutoffs` (ISO dates; those of the final
        models, each as `trained_cutoff`), both members: what a job stores for its
        products' artifacts to refer to (`ServingRef`). The weighing evidence, the partner
        and the aliases stay in the job record."""
        kept = {self.trained_cutoff(cutoff) for cutoff in cutoffs}

        def pruned(boosters: Mapping[str, str]) -> dict[str, str]:
            return {cutoff: text for cutoff, text in boosters.items() if cutoff in kept}

        horizon = None if self.horizon is None else replace(
            self.horizon, boosters=pruned(self.horizon.boosters), evidence={})
        return replace(self, boosters=pruned(self.boosters), horizon=horizon, partner=None,
                       serving=None, aliases={})
