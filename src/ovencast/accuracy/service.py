"""Realised accuracy and champion/challenger comparisons, computed on read from the
stored forecast rows (ovencast.forecast_runs) and the sales the tenant's data source
has now (imported, or fetched from the sales service): always consistent with both,
nothing to recompute when sales arrive or are corrected.

Drift: a product whose champion forecasts of its last DRIFT_WEEKS weeks of scored days
have a realised WAPE above DRIFT_FACTOR times the backtest WAPE of the version that made
the latest of them (`backtest_wape`) gets a warning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pandas as pd
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.accuracy.comparison import PairedTest, paired_test
from ovencast.accuracy.scoring import ACTUAL, Score, lead_bucket, score, scored
from ovencast.db.tables import ModelVersion, Tenant
from ovencast.forecast_runs import repository as runs_repository
from ovencast.models import repository as models_repository
from ovencast.models import service as models_service
from ovencast.models.states import ForecastRole, Standing
from ovencast.observability.logs import get_logger
from ovencast.settings import Settings
from ovencast.sources.base import DataSource
from ovencast.sources.database import DatabaseSource

log = get_logger(__name__)

DRIFT_WEEKS = 4


def backtest_wape(version: ModelVersion | None) -> float | None:
    """The WAPE a version was expected to reach: its selection's backtest WAPE (the
    chosen model over the rolling-origin windows, scoring what is served: a unit
    product's count median), or for a version chosen without a backtest (Prophet alone,
    short histories) its holdout WAPE."""
    if version is None:
        return None
    selection = (version.details or {}).get("selection") or {}
    # A unit product is served a count's median: the backtest WAPE of that (decision 031).
    value = selection.get("served_wape", selection.get("wape")) \
        if selection.get("basis") == "backtest" else None
    if value is None:
        value = (version.metrics or {}).get("wape")
    return None if value is None else float(value)


@dataclass(frozen=True)
class VersionAccuracy:
    version: int
    role: ForecastRole
    overall: Score
    by_lead: dict[str, Score]


@dataclass(frozen=True)
class ProductAccuracy:
    product: str
    overall: Score  # the champion rows: what the tenant was told
    versions: list[VersionAccuracy]
    first_day: date
    last_day: date
    recent_wape: float
    recent_days: int
    backtest_wape: float | None
    drift: str | None = None


@dataclass(frozen=True)
class AccuracyReport:
    tenant: str
    product: str | None
    since: date | None
    stored_rows: int
    products: list[ProductAccuracy]
    warnings: list[str] = field(default_factory=list)


async def _scored_rows(session: AsyncSession, tenant: Tenant, source: DataSource, *,
                       product: str | None, since: date | None) -> tuple[pd.DataFrame, int]:
    rows = await runs_repository.scored_rows(session, tenant.id, product=product,
                                             since=since)
    if rows.empty:
        return scored(rows, pd.DataFrame()), 0
    products = sorted(set(rows["product"]))
    sales = (await source.load(tenant.name, until=max(rows["date"]), products=products)
             ).sales
    return scored(rows, sales), len(rows)


async def realised_accuracy(session: AsyncSession, tenant: Tenant, *, settings: Settings,
                            product: str | None = None, since: date | None = None,
                            source: DataSource | None = None) -> AccuracyReport:
    """Every stored forecast of the tenant (of `product`, of forecast dates from `since`)
    that can be scored, scored (ovencast.accuracy.scoring)."""
    source = source or DatabaseSource(session)
    rows, stored = await _scored_rows(session, tenant, source, product=product, since=since)
    versions = {(v.product, v.version): v
                for v in await models_repository.list_versions(session, tenant.id,
                                                               product=product)}
    found: list[ProductAccuracy] = []
    for name, group in rows.groupby("product", sort=True):
        accuracy = _product_accuracy(str(name), group, versions, settings.drift_factor)
        if accuracy is not None:
            found.append(accuracy)
    warnings = [p.drift for p in found if p.drift]
    for warning in warnings:
        log.info("accuracy.drift", tenant=tenant.name, detail=warning)
    return AccuracyReport(tenant=tenant.name, product=product, since=since,
                          stored_rows=stored, products=found, warnings=warnings)


def _product_accuracy(product: str, rows: pd.DataFrame,
                      versions: Mapping[tuple[str, int], ModelVersion], factor: float
                      ) -> ProductAccuracy | None:
    champion = rows.loc[rows["role"] == ForecastRole.CHAMPION]
    if champion.empty:
        return None
    by_version = []
    for key, group in rows.groupby(["version", "role"], sort=True):
        version, role = (str(part) for part in key)  # pandas: keys typed Hashable
        by_lead = {str(label): score(part) for label, part in
                   group.groupby(group["lead_days"].map(lead_bucket), sort=False)}
        by_version.append(VersionAccuracy(int(version), ForecastRole(role), score(group),
                                          dict(sorted(by_lead.items(), key=_bucket_order))))
    last = max(champion["date"])
    recent = champion.loc[champion["date"] > last - timedelta(days=7 * DRIFT_WEEKS)]
    latest = recent.sort_values(["date", "run_id"]).iloc[-1]
    expected = backtest_wape(versions.get((product, int(latest["version"]))))
    recent_score = score(recent)
    drift = None
    if (expected is not None and expected > 0 and not math.isnan(recent_score.wape)
            and recent_score.wape > factor * expected):
        drift = (f"{product}: realised WAPE {recent_score.wape:.3f} over the last "
                 f"{DRIFT_WEEKS} weeks ({recent_score.n_days} days) is "
                 f"{recent_score.wape / expected:.1f} times its backtest WAPE "
                 f"{expected:.3f} (version {int(latest['version'])}; warning above "
                 f"{factor:g} times): retrain, or look at what changed")
    return ProductAccuracy(
        product=product, overall=score(champion), versions=by_version,
        first_day=min(champion["date"]), last_day=last, recent_wape=recent_score.wape,
        recent_days=recent_score.n_days, backtest_wape=expected, drift=drift)


def _bucket_order(item: tuple[str, Score]) -> int:
    return int(item[0].split("-")[0].rstrip("+"))


# -- champion against challenger ------------------------------------------------------------
@dataclass(frozen=True)
class ChallengerComparison:
    """One challenger version of a product against the champion forecasts of the same
    runs, one pair per day (the latest run's: the shortest lead time)."""

    product: str
    challenger_version: int
    standing: Standing | None  # the challenger version's standing now
    champion_versions: list[int]
    first_day: date | None
    last_day: date | None
    test: PairedTest

    @property
    def span_days(self) -> int:
        if self.first_day is None or self.last_day is None:
            return 0
        return (self.last_day - self.first_day).days + 1

    def to_dict(self) -> dict[str, Any]:
        return {"product": self.product, "challenger_version": self.challenger_version,
                "standing": self.standing.value if self.standing else None,
                "champion_versions": self.champion_versions,
                "first_day": self.first_day.isoformat() if self.first_day else None,
                "last_day": self.last_day.isoformat() if self.last_day else None,
                **self.test.to_dict()}


async def compare_challengers(session: AsyncSession, tenant: Tenant, *, settings: Settings,
                              product: str | None = None, weeks: int | None = None,
                              source: DataSource | None = None
                              ) -> list[ChallengerComparison]:
    """Every version that forecast in shadow (of `product`) against the champion, on the
    days both forecast and sales are known; `weeks`: only the last `weeks` weeks of them."""
    source = source or DatabaseSource(session)
    rows, _ = await _scored_rows(session, tenant, source, product=product, since=None)
    standing = {(v.product, v.version): v.standing
                for v in await models_repository.list_versions(session, tenant.id,
                                                               product=product)}
    champion = rows.loc[rows["role"] == ForecastRole.CHAMPION]
    shadow = rows.loc[rows["role"] == ForecastRole.CHALLENGER]
    found = []
    for key, group in shadow.groupby(["product", "version"], sort=True):
        name, version = (str(part) for part in key)  # pandas: keys typed Hashable
        pairs = group.merge(champion, on=["run_id", "product", "date"],
                            suffixes=("_challenger", "_champion"))
        # One pair per day: the latest run's forecasts (the shortest lead).
        pairs = pairs.sort_values(["date", "run_id"]).drop_duplicates("date", keep="last")
        if weeks is not None and not pairs.empty:
            last = max(pairs["date"])
            pairs = pairs.loc[pairs["date"] > last - timedelta(days=7 * weeks)]
        test = paired_test(pairs[f"{ACTUAL}_challenger"].to_numpy(dtype=float),
                           pairs["forecast_champion"].to_numpy(dtype=float),
                           pairs["forecast_challenger"].to_numpy(dtype=float),
                           alpha=settings.comparison_alpha)
        found.append(ChallengerComparison(
            product=str(name), challenger_version=int(version),
            standing=standing.get((str(name), int(version))),
            champion_versions=sorted({int(v) for v in pairs["version_champion"]}),
            first_day=min(pairs["date"]) if not pairs.empty else None,
            last_day=max(pairs["date"]) if not pairs.empty else None, test=test))
    return found


@dataclass(frozen=True)
class Promoted:
    product: str
    version: int
    previous: int | None
    comparison: ChallengerComparison


async def promote_winners(session: AsyncSession, tenant: Tenant, *, settings: Settings,
                          product: str | None = None, weeks: int | None = None,
                          source: DataSource | None = None
                          ) -> tuple[list[ChallengerComparison], list[Promoted]]:
    """Activate, per product, the challenger that beats the champion significantly
    (several: the lowest WAPE). `weeks` (the automatic policy, AUTO_PROMOTE_AFTER_WEEKS):
    only on the last `weeks` weeks of paired days, and only when they span that long."""
    comparisons = await compare_challengers(session, tenant, settings=settings,
                                            product=product, weeks=weeks, source=source)
    promoted: list[Promoted] = []
    for name in sorted({c.product for c in comparisons}):
        winners = [c for c in comparisons if c.product == name
                   and c.test.winner is ForecastRole.CHALLENGER
                   and c.standing is Standing.CHALLENGER
                   and (weeks is None or c.span_days >= 7 * weeks)]
        if not winners:
            continue
        best = min(winners, key=lambda c: c.test.challenger_wape)
        previous = await models_repository.get_active(session, tenant.id, name)
        row = await models_service.activate(session, tenant, name, best.challenger_version)
        row.promotion = {**(row.promotion or {}), "shadow": {
            "promoted_over": previous.version if previous else None,
            "weeks": weeks, **best.to_dict()}}
        await session.flush()
        log.info("model.promoted_from_shadow", tenant=tenant.name, product=name,
                 version=best.challenger_version, p_value=best.test.p_value)
        promoted.append(Promoted(name, best.challenger_version,
                                 previous.version if previous else None, best))
    return comparisons, promoted


def product_names(comparisons: Sequence[ChallengerComparison]) -> list[str]:
    return sorted({c.product for c in comparisons})
