"""SPEC "Data rules" on a tenant's long frame, as one pure function.

`validate_sales` never raises for bad data: it returns a `ValidationReport` with errors
(which stop training of that product only) and warnings (shown to the user), plus
per-product statistics. The report round-trips through JSON (`to_dict` / `from_dict`)
because it is stored with each training job.

Counting rules:
- a *data point* is an observed open day: a row of the long frame whose `closed` flag is
  not set. Closed days are known in advance and not demand observations; missing dates
  are gaps, never zeros (see `ovencast.forecasting.frame`).
- the zero ratio is the share of data points with y == 0.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import numpy as np
import pandas as pd

from ovencast.forecasting.classes import ClassThresholds, ProductClass
from ovencast.forecasting.frame import CLOSED, DATE, PRODUCT, Y

ZERO_RATIO_ERROR = 0.90
"""Zero ratio above which a product cannot be trained (error)."""
ZERO_RATIO_WARNING = 0.70
"""Zero ratio above which a product gets a warning."""
STALE_DAYS = 28
"""Days a product's data may end before the tenant's before it gets a warning: its
forecasts start from old data (discontinued? or its recent rows missing?)."""

# Rule names, stable: stored in reports and matched by the UI.
RULE_MIN_DAYS = "min_days"
RULE_RECOMMENDED_DAYS = "recommended_days"
RULE_ZERO_RATIO = "zero_ratio"
RULE_INVALID_QUANTITY = "invalid_quantity"
RULE_DUPLICATE_DATES = "duplicate_dates"
RULE_NO_DATA = "no_data"
RULE_SINGLE_PRODUCT = "single_product"
RULE_IDENTICAL_SERIES = "identical_series"
RULE_STALE = "stale"

IssueLevel = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding. `product` is None for tenant-level findings."""

    level: IssueLevel
    product: str | None
    rule: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "product": self.product,
            "rule": self.rule,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Issue:
        level = value["level"]
        if level not in ("error", "warning"):
            raise ValueError(f"unknown issue level {level!r}")
        return cls(
            level=level, product=value["product"], rule=value["rule"], message=value["message"]
        )


@dataclass(frozen=True, slots=True)
class ProductStats:
    """Statistics of one product. Values are over data points (observed open days);
    mean/std/zero_ratio are NaN and dates None when there is none."""

    first_date: date | None
    last_date: date | None
    n_days: int
    """Data points: observed open days."""
    n_closed_days: int
    n_missing_dates: int
    """Dates between first_date and last_date without any row (gaps)."""
    zero_ratio: float
    mean: float
    std: float
    product_class: ProductClass

    def to_dict(self) -> dict[str, Any]:
        return {
            "first_date": None if self.first_date is None else self.first_date.isoformat(),
            "last_date": None if self.last_date is None else self.last_date.isoformat(),
            "n_days": self.n_days,
            "n_closed_days": self.n_closed_days,
            "n_missing_dates": self.n_missing_dates,
            "zero_ratio": _json_float(self.zero_ratio),
            "mean": _json_float(self.mean),
            "std": _json_float(self.std),
            "product_class": self.product_class.value,
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> ProductStats:
        return cls(
            first_date=_from_json_date(value["first_date"]),
            last_date=_from_json_date(value["last_date"]),
            n_days=int(value["n_days"]),
            n_closed_days=int(value["n_closed_days"]),
            n_missing_dates=int(value["n_missing_dates"]),
            zero_ratio=_from_json_float(value["zero_ratio"]),
            mean=_from_json_float(value["mean"]),
            std=_from_json_float(value["std"]),
            product_class=ProductClass(value["product_class"]),
        )


@dataclass(frozen=True, slots=True)
class ValidationReport:
    issues: tuple[Issue, ...]
    products: dict[str, ProductStats] = field(default_factory=dict)

    @property
    def has_errors(self) -> bool:
        return any(issue.level == "error" for issue in self.issues)

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(issue for issue in self.issues if issue.level == "error")

    @property
    def warnings(self) -> tuple[Issue, ...]:
        return tuple(issue for issue in self.issues if issue.level == "warning")

    def errors_for(self, product: str) -> tuple[Issue, ...]:
        """Errors of one product (these stop its training)."""
        return tuple(i for i in self.issues if i.level == "error" and i.product == product)

    def issues_for(self, product: str | None) -> tuple[Issue, ...]:
        """All issues of one product (None: the tenant-level issues)."""
        return tuple(i for i in self.issues if i.product == product)

    @property
    def trainable_products(self) -> tuple[str, ...]:
        """Products without errors, sorted by name."""
        return tuple(p for p in sorted(self.products) if not self.errors_for(p))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: NaN becomes None, dates ISO strings."""
        return {
            "issues": [issue.to_dict() for issue in self.issues],
            "products": {name: stats.to_dict() for name, stats in self.products.items()},
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> ValidationReport:
        return cls(
            issues=tuple(Issue.from_dict(i) for i in value["issues"]),
            products={n: ProductStats.from_dict(s) for n, s in value["products"].items()},
        )


def _fingerprint(rows: pd.DataFrame) -> bytes:
    """A digest of a product's series (dates, values, closed days; rows sorted by date):
    equal for identical series. A digest, not the values: a tuple of every row's values,
    held for every product, grew with a chain's whole data (docs/BENCHMARKS.md, "Scale")."""
    digest = hashlib.sha256()
    for column, dtype in ((DATE, "datetime64[ns]"), (Y, "float64"), (CLOSED, "bool")):
        digest.update(np.ascontiguousarray(rows[column].to_numpy(dtype=dtype)).tobytes())
    return digest.digest()


def validate_sales(
    sales: pd.DataFrame,
    *,
    min_days: int,
    recommended_days: int,
    class_thresholds: ClassThresholds | None = None,
) -> ValidationReport:
    """Check a tenant's long frame (columns product, date, y, closed) against the data rules.

    Per product: fewer than `min_days` data points is an error, fewer than
    `recommended_days` a warning; a zero ratio above ZERO_RATIO_ERROR an error, above
    ZERO_RATIO_WARNING a warning; NaN or negative y, or a date given twice, is an error.
    Tenant: no rows at all is an error; a single product, or products with identical
    series (same dates, same values, same closed days), is a warning; so is a product
    whose data ends more than STALE_DAYS before the tenant's.
    Raises ValueError only when a column is missing.
    """
    missing = [c for c in (PRODUCT, DATE, Y, CLOSED) if c not in sales.columns]
    if missing:
        raise ValueError(f"sales frame lacks columns {missing}")
    thresholds = class_thresholds or ClassThresholds()
    issues: list[Issue] = []
    products: dict[str, ProductStats] = {}
    fingerprints: dict[bytes, list[str]] = {}

    frame = sales[[PRODUCT, DATE, Y, CLOSED]].copy()
    frame[DATE] = pd.to_datetime(frame[DATE]).dt.normalize()
    frame[CLOSED] = frame[CLOSED].fillna(False).astype(bool)
    frame[Y] = pd.to_numeric(frame[Y], errors="coerce")

    rows_of: dict[str, pd.DataFrame] = {}
    for product, rows in frame.groupby(PRODUCT, sort=True):
        name = str(product)
        rows = rows.sort_values(DATE)
        rows_of[name] = rows
        products[name] = _product_stats(rows, thresholds)
        issues.extend(_product_issues(name, rows, products[name], min_days, recommended_days))
        fingerprints.setdefault(_fingerprint(rows), []).append(name)

    if not products:
        issues.append(Issue("error", None, RULE_NO_DATA, "the tenant has no sales rows"))
    elif len(products) == 1:
        only = next(iter(products))
        issues.append(
            Issue(
                "warning",
                None,
                RULE_SINGLE_PRODUCT,
                f"the tenant has a single product ({only}); forecasts of one product "
                "cannot borrow strength from others",
            )
        )
    issues.extend(_stale_products(products, rows_of))
    for names in fingerprints.values():
        if len(names) > 1:
            issues.append(
                Issue(
                    "warning",
                    None,
                    RULE_IDENTICAL_SERIES,
                    f"products {', '.join(names)} have identical sales series; "
                    "check the import for a duplicated product",
                )
            )
    return ValidationReport(issues=tuple(issues), products=products)


def _stale_products(products: dict[str, ProductStats],
                    rows_of: dict[str, pd.DataFrame]) -> list[Issue]:
    """A warning for each product whose data ends more than STALE_DAYS before the
    tenant's: its forecast of the tenant's next days starts from old data. Not for a
    product whose off-season (forecasting/season.py) holds the tenant's last date: it is
    out of season now, as in past years (Kiel's Christmas bread in July)."""
    from ovencast.forecasting.season import off_season_of

    ends = {name: stats.last_date for name, stats in products.items()
            if stats.last_date is not None}
    if not ends:
        return []
    tenant_end = max(ends.values())
    issues = []
    for name, end in sorted(ends.items()):
        if (tenant_end - end).days <= STALE_DAYS:
            continue
        season = off_season_of(rows_of[name])
        if season is not None and season.mask(pd.DatetimeIndex([tenant_end]))[0]:
            continue
        issues.append(Issue(
            "warning", name, RULE_STALE,
            f"no sales row for {(tenant_end - end).days} days: its data ends {end}, the "
            f"tenant's {tenant_end} (no longer sold, or its recent rows missing from the "
            "import?)"))
    return issues


def _product_stats(rows: pd.DataFrame, thresholds: ClassThresholds) -> ProductStats:
    open_rows = rows.loc[~rows[CLOSED]]
    y = open_rows[Y].to_numpy(dtype=float)
    y_valid = y[~np.isnan(y)]
    unique_dates = pd.DatetimeIndex(rows[DATE].unique())
    if len(unique_dates):
        first, last = unique_dates.min(), unique_dates.max()
        span_days = (last - first).days + 1
        first_date: date | None = first.date()
        last_date: date | None = last.date()
        n_missing = span_days - len(unique_dates)
    else:
        first_date = last_date = None
        n_missing = 0
    return ProductStats(
        first_date=first_date,
        last_date=last_date,
        n_days=len(open_rows),
        n_closed_days=int(rows[CLOSED].sum()),
        n_missing_dates=int(n_missing),
        zero_ratio=float(np.mean(y_valid == 0)) if y_valid.size else math.nan,
        mean=float(np.mean(y_valid)) if y_valid.size else math.nan,
        std=float(np.std(y_valid, ddof=1)) if y_valid.size > 1 else math.nan,
        product_class=thresholds.classify(y_valid),
    )


def _product_issues(
    name: str,
    rows: pd.DataFrame,
    stats: ProductStats,
    min_days: int,
    recommended_days: int,
) -> list[Issue]:
    issues: list[Issue] = []
    n_invalid = int((rows[Y].isna() | (rows[Y] < 0)).sum())
    if n_invalid:
        issues.append(
            Issue(
                "error",
                name,
                RULE_INVALID_QUANTITY,
                f"{n_invalid} rows have a missing or negative quantity",
            )
        )
    duplicated = rows.loc[rows[DATE].duplicated(), DATE]
    if not duplicated.empty:
        shown = ", ".join(d.date().isoformat() for d in duplicated.unique()[:5])
        issues.append(
            Issue(
                "error",
                name,
                RULE_DUPLICATE_DATES,
                f"{duplicated.nunique()} dates appear more than once (e.g. {shown})",
            )
        )
    if stats.n_days < min_days:
        issues.append(
            Issue(
                "error",
                name,
                RULE_MIN_DAYS,
                f"{stats.n_days} daily data points; at least {min_days} are needed to train",
            )
        )
    elif stats.n_days < recommended_days:
        issues.append(
            Issue(
                "warning",
                name,
                RULE_RECOMMENDED_DAYS,
                f"{stats.n_days} daily data points; recommended {recommended_days}+",
            )
        )
    if not math.isnan(stats.zero_ratio):
        share = f"{stats.zero_ratio:.1%} of open days have zero sales"
        if stats.zero_ratio > ZERO_RATIO_ERROR:
            issues.append(
                Issue("error", name, RULE_ZERO_RATIO, f"{share} (more than {ZERO_RATIO_ERROR:.0%})")
            )
        elif stats.zero_ratio > ZERO_RATIO_WARNING:
            issues.append(
                Issue(
                    "warning",
                    name,
                    RULE_ZERO_RATIO,
                    f"{share} (more than {ZERO_RATIO_WARNING:.0%})",
                )
            )
    return issues


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _from_json_float(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _from_json_date(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)
