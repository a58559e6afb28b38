"""The HTTP contract of the upstream services (docs/UPSTREAM.md), shared by the clients
(`sources/http.py`) and the local data server (`testing/upstream_server.py`) so the two cannot
drift apart.

Every service answers JSON. Resource paths are distinct per service, so the three
services may live on three hosts or on one (the data server serves all of them):

| path | service |
| --- | --- |
| `GET /tenants/{tenant}` | sales (the tenant's profile and products) |
| `GET /tenants/{tenant}/sales` | sales |
| `GET /tenants/{tenant}/calendar` | sales (the shop's own calendar: holidays, opening) |
| `GET /tenants/{tenant}/weather` | weather |
| `GET /tenants/{tenant}/traffic` | traffic |
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

SERVICES: tuple[str, ...] = ("sales", "weather", "traffic")
ServiceName = Literal["sales", "weather", "traffic"]
# Series resources: wide rows of `date` and numeric columns.
SeriesName = Literal["calendar", "weather", "traffic"]
SERIES_SERVICE: dict[str, str] = {"calendar": "sales", "weather": "weather",
                                  "traffic": "traffic"}

# A server sends at most this many rows per page, whatever `limit` asks for.
MAX_PAGE_SIZE = 10_000
DEFAULT_PAGE_SIZE = 1_000

# Error codes of the `{"error": ..., "detail": ...}` body.
ERROR_UNKNOWN_TENANT = "unknown_tenant"
ERROR_BAD_REQUEST = "bad_request"
ERROR_NOT_FOUND = "not_found"
ERROR_UNAVAILABLE = "unavailable"
ERROR_INTERNAL = "internal"


def tenant_path(tenant: str) -> str:
    return f"/tenants/{quote(tenant, safe='')}"


def sales_path(tenant: str) -> str:
    return f"{tenant_path(tenant)}/sales"


def series_path(tenant: str, series: str) -> str:
    return f"{tenant_path(tenant)}/{series}"


def service_of_path(path: str) -> str | None:
    """Which service a request path belongs to (None: not a contract path)."""
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] != "tenants" or len(parts) not in (2, 3):
        return None
    if len(parts) == 2:
        return "sales"
    return {"sales": "sales", **SERIES_SERVICE}.get(parts[2])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class ErrorBody(_Strict):
    error: str
    detail: str = ""


class TenantProfile(_Strict):
    """`GET /tenants/{tenant}` on the sales service."""

    tenant: str
    country: str | None = None
    subdivision: str | None = None
    time_zone: str | None = None
    products: list[str]
    first_date: date | None = None
    last_date: date | None = None


class SalesRow(_Strict):
    date: date
    product: str = Field(min_length=1)
    quantity: float = Field(ge=0)


class SalesPage(_Strict):
    """`GET /tenants/{tenant}/sales?start=&end=&product=&limit=&cursor=`"""

    tenant: str
    rows: list[SalesRow]
    next_cursor: str | None = None


@dataclass(frozen=True)
class SeriesRow:
    """One parsed row: its date, its values, and for a forecast the time it was issued
    (tz-aware; None for a measured value)."""

    day: date
    values: dict[str, float | None]
    issued_at: datetime | None = None


class SeriesPage(_Strict):
    """`GET /tenants/{tenant}/{calendar|weather|traffic}?start=&end=&limit=&cursor=`.
    Each row has `date` and every name in `columns` (a number, or null: no value); a
    forecast row also has `issued_at` (ISO 8601 with its UTC offset). A date may have
    several forecast rows (one per issue) beside its measured one."""

    tenant: str
    columns: list[str]
    rows: list[dict[str, Any]]
    next_cursor: str | None = None

    def parsed_rows(self) -> list[SeriesRow]:
        """The rows; ValueError naming the row and column of the first cell that breaks
        the contract."""
        if "date" in self.columns or len(set(self.columns)) != len(self.columns):
            raise ValueError(f"columns {self.columns} repeat a name or contain 'date'")
        out: list[SeriesRow] = []
        for index, row in enumerate(self.rows):
            raw_day = row.get("date")
            try:
                day = date.fromisoformat(raw_day) if isinstance(raw_day, str) else None
            except ValueError:
                day = None
            if day is None:
                raise ValueError(f"rows[{index}].date: {raw_day!r} is not an ISO date")
            values: dict[str, float | None] = {}
            for column in self.columns:
                if column not in row:
                    raise ValueError(f"rows[{index}] ({day}): column {column!r} is missing")
                value = row[column]
                if value is not None and (isinstance(value, bool)
                                          or not isinstance(value, int | float)
                                          or not math.isfinite(value)):
                    raise ValueError(f"rows[{index}] ({day}).{column}: {value!r} is not a "
                                     f"number or null")
                values[column] = None if value is None else float(value)
            out.append(SeriesRow(day, values, _issued_at(row.get("issued_at"), index, day)))
        return out


def _issued_at(raw: Any, index: int, day: date) -> datetime | None:
    if raw is None:
        return None
    try:
        issued = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        issued = None
    if issued is None or issued.tzinfo is None:
        raise ValueError(f"rows[{index}] ({day}).issued_at: {raw!r} is not an ISO 8601 "
                         "timestamp with its UTC offset")
    return issued
