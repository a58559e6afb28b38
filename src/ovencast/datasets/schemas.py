"""Response bodies of the datasets endpoints."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ovencast.datasets.history import ImportMode


class ChangeCountsOut(BaseModel):
    """Stored rows an import added, changed and removed (the values before are kept in
    its history)."""

    model_config = ConfigDict(from_attributes=True)

    added: int
    changed: int
    removed: int


class DatasetImportOut(BaseModel):
    """What an upload stored (all or nothing)."""

    model_config = ConfigDict(from_attributes=True)

    tenant: str
    sales_rows: int
    products: int
    regressor_columns: list[str]
    first_date: str
    last_date: str
    import_id: int = Field(description="the import's id in the import history")
    mode: ImportMode
    sales: ChangeCountsOut
    regressors: ChangeCountsOut
    warnings: list[str] = Field(
        default_factory=list, description="products whose active version was trained on "
        "sales rows the upload removed (replace): it forecasts only the days after its "
        "own data until retrained")
