"""Splitting a long list of values into statements the drivers accept: asyncpg refuses
more than 32,767 bind parameters per statement, SQLite more than 32,766."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

IDS_PER_QUERY = 10_000
"""Values of one `IN (...)`: far below the parameter limits, with room for the rest of
the statement's parameters."""


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of at most `size` (itertools.batched is Python 3.12+)."""
    if size < 1:
        raise ValueError("batch size must be >= 1")
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
