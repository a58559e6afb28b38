"""Column names and shape of the frames the core exchanges.

History frame of one product (what a model is fitted on): one row per *observed* date
(gaps stay gaps, a missing date is never a zero), columns

    date    datetime64[ns], naive, the tenant's local calendar day
    y       float64, quantity sold (>= 0)
    closed  bool, the calendar says the shop was closed that day (y is then 0)
    <regressor columns>  float64, no NaN in the columns a model uses

Future frame (what a model predicts for): one row per requested date, columns `date`,
`closed` and the regressor columns, no `y`.

The long frame of a tenant is the history frames of all products stacked, plus a
`product` column.
"""

from __future__ import annotations

import pandas as pd

DATE = "date"
PRODUCT = "product"
Y = "y"
CLOSED = "closed"
YHAT = "forecast"

RESERVED_COLUMNS = frozenset({DATE, PRODUCT, Y, CLOSED, YHAT})

ZERO_SALES = "zero_sales"
"""`details["closed_days"]` of a model version fitted on `closed_days_as_zero_sales`
frames: its forecasts are made on such frames too."""


def closed_days_as_zero_sales(frame: pd.DataFrame) -> pd.DataFrame:
    """A history or future frame as the original approach sees it: its closed days are
    ordinary days with zero sales (y stays 0), fitted and forecast like any other day,
    the `opening_hours` regressor telling them apart. Without this a model never sees a
    closed day and forecasts exactly 0 on one (`families.base`)."""
    return frame.assign(**{CLOSED: False})
