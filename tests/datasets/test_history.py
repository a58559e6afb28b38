"""What making a target row true does to a stored row (datasets/history.py)."""

from __future__ import annotations

from datetime import date

import pytest

from ovencast.datasets.history import ChangeCounts, RowChange, Stored, Target, change_of

DAY = date(2024, 1, 1)


@pytest.mark.parametrize(("target", "stored", "expected"), [
    (Target("bread", DAY, 3.0), None, RowChange.ADDED),
    (Target("bread", DAY, 3.0), Stored(1, 3.0), None),
    (Target("bread", DAY, 3.0), Stored(1, 2.0), RowChange.CHANGED),
    (Target("wind", DAY, None), Stored(1, None), None),  # an empty cell stays empty
    (Target("wind", DAY, None), Stored(1, 4.0), RowChange.CHANGED),
    (Target("wind", DAY, 4.0), Stored(1, None), RowChange.CHANGED),
    (Target("bread", DAY, None, present=False), Stored(1, 2.0), RowChange.REMOVED),
    (Target("bread", DAY, None, present=False), None, None),
])
def test_change_of(target: Target, stored: Stored | None, expected: RowChange | None) -> None:
    assert change_of(target, stored) is expected


def test_change_counts() -> None:
    counts = ChangeCounts()
    for change in (RowChange.ADDED, RowChange.ADDED, RowChange.CHANGED, RowChange.REMOVED):
        counts.count(change)
    assert counts == ChangeCounts(added=2, changed=1, removed=1)
