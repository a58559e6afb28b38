"""Tenant schedules: set, show, clear; which are due (cron times in the tenant's time
zone); the scheduled run's last step (save the forecast run once its training ended)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy.ext.asyncio import AsyncSession

from ovencast.db.base import utcnow
from ovencast.db.tables import Tenant, TenantSchedule
from ovencast.errors import InvalidRequest
from ovencast.forecasts.service import MAX_FORECAST_DAYS
from ovencast.jobs.service import parse_families
from ovencast.models.states import ActivationPolicy
from ovencast.schedules import repository

MAX_CRON_LENGTH = 100


def check_cron(expression: str) -> str:
    """A cron expression of 5 fields (minute hour day month weekday) or 6 (a 6th for
    seconds, as procrastinate's periodic tasks take); else InvalidRequest."""
    cleaned = " ".join(expression.split())
    if not cleaned or len(cleaned) > MAX_CRON_LENGTH or len(cleaned.split()) not in (5, 6) \
            or not croniter.is_valid(cleaned):
        raise InvalidRequest(f"{expression!r} is not a cron expression of 5 fields "
                             "(minute hour day month weekday, e.g. '0 3 * * *': 03:00 "
                             "every day) or 6 (a 6th for seconds)")
    return cleaned


async def get_schedule(session: AsyncSession, tenant: Tenant) -> TenantSchedule | None:
    return await repository.get(session, tenant.id)


async def set_schedule(session: AsyncSession, tenant: Tenant, *, cron: str | None,
                       days: int = 28, models: Sequence[str] | None = None,
                       activation: ActivationPolicy = ActivationPolicy.IF_BETTER
                       ) -> TenantSchedule | None:
    """Set the tenant's schedule (its first due time is the first cron time after now),
    or remove it (`cron` None). Returns the schedule, None when removed."""
    current = await repository.get(session, tenant.id)
    if cron is None:
        if current is not None:
            await repository.delete(session, current)
        return None
    expression = check_cron(cron)
    if not 1 <= days <= MAX_FORECAST_DAYS:
        raise InvalidRequest(f"days must be between 1 and {MAX_FORECAST_DAYS}")
    families = list(parse_families(models)) if models else None
    now = utcnow()
    if current is None:
        current = await repository.add(session, TenantSchedule(
            tenant_id=tenant.id, cron=expression, days=days, models=families,
            activation=activation, created_at=now, updated_at=now, last_due_at=now))
        return current
    current.cron, current.days, current.models = expression, days, families
    current.activation, current.updated_at, current.last_due_at = activation, now, now
    await session.flush()
    return current


def latest_due(cron: str, time_zone: str, *, after: datetime, now: datetime
               ) -> datetime | None:
    """The latest time of `cron` (read in `time_zone`) in (after, now], in UTC; None
    when there is none. Missed times collapse into the latest: a schedule runs once
    when its workers come back, not once per time it missed."""
    zone = ZoneInfo(time_zone)
    first: datetime = croniter(cron, after.astimezone(zone)).get_next(datetime)
    if first > now:
        return None
    latest: datetime = croniter(cron, now.astimezone(zone)).get_prev(datetime)
    return max(first, latest).astimezone(UTC)


def next_due(schedule: TenantSchedule, time_zone: str, *, now: datetime) -> datetime:
    """When the schedule runs next, in UTC: a time it missed and has not handled yet
    (due now: the next worker pass, or `ovencast run`, takes it), else its next time."""
    after = schedule.last_due_at or schedule.created_at
    missed = latest_due(schedule.cron, time_zone, after=after, now=now)
    if missed is not None:
        return missed
    zone = ZoneInfo(time_zone)
    start = max(after, now).astimezone(zone)
    upcoming: datetime = croniter(schedule.cron, start).get_next(datetime)
    return upcoming.astimezone(UTC)


@dataclass(frozen=True)
class NextRun:
    """`next_due` as a page or the CLI shows it: in the tenant's time zone, and whether
    it is a missed time still due."""

    at: datetime
    due_now: bool


def next_run(schedule: TenantSchedule, tenant: Tenant, *, now: datetime) -> NextRun:
    upcoming = next_due(schedule, tenant.time_zone, now=now)
    return NextRun(upcoming.astimezone(ZoneInfo(tenant.time_zone)), upcoming <= now)


@dataclass(frozen=True)
class Due:
    schedule: TenantSchedule
    tenant: Tenant
    due: datetime


async def claim_due(session: AsyncSession, *, now: datetime) -> list[Due]:
    """The schedules due at `now`, each claimed (marked handled) so that exactly one
    worker runs it however many look at the same time."""
    found = []
    for schedule, tenant in await repository.all_with_tenants(session):
        due = latest_due(schedule.cron, tenant.time_zone,
                         after=schedule.last_due_at or schedule.created_at, now=now)
        if due is not None and await repository.claim(session, schedule.id, due):
            found.append(Due(schedule, tenant, due))
    return found
