"""The holdout policy: which part of a product's history scores a model."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ovencast.forecasting.frame import CLOSED, DATE

DEFAULT_HOLDOUT_DAYS = 28
"""Four weeks: every weekday four times, short enough to leave most history for fitting."""
MIN_HOLDOUT_DAYS = 7
"""The shortest holdout a short history gets (`HoldoutSplit.fitting`): every weekday once."""


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

    def fitting(self, history: pd.DataFrame, min_train_open_days: int) -> HoldoutSplit:
        """This split, or for a history too short to leave `min_train_open_days` open
        days before it (SPEC trains a product from 30 days of data; 28 held out would
        leave too few), the longest one of at least MIN_HOLDOUT_DAYS that does. Unchanged
        when even that is too long: the caller's check then says why."""
        if history.empty or self.days <= MIN_HOLDOUT_DAYS:
            return self
        open_dates = pd.DatetimeIndex(history.loc[~history[CLOSED].astype(bool), DATE])
        last = pd.Timestamp(history[DATE].max())
        for days in range(self.days, MIN_HOLDOUT_DAYS - 1, -1):
            if int((open_dates < last - pd.Timedelta(days=days - 1)).sum()) \
                    >= min_train_open_days:
                return self if days == self.days else HoldoutSplit(days)
        return self

    def split(self, history: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(train, test): rows before `cutoff` and rows from it on, each in the input's
        row order with its index reset. Either may be empty (a short history)."""
        is_test = history[DATE] >= self.cutoff(history)
        train = history.loc[~is_test].reset_index(drop=True)
        test = history.loc[is_test].reset_index(drop=True)
        return train, test
