"""Response bodies of the datasets endpoints."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DatasetImportOut(BaseModel):
    """What an upload stored (all or nothing)."""

    model_config = ConfigDict(from_attributes=True)

    tenant: str
    sales_rows: int
    products: int
    regressor_columns: list[str]
    first_date: str
    last_date: str
