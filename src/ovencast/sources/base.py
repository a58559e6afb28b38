"""The data-source interface: where a tenant's sales and regressors come from.

Two implementations, chosen by settings (`sources.service.open_data_source`):
`DatabaseSource` (embedded shape: what `ovencast import` stored) and `HttpSource`
(service shape: the sales, weather and traffic services, docs/UPSTREAM.md). Both are run
against one contract test suite (tests/sources/test_source_contract.py).

Guarantees of every implementation:
- `load` returns `sales` as a long frame `product, date, quantity` (date datetime64,
  naive local days; quantity float), sorted by product and date; only dates <= `until`
  and only `products` when given. `regressors` is a wide frame `date` + numeric columns
  (float, NaN where a value is missing), one row per date, sorted by date, columns in
  name order, for every date the sources have (not clipped to `until`: forecasting needs
  the future); `regressor_sources` maps each column to weather, traffic or calendar.
- A source that cannot deliver sales raises (an `OvencastError`); it never returns an
  empty frame for a failure. Weather or traffic that cannot be had are left out and said
  in `warnings`, one line each.
- Unknown tenant: `TenantNotFound` (database) or `UpstreamNotFound` (HTTP), both 404.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from types import TracebackType
from typing import Self

import pandas as pd

SALES_COLUMNS = ["product", "date", "quantity"]


@dataclass(frozen=True)
class TenantProfile:
    """What a source knows about a tenant: enough to create it on first use."""

    name: str
    products: list[str]
    country: str | None = None
    subdivision: str | None = None
    time_zone: str | None = None


@dataclass(frozen=True)
class SourceData:
    sales: pd.DataFrame  # product, date, quantity
    regressors: pd.DataFrame  # date + numeric columns
    regressor_sources: dict[str, str]  # column -> weather | traffic | calendar
    warnings: list[str] = field(default_factory=list)
    # Names this exact content (the database source: the tenant's data version), so
    # what is derived from it may be kept; None: unknown, derive again each time.
    version: str | None = None
    # The regressor columns in the order the tenant's files gave them, where the source
    # knows it (the database source: `datasets.repository.regressor_column_order`);
    # `regressors` may hold them in another order.
    regressor_order: tuple[str, ...] = ()


def empty_sales() -> pd.DataFrame:
    frame = pd.DataFrame({"product": pd.Series([], dtype=object),
                          "date": pd.Series([], dtype="datetime64[ns]"),
                          "quantity": pd.Series([], dtype=float)})
    return frame


def empty_regressors() -> pd.DataFrame:
    return pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]")})


class DataSource(abc.ABC):
    """Where a tenant's data comes from. Use as `async with source:` (an HTTP source
    holds connections; the database source holds nothing)."""

    kind: str  # "database" | "upstream"
    # True when the source knows tenants the database does not: the caller creates the
    # tenant on first use from `describe_tenant` (sources.service.resolve_tenant).
    creates_tenants: bool = False

    @abc.abstractmethod
    async def describe_tenant(self, tenant_name: str) -> TenantProfile:
        """The tenant's profile; raises a 404 error when the source does not know it."""

    @abc.abstractmethod
    async def list_products(self, tenant_name: str) -> list[str]:
        """The tenant's products with sales, sorted."""

    @abc.abstractmethod
    async def load(self, tenant_name: str, *, until: date | None = None,
                   products: Sequence[str] | None = None) -> SourceData:
        """Sales (<= until, only `products` when given) and every regressor."""

    @abc.abstractmethod
    async def regressors(self, tenant_name: str) -> SourceData:
        """Every regressor, no sales: what forecasting with trained models needs."""

    @abc.abstractmethod
    async def last_sales_date(self, tenant_name: str) -> date | None:
        """The tenant's last day with a sales row (None: no sales): where its forecasts
        start by default."""

    async def data_version(self, tenant_name: str) -> int | None:
        """What names the tenant's data as it is now (the database source: its newest
        import), recorded on a job; None where the source has no such version (upstream
        services)."""
        return None

    async def aclose(self) -> None:  # noqa: B027 - nothing to release by default
        """Release connections."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()
