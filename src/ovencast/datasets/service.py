from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.datasets import repository
from ovencast.datasets.reader import ParsedDataset
from ovencast.db.tables import DatasetImport, Tenant


@dataclass(frozen=True)
class ImportSummary:
    tenant: str
    sales_rows: int
    products: int
    regressor_columns: list[str]
    first_date: str
    last_date: str


async def import_dataset(session: AsyncSession, tenant: Tenant, dataset: ParsedDataset, *,
                         source: str) -> ImportSummary:
    """Store a parsed dataset, replacing overlapping dates (idempotent). The caller's unit
    of work makes it all-or-nothing."""
    await repository.replace_sales(session, tenant.id, dataset.sales)
    await repository.replace_regressors(session, tenant.id, dataset.regressors)
    await repository.add_import(session, DatasetImport(
        tenant_id=tenant.id, source=source, files=dataset.files,
        sales_rows=len(dataset.sales), first_date=dataset.first_date,
        last_date=dataset.last_date))
    return ImportSummary(
        tenant=tenant.name, sales_rows=len(dataset.sales),
        products=len({r.product for r in dataset.sales}),
        regressor_columns=[c.name for c in dataset.regressors],
        first_date=dataset.first_date.isoformat(), last_date=dataset.last_date.isoformat())
