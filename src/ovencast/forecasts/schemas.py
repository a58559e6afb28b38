"""Response bodies of the forecasts endpoint."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class ForecastRow(BaseModel):
    date: date
    product: str
    forecast: float = Field(description="point forecast (equals p50)")
    p10: float | None = Field(description="10 % quantile; null for a model version "
                                          "stored without a quantile calibration")
    p50: float = Field(description="median: the point forecast")
    p90: float | None = Field(description="90 % quantile; null like p10")


class ForecastModelOut(BaseModel):
    """The model version a product's forecast came from."""

    product: str
    version: int | None
    family: str | None
    notes: list[str] = Field(
        default_factory=list,
        description="what to know about this product's rows, e.g. dates forecast 0 "
                    "because they lie outside the product's season",
        examples=[["seasonal_bread: forecast 0 on 2018-08-01..2018-08-07: outside its "
                   "season (no sales on these days of the year in 4 years of data)"]])


class ForecastErrorOut(BaseModel):
    """A product that could not be forecast (artifact refused, regressors unknown...)."""

    product: str
    version: int | None
    error: str = Field(examples=["checksum_mismatch"])
    detail: str


class ForecastOut(BaseModel):
    tenant: str
    days: int
    rows: list[ForecastRow]
    models: list[ForecastModelOut]
    errors: list[ForecastErrorOut] = Field(
        description="products that could not be forecast, with the reason; the others "
                    "are still in `rows`")


class ForecastFailedOut(BaseModel):
    """No product could be forecast: the status is that of the products' errors."""

    error: str
    detail: str
    errors: list[ForecastErrorOut]
