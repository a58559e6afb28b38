"""Storing imported datasets, with their history (datasets/history.py).

An import changes only the rows it contains (`ImportMode.MERGE`), or, when it says so,
replaces the history of the products and regressor columns it contains
(`ImportMode.REPLACE`). Either way every stored row it adds, changes or removes is
recorded with the value before, so `restore_import` can undo it. The caller's unit of
work makes an import all-or-nothing; imports of one tenant are serialised.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import groupby

from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.datasets import repository
from ovencast.datasets.history import (
    ChangeCounts,
    ImportMode,
    RowChange,
    SeriesKind,
    Stored,
    Target,
    change_of,
)
from ovencast.datasets.reader import ParsedDataset, RegressorColumn, SalesRow, SalesTable
from ovencast.db.batches import batches
from ovencast.db.tables import DatasetImport, Tenant
from ovencast.errors import Conflict, NotFound
from ovencast.models import service as models_service


@dataclass(frozen=True)
class ImportSummary:
    tenant: str
    sales_rows: int
    products: int
    regressor_columns: list[str]
    first_date: str
    last_date: str
    import_id: int
    mode: ImportMode
    # What the import did to the stored rows (the values before are in its history).
    sales: ChangeCounts = field(default_factory=ChangeCounts)
    regressors: ChangeCounts = field(default_factory=ChangeCounts)
    # Active versions trained on sales rows the import removed (replace mode).
    warnings: list[str] = field(default_factory=list)


async def import_dataset(session: AsyncSession, tenant: Tenant, dataset: ParsedDataset, *,
                         source: str, mode: ImportMode = ImportMode.MERGE) -> ImportSummary:
    """Store a parsed dataset: merge its rows (default), or replace the history of the
    products and regressor columns it contains. Re-importing the same data changes
    nothing."""
    await repository.lock_tenant(session, tenant.id)
    record = DatasetImport(
        tenant_id=tenant.id, source=source, files=dataset.files, mode=mode,
        sales_rows=len(dataset.sales), first_date=dataset.first_date,
        last_date=dataset.last_date)
    await repository.add_import(session, record)
    history = _History(session, tenant.id, record.id)
    sales = dataset.sales if isinstance(dataset.sales, SalesTable) else SalesTable.of(
        dataset.sales)
    for rows in batches(sales.rows_in_key_order(), repository.KEYS_PER_QUERY):
        await history.apply(SeriesKind.SALES, [_sales_target(r) for r in rows])
    for column in dataset.regressors:
        for targets in batches(_regressor_targets(column), repository.KEYS_PER_QUERY):
            await history.apply(SeriesKind.REGRESSOR, targets)
    if mode is ImportMode.REPLACE:
        await _remove_other_sales(history, sales)
        for column in dataset.regressors:
            await history.remove_all_but(SeriesKind.REGRESSOR, {column.name: set(column.values)})
    history.record_counts(record)
    await session.flush()
    return ImportSummary(
        tenant=tenant.name, sales_rows=len(dataset.sales), products=len(dataset.products),
        regressor_columns=[c.name for c in dataset.regressors],
        first_date=dataset.first_date.isoformat(), last_date=dataset.last_date.isoformat(),
        import_id=record.id, mode=mode, sales=history.counts[SeriesKind.SALES],
        regressors=history.counts[SeriesKind.REGRESSOR],
        warnings=await removal_warnings(session, tenant,
                                        history.counts[SeriesKind.SALES].removed))


async def removal_warnings(session: AsyncSession, tenant: Tenant, sales_removed: int
                           ) -> list[str]:
    """After an import or a restore: when it removed sales rows, the products whose
    active version was trained on some of them (`models.service.trained_past_their_data`);
    nothing to look up otherwise."""
    if sales_removed <= 0:
        return []
    return await models_service.trained_past_their_data(session, tenant)


async def restore_import(session: AsyncSession, tenant: Tenant, import_id: int
                         ) -> DatasetImport:
    """Undo import `import_id` of `tenant`: every row it changed or removed gets its value
    before back, every row it added is deleted. Rows changed again by later imports are
    set back too. The restore is itself an import (`restores_import_id`), with its own
    history, so it can be undone in turn."""
    undone = await get_import(session, tenant, import_id)
    if undone.mode is None:
        raise Conflict(f"import {import_id} was stored before imports kept a history "
                       f"(revision 0008): it cannot be undone")
    await repository.lock_tenant(session, tenant.id)
    record = DatasetImport(
        tenant_id=tenant.id, source=f"restore of import {undone.id}", files={},
        mode=ImportMode.MERGE, restores_import_id=undone.id, sales_rows=0,
        first_date=undone.first_date, last_date=undone.last_date)
    await repository.add_import(session, record)
    history = _History(session, tenant.id, record.id)
    after = 0
    while changes := await repository.changes_of(session, undone.id, after_id=after):
        after = changes[-1].id
        for kind, group in groupby(changes, key=lambda c: c.series):
            await history.apply(kind, [
                Target(c.name, c.date, c.previous, present=c.change is not RowChange.ADDED,
                       source=c.source) for c in group])
    history.record_counts(record)
    await session.flush()
    return record


async def get_import(session: AsyncSession, tenant: Tenant, import_id: int) -> DatasetImport:
    found = await repository.get_import(session, import_id)
    if found is None or found.tenant_id != tenant.id:
        raise NotFound(f"import {import_id} is not one of tenant {tenant.name!r}'s")
    return found


async def list_imports(session: AsyncSession, tenant: Tenant, *, limit: int = 50
                       ) -> Sequence[DatasetImport]:
    """The tenant's imports, newest first, with what each added, changed and removed."""
    return await repository.imports_of(session, tenant.id, limit=limit)


# ---------------------------------------------------------------------------- history
class _History:
    """Applies targets to the stored rows of one tenant for one import, recording each
    row it adds, changes or removes (with the value before) and counting them."""

    def __init__(self, session: AsyncSession, tenant_id: int, import_id: int) -> None:
        self.session, self.tenant_id, self.import_id = session, tenant_id, import_id
        self.counts = {kind: ChangeCounts() for kind in SeriesKind}

    async def apply(self, kind: SeriesKind, targets: Sequence[Target]) -> None:
        """Make the stored rows as the targets say (one target per (name, date))."""
        stored = await repository.stored_rows(self.session, self.tenant_id, kind,
                                              [(t.name, t.day) for t in targets])
        written: list[Target] = []
        removed: list[int] = []
        changes = []
        for target in targets:
            before = stored.get((target.name, target.day))
            change = change_of(target, before)
            if change is None:
                continue
            changes.append(self._change(kind, target, change, before))
            if before is not None and change is RowChange.REMOVED:
                removed.append(before.id)
            else:
                written.append(target)
        await repository.add_changes(self.session, changes)
        await repository.upsert_rows(self.session, self.tenant_id, kind, written)
        await repository.delete_rows(self.session, kind, removed)

    async def remove_all_but(self, kind: SeriesKind, kept: dict[str, set[date]]) -> None:
        """Remove every stored row of these series whose date is not kept (replace)."""
        gone: list[tuple[str, date, Stored]] = []
        async for partition in repository.stored_rows_of(self.session, self.tenant_id, kind,
                                                         sorted(kept)):
            gone.extend(row for row in partition if row[1] not in kept[row[0]])
        for batch in batches(gone, repository.BATCH_ROWS):
            changes = [self._change(kind, Target(name, day, None, present=False),
                                    RowChange.REMOVED, stored) for name, day, stored in batch]
            await repository.add_changes(self.session, changes)
            await repository.delete_rows(self.session, kind, [s.id for _, _, s in batch])

    def _change(self, kind: SeriesKind, target: Target, change: RowChange,
                before: Stored | None) -> dict[str, object]:
        self.counts[kind].count(change)
        return {"import_id": self.import_id, "series": kind, "name": target.name,
                "source": before.source if before is not None else target.source,
                "date": target.day, "change": change,
                "previous": before.value if before is not None else None}

    def record_counts(self, record: DatasetImport) -> None:
        sales, regressors = self.counts[SeriesKind.SALES], self.counts[SeriesKind.REGRESSOR]
        record.sales_added, record.sales_changed = sales.added, sales.changed
        record.sales_removed = sales.removed
        record.regressors_added, record.regressors_changed = (regressors.added,
                                                              regressors.changed)
        record.regressors_removed = regressors.removed


async def _remove_other_sales(history: _History, sales: SalesTable) -> None:
    """Replace: remove the stored sales of the upload's products on other dates, a few
    products at a time (their uploaded dates held as sets meanwhile)."""
    for kept in _dates_by_product(sales.rows_in_key_order()):
        await history.remove_all_but(SeriesKind.SALES, kept)


def _dates_by_product(rows: Iterable[SalesRow]) -> Iterator[dict[str, set[date]]]:
    """{product: its dates} for a few products at a time: at most NAMES_PER_QUERY
    products, and no more once KEYS_PER_QUERY dates are held."""
    chunk: dict[str, set[date]] = {}
    held = 0
    for product, group in groupby(rows, key=lambda r: r.product):
        chunk[product] = {r.date for r in group}
        held += len(chunk[product])
        if held >= repository.KEYS_PER_QUERY or len(chunk) >= repository.NAMES_PER_QUERY:
            yield chunk
            chunk, held = {}, 0
    if chunk:
        yield chunk


def _sales_target(row: SalesRow) -> Target:
    return Target(row.product, row.date, row.quantity)


def _regressor_targets(column: RegressorColumn) -> Iterator[Target]:
    for day in sorted(column.values):
        yield Target(column.name, day, column.values[day], source=column.source)
