"""Shared fixtures of the forecasting core tests: real data and tiny generated series."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ovencast.forecasting.families.base import FitContext, ForecastModel
from ovencast.forecasting.families.registry import FAMILY_CLASSES
from ovencast.forecasting.features import AlignmentReport, build_tenant_frame
from ovencast.forecasting.frame import CLOSED, DATE, PRODUCT, Y


class _Oracle(ForecastModel):
    """Test family that forecasts its one regressor: perfect when the regressor is y."""

    family = "test_oracle"

    def _fit(self, history: pd.DataFrame, context: FitContext) -> None:
        pass

    def _predict(self, future: pd.DataFrame) -> np.ndarray:
        return future[self.regressors[0]].to_numpy(dtype=float)

    def _state(self) -> dict[str, Any]:
        return {}

    def _restore(self, state: Mapping[str, Any]) -> None:
        pass


@pytest.fixture
def oracle_family(monkeypatch: pytest.MonkeyPatch) -> str:
    """Registers the test family for one test; `kiel_dir`/`northsea_dir` come from the
    root conftest."""
    monkeypatch.setitem(FAMILY_CLASSES, _Oracle.family, f"{__name__}:_Oracle")
    return _Oracle.family


def _read_regressors(directory: Path, names: Sequence[str]) -> pd.DataFrame:
    frames = [pd.read_csv(directory / f"{name}.csv") for name in names]
    merged = frames[0]
    for frame in frames[1:]:
        merged = merged.merge(frame, on="date", how="outer")
    return merged


@pytest.fixture(scope="session")
def kiel_regressors(kiel_dir: Path) -> pd.DataFrame:
    return _read_regressors(kiel_dir, ["weather", "calendar"])


@pytest.fixture(scope="session")
def kiel_tenant(
    kiel_dir: Path, kiel_regressors: pd.DataFrame
) -> tuple[pd.DataFrame, AlignmentReport]:
    sales = pd.read_csv(kiel_dir / "sales.csv")
    return build_tenant_frame(sales, kiel_regressors, country="DE", subdivision="SH")


@pytest.fixture(scope="session")
def northsea_tenant(northsea_dir: Path) -> tuple[pd.DataFrame, AlignmentReport]:
    sales = pd.read_csv(northsea_dir / "sales.csv")
    regressors = _read_regressors(northsea_dir, ["weather", "traffic", "calendar"])
    return build_tenant_frame(sales, regressors, country="DE", subdivision="NI")


def _history_of(tenant: pd.DataFrame, product: str) -> pd.DataFrame:
    """One product's history frame out of a tenant's long frame."""
    rows = tenant.loc[tenant[PRODUCT] == product].drop(columns=[PRODUCT])
    assert not rows.empty, f"no product {product}"
    return rows.reset_index(drop=True)


@pytest.fixture(scope="session")
def kiel_bread(kiel_tenant: tuple[pd.DataFrame, AlignmentReport]) -> pd.DataFrame:
    """History frame of Kiel's `bread` (EUR per day), with all used regressors."""
    return _history_of(kiel_tenant[0], "bread")


HistoryFactory = Callable[..., pd.DataFrame]


@pytest.fixture
def make_history() -> HistoryFactory:
    """Build a history frame from values, one per day from `start` (2024-01-01, a
    Monday). `None` in `values` is a missing date (no row); `closed` lists positions of
    closed days (y must be 0 there). Extra keyword lists become regressor columns."""

    def build(
        values: Sequence[float | None],
        *,
        start: str = "2024-01-01",
        closed: Sequence[int] = (),
        **regressors: Sequence[float],
    ) -> pd.DataFrame:
        dates = pd.date_range(start, periods=len(values), freq="D")
        frame = pd.DataFrame(
            {
                DATE: dates,
                Y: [float("nan") if v is None else float(v) for v in values],
                CLOSED: [i in set(closed) for i in range(len(values))],
                **{name: list(map(float, column)) for name, column in regressors.items()},
            }
        )
        return frame.loc[frame[Y].notna()].reset_index(drop=True)

    return build
