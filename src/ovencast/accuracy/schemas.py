"""Response bodies of the accuracy and comparison endpoints."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

from ovencast.models.states import ForecastRole, Standing


class ScoreOut(BaseModel):
    n_days: int = Field(description="scored days (sales known, not closed)")
    wape: float | None
    bias: float | None = Field(description="sum(forecast - sales) / sum(sales); > 0: "
                                           "over-forecast")
    coverage: float | None = Field(description="share of days with P10 <= sales <= P90 "
                                               "(80 % expected)")
    naive_wape: float | None = Field(description="the weekly seasonal naive forecast from "
                                                 "the same sales, same days")
    naive_days: int


class VersionAccuracyOut(BaseModel):
    version: int
    role: ForecastRole
    overall: ScoreOut
    by_lead: dict[str, ScoreOut] = Field(description="lead time (days after the run's "
                                                     "origin): 1-7, 8-14, 15-28, 29+")


class ProductAccuracyOut(BaseModel):
    product: str
    overall: ScoreOut = Field(description="the champions' forecasts: what was answered")
    versions: list[VersionAccuracyOut]
    first_day: date
    last_day: date
    recent_wape: float | None = Field(description="the champions' WAPE over the last 4 "
                                                  "weeks of scored days")
    recent_days: int
    backtest_wape: float | None = Field(description="the WAPE expected from the backtest "
                                                    "of the version that made the latest "
                                                    "forecast")
    drift: str | None = Field(description="warning: recent WAPE above DRIFT_FACTOR times "
                                          "the backtest WAPE")


class AccuracyOut(BaseModel):
    tenant: str
    product: str | None
    since: date | None
    stored_rows: int = Field(description="stored forecast rows considered (scored or not)")
    products: list[ProductAccuracyOut]
    warnings: list[str]


class ComparisonOut(BaseModel):
    """A challenger version against the champion on the days both forecast."""

    product: str
    challenger_version: int
    standing: Standing | None = Field(description="the challenger version's standing now")
    champion_versions: list[int]
    first_day: date | None
    last_day: date | None
    n_days: int
    champion_wape: float | None
    challenger_wape: float | None
    mean_difference: float | None = Field(description="mean of |champion error| - "
                                                      "|challenger error|: > 0, the "
                                                      "challenger is better")
    statistic: float | None = Field(description="Diebold-Mariano statistic (HLN-corrected)")
    p_value: float | None
    alpha: float
    significant: bool
    winner: ForecastRole | None
    verdict: str


class PromotedOut(BaseModel):
    product: str
    version: int
    previous: int | None


class ComparisonsOut(BaseModel):
    tenant: str
    comparisons: list[ComparisonOut]
    promoted: list[PromotedOut] = Field(default_factory=list)
