"""Forecasting a tenant's days ahead from the active model versions: one window for every
product (default: from the day after the tenant's last sales date), regressor values for
those days from what the tenant supplied, the calendar or a fallback learned from its
history (forecasting/future.py), never a refusal for a missing one."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from cachetools import LRUCache
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.db.tables import ModelVersion, Tenant
from ovencast.errors import (
    ForecastUnavailable,
    InvalidRequest,
    ModelNotFound,
    OvencastError,
)
from ovencast.forecasting.families.base import ForecastModel
from ovencast.forecasting.features import (
    ORIGINAL_PREPARATION,
    format_date_range,
    regressors_as_original,
    runs_of_dates,
)
from ovencast.forecasting.frame import (
    CLOSED,
    DATE,
    PRODUCT,
    YHAT,
    ZERO_SALES,
    closed_days_as_zero_sales,
)
from ovencast.forecasting.future import FutureRegressors, future_regressors
from ovencast.forecasting.quantiles import QuantileCalibration
from ovencast.forecasting.season import (
    HolidayClosures,
    OffSeason,
    OffWeekdays,
    YearlyClosures,
)
from ovencast.forecasting.validation import STALE_DAYS
from ovencast.models import repository as models_repository
from ovencast.models.service import load_verified
from ovencast.settings import Settings
from ovencast.sources.base import DataSource, SourceData
from ovencast.sources.database import DatabaseSource
from ovencast.store import ModelStore, store_for

T = TypeVar("T")

MAX_FORECAST_DAYS = 366
MAX_START_AHEAD_DAYS = 366
"""A forecast starts at most this many days after the tenant's last sales date: further
ahead no model has anything left to say, and the recursive ones would run for minutes."""
P10, P50, P90 = "p10", "p50", "p90"
QUANTILE_COLUMNS = (P10, P50, P90)
WEEKDAY, MODEL, VERSION, NOTE = "weekday", "model", "version", "note"
OFF_SEASON, FALLBACK = "off_season", "fallback"
COLUMNS = (DATE, WEEKDAY, PRODUCT, YHAT, P10, P50, P90, MODEL, VERSION, NOTE)
HISTORY_DAYS = 56
"""The columns of a forecast as the CLI's CSV/JSON and the API give it."""


@dataclass(frozen=True)
class ProductForecast:
    product: str
    version: int | None
    family: str | None
    # One row per forecast date: date, weekday, product, forecast, p10, p50, p90, model,
    # version, note (closed / why the product is not offered that day, `_NOT_OFFERED` /
    # fallback regressors), and the flags closed, off_season (bool: not offered that day,
    # off-season or a day off) and fallback (the regressors taken from a fallback,
    # comma-joined).
    # p10 and p90 are NaN for a version stored without a quantile calibration.
    frame: pd.DataFrame | None
    error: str | None = None
    # The refused product's error class (e.g. ChecksumMismatch).
    error_kind: type[OvencastError] | None = None
    # What the user should know about this product's rows (e.g. dates forecast 0
    # because they are outside the product's season).
    notes: tuple[str, ...] = ()
    model: str | None = None  # what selection chose, e.g. "ensemble(lightgbm+tsb)"


@dataclass(frozen=True)
class TenantForecast:
    """A tenant's forecast: the same `dates` for every product, the products' results,
    and what the user should know about all of them (regressors taken from a fallback,
    days assumed open)."""

    tenant: str
    dates: pd.DatetimeIndex
    results: list[ProductForecast]
    notes: tuple[str, ...] = ()
    last_sales_date: date | None = None
    fallbacks: list[dict[str, Any]] = field(default_factory=list)
    # The forecast products' sales of the HISTORY_DAYS before the first forecast date
    # (product, date, quantity), when asked for (plots).
    history: pd.DataFrame | None = None

    @property
    def forecast(self) -> pd.DataFrame:
        """Every forecast product's rows, in product then date order."""
        frames = [r.frame for r in self.results if r.frame is not None]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=[*COLUMNS, CLOSED, OFF_SEASON, FALLBACK])

    @property
    def refused(self) -> list[ProductForecast]:
        return [r for r in self.results if r.error is not None]


def refusals_by_reason(results: Sequence[ProductForecast]) -> dict[str, list[str]]:
    """The refused products grouped by their error text, in first-seen order: products
    refused for the same reason are named together, so the reason is said once."""
    grouped: dict[str, list[str]] = {}
    for result in results:
        if result.error:
            grouped.setdefault(result.error, []).append(result.product)
    return grouped


async def forecast_tenant(session: AsyncSession, tenant: Tenant, *, settings: Settings,
                          days: int, start: date | None = None,
                          products: Sequence[str] | None = None,
                          source: DataSource | None = None,
                          with_history: bool = False) -> TenantForecast:
    """Forecast `days` days from `start` (default: the day after the tenant's last sales
    date) for every product with an active model. A product whose artifact is refused
    gets an `error`; the others still get their forecast. `with_history`: include the
    products' sales of the HISTORY_DAYS before the forecast."""
    if not 1 <= days <= MAX_FORECAST_DAYS:
        raise InvalidRequest(f"days must be between 1 and {MAX_FORECAST_DAYS}")
    versions = await _active_versions(session, tenant, products)
    source = source or DatabaseSource(session)
    last = await source.last_sales_date(tenant.name)
    first = start or (last + timedelta(days=1) if last else max(v.data_end for v in versions)
                      + timedelta(days=1))
    if last is not None and first > last + timedelta(days=MAX_START_AHEAD_DAYS):
        raise InvalidRequest(f"the forecast may start at most {MAX_START_AHEAD_DAYS} days "
                             f"after the last sales date ({last.isoformat()}); asked for "
                             f"{first.isoformat()}")
    dates = pd.date_range(first, periods=days, freq="D")
    # Regressors for the forecast dates come from where the training data came from
    # (imported data, or the upstream services).
    data = await source.regressors(tenant.name)
    # Loading, checking and predicting is CPU work: off the event loop, so that one
    # forecast never holds up the other requests.
    results, notes, fallbacks = await asyncio.get_running_loop().run_in_executor(
        _executor(settings.forecast_threads), _compute, versions, dates, data, tenant,
        store_for(settings), last)
    history = None
    if with_history:
        history = await _recent_sales(source, tenant, [v.product for v in versions],
                                      before=dates[0])
    return TenantForecast(tenant=tenant.name, dates=dates, results=results, notes=notes,
                          last_sales_date=last, fallbacks=fallbacks, history=history)


async def forecast_versions(versions: Sequence[ModelVersion], dates: pd.DatetimeIndex,
                            data: SourceData, tenant: Tenant, *, settings: Settings
                            ) -> list[ProductForecast]:
    """Forecast `dates` with the given versions (any versions, not only the active
    ones: forecast runs use it for the challengers' shadow forecasts), off the event
    loop like `forecast_tenant`; one result per version, in order."""
    results, _, _ = await asyncio.get_running_loop().run_in_executor(
        _executor(settings.forecast_threads), _compute_each, versions, dates, data, tenant,
        store_for(settings))
    return results


def _compute_each(versions: Sequence[ModelVersion], dates: pd.DatetimeIndex,
                  data: SourceData, tenant: Tenant, store: ModelStore
                  ) -> tuple[list[ProductForecast], tuple[str, ...], list[dict[str, Any]]]:
    # `_compute` keys its results by product: several versions of one product go one by one.
    found: list[ProductForecast] = []
    for version in versions:
        found += _compute([version], dates, data, tenant, store)[0]
    return found, (), []


@functools.lru_cache(maxsize=4)
def _executor(threads: int) -> ThreadPoolExecutor:
    """The process's forecast threads (FORECAST_THREADS): few, because the work holds the
    GIL; the event loop then keeps its share for the other requests."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ovencast-forecast")


def _compute(versions: Sequence[ModelVersion], dates: pd.DatetimeIndex, data: SourceData,
             tenant: Tenant, store: ModelStore, tenant_end: date | None = None
             ) -> tuple[list[ProductForecast], tuple[str, ...], list[dict[str, Any]]]:
    """`tenant_end`: the tenant's last sales date (default: the newest data end of
    `versions`), against which a product's data is old (`_stale_note`)."""
    tenant_end = tenant_end or max((v.data_end for v in versions), default=None)
    models: dict[str, ForecastModel] = {}
    results: dict[str, ProductForecast] = {}
    for version in versions:
        try:
            models[version.product] = load_verified(store, version)
        except OvencastError as exc:
            results[version.product] = _refused(version, exc)
    # The versions whose regressors were prepared as the original system did (decision
    # 033) read their future values prepared the same way; every other version, ovencast's.
    groups: dict[bool, list[ModelVersion]] = {}
    for version in versions:
        if version.product in models:
            groups.setdefault(_as_original(version), []).append(version)
    notes: list[str] = []
    spans: list[dict[str, Any]] = []
    for original, group in sorted(groups.items()):
        columns = list(dict.fromkeys(r for v in group for r in models[v.product].regressors))
        future = _future(dates, data, columns, tenant, original=original)
        for version in group:
            results[version.product] = _forecast_product(version, models[version.product],
                                                         future, tenant_end)
        notes += [*future.notes, *future.summary(columns)]
        spans += [span for span in fallback_spans(future, columns) if span not in spans]
    return [results[v.product] for v in versions], tuple(dict.fromkeys(notes)), spans


def _as_original(version: ModelVersion) -> bool:
    return (version.details or {}).get("regressor_preparation") == ORIGINAL_PREPARATION


# The future regressors of (data version, dates, columns, holiday calendar, preparation):
# the same for every request until the tenant's data changes. Entries are shared, never
# changed.
_FutureKey = tuple[str, tuple[pd.Timestamp, ...], tuple[str, ...], str | None, str | None,
                   bool]
_futures: LRUCache[_FutureKey, FutureRegressors] = LRUCache(maxsize=256)
_futures_lock = threading.Lock()  # the forecast threads share it


def _future(dates: pd.DatetimeIndex, data: SourceData, columns: list[str], tenant: Tenant,
            *, original: bool = False) -> FutureRegressors:
    """`original`: the regressors prepared as the original system did, and no holiday
    calendar (its `public_holiday` is the uploaded column), as its versions were
    trained (`training/data.py`)."""
    def compute() -> FutureRegressors:
        regressors = regressors_as_original(data.regressors)[0] if original \
            else data.regressors
        country, subdivision = (None, None) if original else (tenant.country,
                                                              tenant.subdivision)
        return future_regressors(dates, regressors, columns=columns,
                                 kinds=data.regressor_sources, country=country,
                                 subdivision=subdivision)

    if data.version is None:
        return compute()
    key = (data.version, tuple(dates), tuple(columns), tenant.country, tenant.subdivision,
           original)
    with _futures_lock:
        kept = _futures.get(key)
    if kept is None:
        kept = compute()
        with _futures_lock:
            _futures[key] = kept
    return kept


async def _recent_sales(source: DataSource, tenant: Tenant, products: Sequence[str], *,
                        before: pd.Timestamp) -> pd.DataFrame:
    until = (before - pd.Timedelta(days=1)).date()
    sales = (await source.load(tenant.name, until=until, products=products)).sales
    first = before - pd.Timedelta(days=HISTORY_DAYS)
    return sales.loc[pd.to_datetime(sales["date"]) >= first].reset_index(drop=True)


async def _active_versions(session: AsyncSession, tenant: Tenant,
                           products: Sequence[str] | None) -> list[ModelVersion]:
    versions = list(await models_repository.list_active(session, tenant.id))
    if products:
        missing = sorted(set(products) - {v.product for v in versions})
        if missing:
            raise ModelNotFound(f"no active model for product(s) {missing} of tenant "
                                f"{tenant.name!r}; train them first")
        versions = [v for v in versions if v.product in set(products)]
    if not versions:
        raise ModelNotFound(f"tenant {tenant.name!r} has no trained models; run "
                            f"`ovencast train --tenant {tenant.name}` first")
    return versions


def _refused(version: ModelVersion, exc: OvencastError) -> ProductForecast:
    return ProductForecast(version.product, version.version, version.family, None,
                           str(exc), type(exc))


def _forecast_product(version: ModelVersion, model: ForecastModel,
                      future: FutureRegressors, tenant_end: date | None = None
                      ) -> ProductForecast:
    frame = future.frame_for(model.regressors)
    dates = pd.DatetimeIndex(frame[DATE])
    # One rule for every family (seasonal naive or Prophet would answer in-sample days,
    # LightGBM refuses them): a version forecasts the days after its training data.
    if len(dates) and dates[0].date() <= version.data_end:
        # Sales it was trained on removed since (an import undone or replaced): say so,
        # since the tenant's default start then lies inside the version's data.
        removed = ("" if tenant_end is None or tenant_end >= version.data_end else
                   f" (the tenant's sales now end {tenant_end.isoformat()}: retrain, or "
                   f"activate a version trained on the data there is)")
        return _refused(version, ForecastUnavailable(
            f"its model forecasts the days after its training data, which ends "
            f"{version.data_end.isoformat()}; asked from {dates[0].date().isoformat()}"
            f"{removed}"))
    # The original approach (`--models prophet`) forecasts closed days as days without
    # sales, as it was fitted; every other model forecasts them 0.
    as_fitted = (closed_days_as_zero_sales(frame)
                 if (version.details or {}).get("closed_days") == ZERO_SALES else frame)
    try:
        yhat = model.predict(as_fitted)
    except ValueError as exc:  # e.g. a date before the end of the model's data
        # No product name in the reason: callers name the products, grouped by reason
        # (`refusals_by_reason`).
        return _refused(version, ForecastUnavailable(str(exc)))
    closed = frame[CLOSED].to_numpy(dtype=bool)
    reasons, notes = days_not_offered(version.product, version.details, dates)
    off = reasons != ""
    notes += _stale_note(version, tenant_end, closed | off)
    yhat = np.where(off, 0.0, yhat)
    p10, p50, p90 = forecast_quantiles(version.details, yhat,
                                       as_fitted[CLOSED].to_numpy(dtype=bool) | off)
    fallback = [", ".join(columns) for columns in future.fallbacks_of(model.regressors)]
    chosen = (version.details.get("selection") or {}).get("chosen") or version.family
    rows = pd.DataFrame({
        DATE: dates.date, WEEKDAY: dates.day_name(), PRODUCT: version.product, YHAT: p50,
        P10: p10, P50: p50, P90: p90, MODEL: chosen, VERSION: version.version,
        NOTE: [_note(c, o, f) for c, o, f in zip(closed, reasons, fallback, strict=True)],
        CLOSED: closed, OFF_SEASON: off, FALLBACK: fallback})
    return ProductForecast(version.product, version.version, version.family, rows,
                           notes=tuple(notes), model=chosen)


def _stale_note(version: ModelVersion, tenant_end: date | None, shut: np.ndarray
                ) -> tuple[str, ...]:
    """A note when the version's data ends more than STALE_DAYS before the tenant's and
    it forecasts some day open: a forecast from old data (the validation report warns of
    it at training too). A window the caller moved far ahead (`--from`) is no such case:
    every product's data is as old there."""
    gap = (tenant_end - version.data_end).days if tenant_end else 0
    if gap <= STALE_DAYS or bool(np.all(shut)):
        return ()
    return (f"{version.product}: its sales data ends {version.data_end.isoformat()}, "
            f"{gap} days before the tenant's ({tenant_end}): a forecast from old data (if "
            "it is still sold, import its recent sales and retrain)",)


def _note(closed: bool, off: str, fallback: str) -> str:
    """`off`: why the product is not offered that day ("off-season", "not sold on this
    weekday"), or ""."""
    if closed:
        return "closed"
    if off:
        return off
    return f"fallback: {fallback}" if fallback else ""


def fallback_spans(future: FutureRegressors, columns: Sequence[str]
                   ) -> list[dict[str, Any]]:
    """Per regressor column and fallback kind, the dates it was used on."""
    spans = []
    for column in columns:
        sources = future.sources[column]
        for kind in dict.fromkeys(sources):
            if not _is_fallback(kind):
                continue
            days = future.values.index[(sources == kind).to_numpy()]
            spans.append({"regressor": column, "source": str(kind),
                          "dates": [format_date_range(a, b) for a, b in runs_of_dates(days)]})
    return spans


def _is_fallback(kind: str) -> bool:
    from ovencast.forecasting.future import ValueSource

    return ValueSource(kind).is_fallback


# The days a product is not offered (forecasting/season.py), found at training and stored
# in the version's details, in the order they claim a day: (details key, how it is read,
# the row's note, the forecast's note after "forecast 0 on <days>: "). Versions stored
# without a key have no such days.
_NOT_OFFERED: tuple[tuple[str, Callable[[Mapping[str, Any]], Any], str,
                          Callable[[Any], str]], ...] = (
    ("off_season", OffSeason.from_dict, "off-season",
     lambda rule: f"outside its season (no sales on these days of the year in {rule.years} "
                  f"years of data)"),
    ("yearly_closures", YearlyClosures.from_dict, "no sales on this date in past years",
     lambda rule: f"no sales on these dates in any of {rule.years}+ years of its data "
                  f"(closed every year?)"),
    ("holiday_closures", HolidayClosures.from_dict, "no sales on this date in past years",
     lambda rule: f"no sales on {', '.join(rule.names)} in any of {rule.years}+ years of "
                  f"its data (closed every year?)"),
    ("off_weekdays", OffWeekdays.from_dict, "not sold on this weekday",
     lambda rule: f"not sold on them in the last {rule.weeks} weeks of its data"),
)


def days_not_offered(product: str, details: Mapping[str, Any] | None,
                     dates: pd.DatetimeIndex) -> tuple[np.ndarray, list[str]]:
    """Per date, why the product is not offered that day ("" when it is; the first rule
    of `_NOT_OFFERED` that holds names it), and one note per rule that claimed a day."""
    reasons = np.full(len(dates), "", dtype=object)
    notes: list[str] = []
    for key, read, row_note, why in _NOT_OFFERED:
        rule = _stored(details, key, read)
        hit = rule.mask(dates) & (reasons == "") if rule is not None else None
        if hit is None or not hit.any():
            continue
        reasons[hit] = row_note
        days = rule.names() if isinstance(rule, OffWeekdays) else ", ".join(
            format_date_range(a, b) for a, b in runs_of_dates(dates[hit]))
        notes.append(f"{product}: forecast 0 on {days}: {why(rule)}")
    return reasons, notes


def forecast_quantiles(details: Mapping[str, Any] | None, yhat: np.ndarray,
                       closed: pd.Series | np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P10, P50, P90 from the calibration stored with a version (`details["quantiles"]`,
    see forecasting/quantiles.py). P50 is the point forecast: the model's own, or a
    count's median where the product sells whole units (decision 030). A version without
    a usable calibration (trained before quantiles existed, or without one out-of-sample
    day to calibrate on) gets NaN for P10 and P90: no interval rather than a made-up one."""
    calibration = _stored(details, "quantiles", QuantileCalibration.from_dict)
    if calibration is None:
        missing = np.full(len(yhat), np.nan)
        return missing, np.asarray(yhat, dtype=float).copy(), missing.copy()
    return calibration.interval(yhat, np.asarray(closed, dtype=bool))


def _stored(details: Mapping[str, Any] | None, key: str,
            parse: Callable[[Mapping[str, Any]], T]) -> T | None:
    """`details[key]` of a model version, parsed; None when the version has none or an
    unreadable one (stored by an older or newer ovencast): the forecast then goes without
    it rather than failing."""
    stored = (details or {}).get(key)
    try:
        return parse(stored) if stored else None
    except (KeyError, TypeError, ValueError):
        return None
