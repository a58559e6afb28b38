"""A job's data: load it from its source, build the tenant frame and validate it, the same
way for every step that needs it (preparing a job, the tenant stage, a service worker
rebuilding one product's task, `ovencast validate`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import pandas as pd
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.db.tables import Tenant
from ovencast.errors import InvalidDataset
from ovencast.forecasting.features import (
    AlignmentReport,
    build_original_frame,
    build_tenant_frame,
)
from ovencast.forecasting.validation import ValidationReport, validate_sales
from ovencast.settings import Settings
from ovencast.sources.base import DataSource, SourceData
from ovencast.sources.database import DatabaseSource


@dataclass(frozen=True, repr=False)
class TenantData:
    """The tenant frame (long: product, date, y, closed, regressors; see
    forecasting/frame.py), its validation and alignment reports, and what the source
    could not deliver (weather or traffic down: one warning each)."""

    frame: pd.DataFrame
    report: ValidationReport
    alignment: AlignmentReport
    warnings: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"TenantData(rows={len(self.frame)}, products={len(self.report.products)})"


async def load_and_validate(source: DataSource, tenant: Tenant, *, settings: Settings,
                            until: date | None, products: Sequence[str] | None,
                            original: bool = False) -> TenantData:
    """Load, build the tenant frame and validate it. The frame and its validation run in
    a thread: minutes of CPU for a chain, which on the event loop would stop a service
    worker's heartbeats, and another worker would then prepare the job again as stalled
    (decision 023). `original`: the frame of the original approach (`--models prophet`),
    its regressors prepared as the original system did (`_frame_and_report`)."""
    loaded = [await source.load(tenant.name, until=until, products=products)]
    warnings = list(loaded[0].warnings)
    frame, alignment, report = await asyncio.to_thread(_frame_and_report, loaded, tenant,
                                                       settings, original)
    return TenantData(frame=frame, report=report, alignment=alignment, warnings=warnings)


def _frame_and_report(loaded: list[SourceData], tenant: Tenant, settings: Settings,
                      original: bool = False
                      ) -> tuple[pd.DataFrame, AlignmentReport, ValidationReport]:
    """The tenant frame, its alignment and validation reports. `original`: the original
    approach's frame (`features.build_original_frame`, decision 033)."""
    data = loaded.pop()  # the only reference: the source's rows go once copied
    if original:
        frame, alignment = build_original_frame(data.sales, data.regressors,
                                                order=data.regressor_order)
    else:
        frame, alignment = build_tenant_frame(data.sales, data.regressors,
                                              country=tenant.country,
                                              subdivision=tenant.subdivision)
    del data  # the source's rows, copied into `frame`: not held while it is validated
    report = validate_sales(frame, min_days=settings.min_training_data_days,
                            recommended_days=settings.recommended_training_data_days)
    return frame, alignment, report


async def validate_tenant(session: AsyncSession, tenant: Tenant, *, settings: Settings,
                          until: date | None = None, source: DataSource | None = None
                          ) -> tuple[ValidationReport, AlignmentReport]:
    """The validation report of all the tenant's data (what a job would store)."""
    source = source or DatabaseSource(session)
    if not await source.list_products(tenant.name):
        raise InvalidDataset(f"tenant {tenant.name!r} has no sales data; import a dataset")
    data = await load_and_validate(source, tenant, settings=settings, until=until,
                                   products=None)
    return data.report, data.alignment
