from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.db.batches import IDS_PER_QUERY, batches
from ovencast.db.tables import ModelVersion, SalesObservation


async def next_version(session: AsyncSession, tenant_id: int, product: str) -> int:
    current = await session.scalar(select(func.max(ModelVersion.version)).where(
        ModelVersion.tenant_id == tenant_id, ModelVersion.product == product))
    return (current or 0) + 1


async def get_active(session: AsyncSession, tenant_id: int, product: str) -> ModelVersion | None:
    return await session.scalar(select(ModelVersion).where(
        ModelVersion.tenant_id == tenant_id, ModelVersion.product == product,
        ModelVersion.is_active.is_(True)))


async def get_version(session: AsyncSession, tenant_id: int, product: str, version: int
                      ) -> ModelVersion | None:
    return await session.scalar(select(ModelVersion).where(
        ModelVersion.tenant_id == tenant_id, ModelVersion.product == product,
        ModelVersion.version == version))


async def list_active(session: AsyncSession, tenant_id: int) -> Sequence[ModelVersion]:
    return (await session.scalars(select(ModelVersion).where(
        ModelVersion.tenant_id == tenant_id, ModelVersion.is_active.is_(True)
    ).order_by(ModelVersion.product))).all()


async def active_past_sales(session: AsyncSession, tenant_id: int
                            ) -> list[tuple[str, date, date | None]]:
    """(product, the active version's data end, the product's last sales date now) for
    the active versions trained on sales later than their product's last row now (rows
    removed since: an import undone or replaced; None: no sales left), by product. One
    index probe per active product (the sales' unique (tenant, product, date) index),
    not a scan of the tenant's sales."""
    last = (select(func.max(SalesObservation.date))
            .where(SalesObservation.tenant_id == tenant_id,
                   SalesObservation.product == ModelVersion.product)
            .correlate(ModelVersion).scalar_subquery())
    found = (select(ModelVersion.product, ModelVersion.data_end, last.label("last"))
             .where(ModelVersion.tenant_id == tenant_id, ModelVersion.is_active.is_(True))
             .subquery())
    rows = await session.execute(
        select(found.c.product, found.c.data_end, found.c.last)
        .where(or_(found.c.last.is_(None), found.c.data_end > found.c.last))
        .order_by(found.c.product))
    return [(product, data_end, last_date) for product, data_end, last_date in rows]


async def list_challengers(session: AsyncSession, tenant_id: int, *,
                           products: Sequence[str] | None = None) -> Sequence[ModelVersion]:
    """The challengers of a tenant (of `products` when given), by product, newest first."""
    query = select(ModelVersion).where(ModelVersion.tenant_id == tenant_id,
                                       ModelVersion.is_challenger.is_(True))
    if products is None:
        found = list((await session.scalars(query)).all())
    else:
        found = []
        for batch in batches(list(products), IDS_PER_QUERY):
            found += (await session.scalars(query.where(ModelVersion.product.in_(batch)))
                      ).all()
    return sorted(found, key=lambda v: (v.product, -v.version))


async def list_versions(session: AsyncSession, tenant_id: int, *, product: str | None = None
                        ) -> Sequence[ModelVersion]:
    query = select(ModelVersion).where(ModelVersion.tenant_id == tenant_id)
    if product is not None:
        query = query.where(ModelVersion.product == product)
    return (await session.scalars(query.order_by(ModelVersion.product,
                                                 ModelVersion.version))).all()


async def lock_product(session: AsyncSession, tenant_id: int, product: str) -> None:
    """Lock the product's version rows until the transaction ends (PostgreSQL; SQLite
    serialises writers anyway): activations and new versions of one product take turns
    instead of racing for the one-active index."""
    await session.execute(select(ModelVersion.id).where(
        ModelVersion.tenant_id == tenant_id, ModelVersion.product == product
    ).with_for_update())


async def deactivate_all(session: AsyncSession, tenant_id: int, product: str) -> None:
    await session.execute(update(ModelVersion).where(
        ModelVersion.tenant_id == tenant_id, ModelVersion.product == product,
        ModelVersion.is_active.is_(True)).values(is_active=False))
    # The partial unique index checks per statement: flush the deactivation first.
    await session.flush()


async def add(session: AsyncSession, version: ModelVersion) -> ModelVersion:
    session.add(version)
    await session.flush()
    return version


async def latest_of_family(session: AsyncSession, tenant_id: int, product: str, family: str
                           ) -> ModelVersion | None:
    return await session.scalar(select(ModelVersion).where(
        ModelVersion.tenant_id == tenant_id, ModelVersion.product == product,
        ModelVersion.family == family).order_by(ModelVersion.version.desc()).limit(1))


async def get_by_ids(session: AsyncSession, ids: Sequence[int]) -> Sequence[ModelVersion]:
    found: list[ModelVersion] = []
    for batch in batches(ids, IDS_PER_QUERY):
        found += (await session.scalars(select(ModelVersion).where(
            ModelVersion.id.in_(batch)))).all()
    return found
