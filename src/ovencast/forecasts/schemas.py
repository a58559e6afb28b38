"""Response bodies of the forecasts endpoint."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class ForecastRow(BaseModel):
    """One product on one day, in the units of the tenant's sales."""

    date: date
    weekday: str = Field(examples=["Monday"])
    product: str
    forecast: float = Field(description="point forecast (equals p50)")
    p10: float | None = Field(description="10 % quantile; null for a model version "
                                          "stored without a quantile calibration")
    p50: float = Field(description="median: the point forecast")
    p90: float | None = Field(description="90 % quantile; null like p10")
    model: str = Field(description="what the version's selection chose",
                       examples=["lightgbm", "ensemble(lightgbm+tsb)"])
    version: int
    note: str = Field(description="closed (0: the calendar says the shop is closed), "
                                  "off-season (0: outside the product's season), "
                                  "'no sales on this date in past years' (0: a date "
                                  "without sales every year, e.g. 25 December), "
                                  "'not sold on this weekday' (0: not offered on this day "
                                  "of the week lately), or "
                                  "'fallback: <regressors>' (values not supplied for this "
                                  "day, see `fallbacks`); empty otherwise",
                      examples=["", "closed", "fallback: temperature_c, guests"])
    fallback_regressors: list[str] = Field(
        default_factory=list, description="the regressors of this row's model whose value "
                                          "for this day is a fallback")


class FallbackOut(BaseModel):
    """A regressor whose values for some forecast dates were not supplied."""

    regressor: str
    source: str = Field(description="climatology (weather: past years around that day), "
                                    "seasonal_profile (same weekday of past years, scaled "
                                    "to the recent level), last_year (a 0/1 flag's value a "
                                    "year earlier), recent_mean, default (0)")
    dates: list[str] = Field(examples=[["2023-11-01..2023-11-14"]])


class ForecastModelOut(BaseModel):
    """The model version a product's forecast came from."""

    product: str
    version: int | None
    family: str | None
    model: str | None = None
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
    start: date = Field(description="the first forecast date, the same for every product "
                                    "(default: the day after the last sales date)")
    days: int
    last_sales_date: date | None
    rows: list[ForecastRow]
    fallbacks: list[FallbackOut] = Field(
        default_factory=list, description="regressor values the forecast had to fill in")
    notes: list[str] = Field(default_factory=list,
                             description="what to know about the whole forecast")
    models: list[ForecastModelOut]
    errors: list[ForecastErrorOut] = Field(
        description="products that could not be forecast, with the reason; the others "
                    "are still in `rows`")


class ForecastFailedOut(BaseModel):
    """No product could be forecast: the status is that of the products' errors."""

    error: str
    detail: str
    errors: list[ForecastErrorOut]
