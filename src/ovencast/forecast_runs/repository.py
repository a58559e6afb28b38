"""SQL of forecast runs and their rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, cast

import pandas as pd
from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.db.batches import batches
from ovencast.db.tables import ForecastRow, ForecastRun

ROWS_PER_STATEMENT = 2_000
"""Rows per executemany batch (13 parameters a row: far below the drivers' limits)."""
SCORED_COLUMNS = ("run_id", "created_at", "origin", "product", "version", "role", "date",
                  "lead_days", "forecast", "p10", "p90", "baseline", "closed")


async def add_run(session: AsyncSession, run: ForecastRun) -> ForecastRun:
    session.add(run)
    await session.flush()
    return run


async def add_rows(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Rows (`ForecastRow` columns as dicts), in batches."""
    table = cast(Table, ForecastRow.__table__)
    for batch in batches(rows, ROWS_PER_STATEMENT):
        await session.execute(insert(table), batch)


async def get_run(session: AsyncSession, run_id: int) -> ForecastRun | None:
    return await session.get(ForecastRun, run_id)


async def runs_of(session: AsyncSession, tenant_id: int, *, limit: int
                  ) -> Sequence[ForecastRun]:
    return (await session.scalars(select(ForecastRun).where(
        ForecastRun.tenant_id == tenant_id).order_by(ForecastRun.id.desc()).limit(limit))
            ).all()


async def rows_of(session: AsyncSession, run_id: int) -> Sequence[ForecastRow]:
    return (await session.scalars(select(ForecastRow).where(ForecastRow.run_id == run_id)
                                  .order_by(ForecastRow.role, ForecastRow.product,
                                            ForecastRow.version, ForecastRow.date))).all()


async def scored_rows(session: AsyncSession, tenant_id: int, *,
                      product: str | None = None, since: date | None = None,
                      until: date | None = None) -> pd.DataFrame:
    """Every stored forecast row of a tenant (of `product`; forecast dates from `since`
    to `until`) with its run's id, time and origin: columns SCORED_COLUMNS."""
    query = (select(ForecastRow.run_id, ForecastRun.created_at, ForecastRun.origin,
                    ForecastRow.product, ForecastRow.version, ForecastRow.role,
                    ForecastRow.date, ForecastRow.lead_days, ForecastRow.forecast,
                    ForecastRow.p10, ForecastRow.p90, ForecastRow.baseline,
                    ForecastRow.closed)
             .join(ForecastRun, ForecastRun.id == ForecastRow.run_id)
             .where(ForecastRun.tenant_id == tenant_id))
    if product is not None:
        query = query.where(ForecastRow.product == product)
    if since is not None:
        query = query.where(ForecastRow.date >= since)
    if until is not None:
        query = query.where(ForecastRow.date <= until)
    found = (await session.execute(query.order_by(ForecastRow.run_id, ForecastRow.product,
                                                  ForecastRow.version, ForecastRow.date)
                                   )).all()
    return pd.DataFrame([tuple(row) for row in found], columns=list(SCORED_COLUMNS))
