from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.db.tables import Tenant
from ovencast.errors import ForecastUnavailable, InvalidRequest, ModelNotFound, OvencastError
from ovencast.forecasting.features import (
    build_future_frame,
    format_date_range,
    runs_of_dates,
)
from ovencast.forecasting.frame import CLOSED, DATE, PRODUCT, YHAT
from ovencast.forecasting.quantiles import QuantileCalibration
from ovencast.forecasting.season import OffSeason
from ovencast.models import repository as models_repository
from ovencast.models.service import load_verified
from ovencast.settings import Settings
from ovencast.sources.base import DataSource
from ovencast.sources.database import DatabaseSource
from ovencast.store import store_for

T = TypeVar("T")

MAX_FORECAST_DAYS = 366
P10, P50, P90 = "p10", "p50", "p90"
QUANTILE_COLUMNS = (P10, P50, P90)


@dataclass(frozen=True)
class ProductForecast:
    product: str
    version: int | None
    family: str | None
    # date, product, forecast, p10, p50, p90 (p50 == forecast; p10 and p90 are NaN for a
    # version stored without a quantile calibration)
    frame: pd.DataFrame | None
    error: str | None = None
    # The refused product's error class (e.g. ChecksumMismatch).
    error_kind: type[OvencastError] | None = None
    # What the user should know about a forecast that was made (e.g. dates forecast 0
    # because they are outside the product's season).
    notes: tuple[str, ...] = ()


def refusals_by_reason(results: Sequence[ProductForecast]) -> dict[str, list[str]]:
    """The refused products grouped by their error text, in first-seen order: products
    refused for the same reason (a weather file that ends refuses every model that reads
    the weather) are named together, so the reason is said once."""
    grouped: dict[str, list[str]] = {}
    for result in results:
        if result.error:
            grouped.setdefault(result.error, []).append(result.product)
    return grouped


async def forecast_tenant(session: AsyncSession, tenant: Tenant, *, settings: Settings,
                          days: int, start: date | None = None,
                          products: Sequence[str] | None = None,
                          source: DataSource | None = None) -> list[ProductForecast]:
    """Forecast `days` days from `start` (default: the day after each model's training
    data ends) for every product with an active model. A product whose artifact is refused
    or whose regressors are unknown for those dates gets an `error`; the others still get
    their forecast."""
    if not 1 <= days <= MAX_FORECAST_DAYS:
        raise InvalidRequest(f"days must be between 1 and {MAX_FORECAST_DAYS}")
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
    store = store_for(settings)
    # Regressors for the forecast dates come from where the training data came from
    # (imported data, or the upstream services); one product's load carries them all.
    source = source or DatabaseSource(session)
    regressors = (await source.load(tenant.name, products=[versions[0].product])).regressors
    results: list[ProductForecast] = []
    for version in versions:
        first = start or (version.data_end + timedelta(days=1))
        dates = pd.date_range(first, periods=days, freq="D")
        try:
            model = load_verified(store, version)
            future = build_future_frame(dates, regressors, used_regressors=model.regressors,
                                        country=tenant.country, subdivision=tenant.subdivision)
            yhat = model.predict(future)
        except OvencastError as exc:
            results.append(ProductForecast(version.product, version.version, version.family,
                                           None, str(exc), type(exc)))
            continue
        except ValueError as exc:
            unavailable = ForecastUnavailable(str(exc))
            results.append(ProductForecast(version.product, version.version, version.family,
                                           None, str(unavailable), type(unavailable)))
            continue
        closed = future[CLOSED].to_numpy(dtype=bool)
        off, notes = off_season_days(version.product, version.details, dates)
        yhat = np.where(off, 0.0, yhat)
        p10, p50, p90 = forecast_quantiles(version.details, yhat, closed | off)
        frame = pd.DataFrame({DATE: dates.date, PRODUCT: version.product, YHAT: yhat,
                              P10: p10, P50: p50, P90: p90})
        results.append(ProductForecast(version.product, version.version, version.family,
                                       frame, notes=notes))
    return results


def off_season_days(product: str, details: Mapping[str, Any] | None,
                    dates: pd.DatetimeIndex) -> tuple[np.ndarray, tuple[str, ...]]:
    """Which `dates` are outside the product's season (`details["off_season"]`, see
    forecasting/season.py; none for versions stored without it) and the note saying so."""
    season = _stored(details, "off_season", OffSeason.from_dict)
    if season is None:
        return np.zeros(len(dates), dtype=bool), ()
    off = season.mask(dates)
    if not off.any():
        return off, ()
    spans = ", ".join(format_date_range(a, b) for a, b in runs_of_dates(dates[off]))
    return off, (f"{product}: forecast 0 on {spans}: outside its season (no sales on "
                 f"these days of the year in {season.years} years of data)",)


def forecast_quantiles(details: Mapping[str, Any] | None, yhat: np.ndarray,
                       closed: pd.Series | np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P10, P50, P90 from the calibration stored with a version (`details["quantiles"]`,
    see forecasting/quantiles.py). P50 is the point forecast. A version without a usable
    calibration (trained before quantiles existed, or without one out-of-sample day to
    calibrate on) gets NaN for P10 and P90: no interval rather than a made-up one."""
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
