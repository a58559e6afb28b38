"""SQL for imported sales and regressor observations."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

import pandas as pd
from sqlalchemy import and_, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.datasets.reader import RegressorColumn, SalesRow
from ovencast.db.tables import DatasetImport, RegressorObservation, SalesObservation

# Rows per executemany batch; keeps parameter lists within driver limits.
BATCH_ROWS = 5_000


async def replace_sales(session: AsyncSession, tenant_id: int, rows: Sequence[SalesRow]) -> None:
    """Replace, per product, the stored rows within the date span of the new rows."""
    spans: dict[str, tuple[date, date]] = {}
    for row in rows:
        lo, hi = spans.get(row.product, (row.date, row.date))
        spans[row.product] = (min(lo, row.date), max(hi, row.date))
    for product, (lo, hi) in spans.items():
        await session.execute(delete(SalesObservation).where(and_(
            SalesObservation.tenant_id == tenant_id, SalesObservation.product == product,
            SalesObservation.date >= lo, SalesObservation.date <= hi)))
    await _insert_batches(session, SalesObservation, (
        {"tenant_id": tenant_id, "product": r.product, "date": r.date, "quantity": r.quantity}
        for r in rows))


async def replace_regressors(session: AsyncSession, tenant_id: int,
                             columns: Sequence[RegressorColumn]) -> None:
    for column in columns:
        if not column.values:
            continue
        lo, hi = min(column.values), max(column.values)
        await session.execute(delete(RegressorObservation).where(and_(
            RegressorObservation.tenant_id == tenant_id,
            RegressorObservation.name == column.name,
            RegressorObservation.date >= lo, RegressorObservation.date <= hi)))
        await _insert_batches(session, RegressorObservation, (
            {"tenant_id": tenant_id, "source": column.source, "name": column.name,
             "date": day, "value": value}
            for day, value in column.values.items()))


async def _insert_batches(session: AsyncSession, table: type, rows: Iterable[dict[str, object]]
                          ) -> None:
    batch: list[dict[str, object]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            await session.execute(insert(table), batch)
            batch = []
    if batch:
        await session.execute(insert(table), batch)


async def add_import(session: AsyncSession, record: DatasetImport) -> None:
    session.add(record)
    await session.flush()


async def load_sales(session: AsyncSession, tenant_id: int, *, until: date | None = None,
                     products: Sequence[str] | None = None) -> pd.DataFrame:
    """Long frame `product, date, quantity` (dates as datetime64, naive local days)."""
    query = select(SalesObservation.product, SalesObservation.date, SalesObservation.quantity
                   ).where(SalesObservation.tenant_id == tenant_id)
    if until is not None:
        query = query.where(SalesObservation.date <= until)
    if products:
        query = query.where(SalesObservation.product.in_(list(products)))
    result = await session.execute(query.order_by(SalesObservation.product,
                                                  SalesObservation.date))
    frame = pd.DataFrame(result.all(), columns=["product", "date", "quantity"])
    frame["date"] = pd.to_datetime(frame["date"])
    frame["quantity"] = frame["quantity"].astype(float)
    return frame


async def last_sales_date(session: AsyncSession, tenant_id: int) -> date | None:
    found: date | None = await session.scalar(select(func.max(SalesObservation.date)).where(
        SalesObservation.tenant_id == tenant_id))
    return found


async def list_products(session: AsyncSession, tenant_id: int) -> list[str]:
    result = await session.scalars(select(SalesObservation.product).where(
        SalesObservation.tenant_id == tenant_id).distinct().order_by(SalesObservation.product))
    return list(result.all())


async def load_regressors(session: AsyncSession, tenant_id: int) -> tuple[pd.DataFrame,
                                                                           dict[str, str]]:
    """Wide frame `date, <column>...` (NaN for empty cells) and column -> source."""
    result = await session.execute(select(
        RegressorObservation.date, RegressorObservation.name, RegressorObservation.source,
        RegressorObservation.value).where(RegressorObservation.tenant_id == tenant_id))
    long = pd.DataFrame(result.all(), columns=["date", "name", "source", "value"])
    if long.empty:
        return pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]")}), {}
    sources = dict(zip(long["name"], long["source"], strict=False))
    wide = long.pivot(index="date", columns="name", values="value").astype(float)
    wide.columns.name = None
    wide = wide.reset_index()
    wide["date"] = pd.to_datetime(wide["date"])
    return wide.sort_values("date").reset_index(drop=True), sources
