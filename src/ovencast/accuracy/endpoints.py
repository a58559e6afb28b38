"""HTTP endpoints of realised accuracy and champion/challenger comparisons."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from ovencast.accuracy import service
from ovencast.accuracy.schemas import (
    AccuracyOut,
    ComparisonOut,
    ComparisonsOut,
    ProductAccuracyOut,
    PromotedOut,
    ScoreOut,
    VersionAccuracyOut,
)
from ovencast.accuracy.scoring import Score
from ovencast.accuracy.service import ChallengerComparison, Promoted
from ovencast.api.dependencies import Session, SettingsDep, tenant_access
from ovencast.api.errors import ACCESS_ERRORS, error_responses
from ovencast.keys.roles import Role
from ovencast.names import LookupName
from ovencast.sources.service import open_data_source
from ovencast.tenants import service as tenants_service

router = APIRouter(prefix="/tenants/{tenant}", tags=["accuracy"], responses=ACCESS_ERRORS)

ProductQuery = Annotated[LookupName | None, Query(description="only this product")]
WeeksQuery = Annotated[int | None, Query(ge=1, le=52, description="only the last N weeks "
                                                                  "of days both forecast")]


def _score(score: Score) -> ScoreOut:
    return ScoreOut(**score.to_dict())


def _number(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


@router.get("/accuracy", response_model=AccuracyOut,
            summary="Realised accuracy of the saved forecasts against what sold",
            responses=error_responses(404, 422), dependencies=[tenant_access(Role.READ)])
async def get_accuracy(tenant: str, session: Session, settings: SettingsDep,
                       product: ProductQuery = None,
                       since: Annotated[date | None, Query(
                           description="only forecast dates from this day")] = None
                       ) -> AccuracyOut:
    row = await tenants_service.get_tenant(session, tenant)
    async with open_data_source(session, settings=settings) as source:
        report = await service.realised_accuracy(session, row, settings=settings,
                                                 product=product, since=since,
                                                 source=source)
    return AccuracyOut(
        tenant=report.tenant, product=report.product, since=report.since,
        stored_rows=report.stored_rows, warnings=report.warnings,
        products=[ProductAccuracyOut(
            product=p.product, overall=_score(p.overall), first_day=p.first_day,
            last_day=p.last_day, recent_wape=_number(p.recent_wape),
            recent_days=p.recent_days, backtest_wape=p.backtest_wape, drift=p.drift,
            versions=[VersionAccuracyOut(
                version=v.version, role=v.role, overall=_score(v.overall),
                by_lead={k: _score(s) for k, s in v.by_lead.items()}) for v in p.versions])
            for p in report.products])


def _comparisons(tenant: str, found: Sequence[ChallengerComparison],
                 promoted: Sequence[Promoted]) -> ComparisonsOut:
    return ComparisonsOut(
        tenant=tenant, comparisons=[ComparisonOut(**c.to_dict()) for c in found],
        promoted=[PromotedOut(product=p.product, version=p.version, previous=p.previous)
                  for p in promoted])


@router.get("/comparisons", response_model=ComparisonsOut,
            summary="Champion against each challenger on the days both forecast",
            responses=error_responses(404, 422), dependencies=[tenant_access(Role.READ)])
async def get_comparisons(tenant: str, session: Session, settings: SettingsDep,
                          product: ProductQuery = None, weeks: WeeksQuery = None
                          ) -> ComparisonsOut:
    row = await tenants_service.get_tenant(session, tenant)
    async with open_data_source(session, settings=settings) as source:
        found = await service.compare_challengers(session, row, settings=settings,
                                                  product=product, weeks=weeks,
                                                  source=source)
    return _comparisons(row.name, found, [])


@router.post("/comparisons/promote", response_model=ComparisonsOut,
             summary="Activate each challenger that beats its champion significantly",
             responses=error_responses(404, 422), dependencies=[tenant_access(Role.TRAIN)])
async def promote_winners(tenant: str, session: Session, settings: SettingsDep,
                          product: ProductQuery = None, weeks: WeeksQuery = None
                          ) -> ComparisonsOut:
    row = await tenants_service.get_tenant(session, tenant)
    async with open_data_source(session, settings=settings) as source:
        found, promoted = await service.promote_winners(
            session, row, settings=settings, product=product, weeks=weeks, source=source)
    return _comparisons(row.name, found, promoted)
