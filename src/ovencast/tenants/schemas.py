"""Request and response bodies of the tenants endpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class TenantCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, examples=["kiel"],
                      description="Unique name; used in URLs, so no '/'")
    country: str | None = Field(default=None, min_length=2, max_length=2, examples=["DE"],
                                description="ISO country code for public holidays")
    subdivision: str | None = Field(default=None, max_length=10, examples=["SH"],
                                    description="Subdivision for regional holidays")
    time_zone: str | None = Field(default=None, max_length=64, examples=["Europe/Berlin"],
                                  description="IANA zone of the data's calendar days "
                                              "(default Europe/Berlin)")


class TenantOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    country: str | None
    subdivision: str | None
    time_zone: str
    created_at: datetime
