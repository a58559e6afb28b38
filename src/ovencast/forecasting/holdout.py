"""The holdout policy: which part of a product's history scores a model."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ovencast.forecasting.frame import DATE

DEFAULT_HOLDOUT_DAYS = 28
"""Four weeks: every weekday four times, short enough to leave most history for fitting."""


@dataclass(frozen=True, slots=True)
class HoldoutSplit:
    """Hold out the last `days` *calendar* days of a history (not the last n rows: with
    gaps and closed days, n rows can reach back much further than n days)."""

    days: int = DEFAULT_HOLDOUT_DAYS

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"holdout days must be >= 1, got {self.days}")

    def cutoff(self, history: pd.DataFrame) -> pd.Timestamp:
        """First date of the holdout: the history's last date minus `days - 1`."""
        if history.empty:
            raise ValueError("cannot split an empty history")
        last = pd.Timestamp(history[DATE].max())
        return last - pd.Timedelta(days=self.days - 1)

    def split(self, history: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(train, test): rows before `cutoff` and rows from it on, each in the input's
        row order with its index reset. Either may be empty (a short history)."""
        is_test = history[DATE] >= self.cutoff(history)
        train = history.loc[~is_test].reset_index(drop=True)
        test = history.loc[is_test].reset_index(drop=True)
        return train, test
