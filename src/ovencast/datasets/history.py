"""What an import does to the stored data, and how it is kept: the import's mode, and
for every stored row it adds, changes or removes one history row with the value before
(`dataset_import_changes`), so that the previous data stays recoverable and an import
can be undone (`ovencast imports restore`).

A row is a value of a series (a product's sales, a regressor column) on a day. Pure:
no database code here; datasets/service.py applies it, datasets/repository.py stores it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class ImportMode(StrEnum):
    """merge (default): the upload's rows are inserted or updated, nothing else changes.
    replace: the history of every product (and regressor column) in the upload becomes
    exactly the upload's rows; its other stored rows are removed."""

    MERGE = "merge"
    REPLACE = "replace"


class SeriesKind(StrEnum):
    """Which stored rows a history row is about: a product's sales or a regressor
    column's values."""

    SALES = "sales"
    REGRESSOR = "regressor"


class RowChange(StrEnum):
    """What an import did to one stored row: added (there was none; undo deletes it),
    changed or removed (the value before is kept; undo puts it back)."""

    ADDED = "added"
    CHANGED = "changed"
    REMOVED = "removed"


@dataclass(frozen=True)
class Target:
    """A stored row as an import wants it: `present` with `value` (None: an empty
    regressor cell), or absent. `source` is a regressor column's file kind."""

    name: str  # product or regressor column
    day: date
    value: float | None
    present: bool = True
    source: str | None = None


@dataclass(frozen=True)
class Stored:
    """A stored row as it is (`source`: a regressor column's)."""

    id: int
    value: float | None
    source: str | None = None


def change_of(target: Target, stored: Stored | None) -> RowChange | None:
    """What making `target` true does to the row `stored` (None: no stored row); None
    when nothing changes."""
    if not target.present:
        return None if stored is None else RowChange.REMOVED
    if stored is None:
        return RowChange.ADDED
    return None if stored.value == target.value else RowChange.CHANGED


@dataclass
class ChangeCounts:
    """Rows an import added, changed and removed, of one kind of series."""

    added: int = 0
    changed: int = 0
    removed: int = 0

    def count(self, change: RowChange) -> None:
        if change is RowChange.ADDED:
            self.added += 1
        elif change is RowChange.CHANGED:
            self.changed += 1
        else:
            self.removed += 1
