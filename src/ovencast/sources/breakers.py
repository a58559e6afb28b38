"""One circuit breaker per upstream service (SPEC "Upstream services"), on purgatory.

closed -> open after `failures` consecutive failed requests; open -> half-open once
`recovery_s` has passed: exactly one trial request is let through (others are refused
while it runs); its success closes the breaker, its failure opens it again.

What counts as a failure: `UpstreamUnavailable` (connection error, timeout, 5xx) and
`UpstreamBadResponse`. A 4xx (`UpstreamNotFound`, `UpstreamRejected`) shows the service
is up and counts as a success. A cancelled call counts as neither.

State changes are logged (`circuit_breaker.state_changed`, service, old, new) and exported
as `ovencast_circuit_breaker_state{service}` (0 closed, 1 half-open, 2 open). The state is
held in this process (purgatory's in-memory store); purgatory can keep it in Redis when
several processes must share it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from ovencast.observability.logs import get_logger
from ovencast.observability.metrics import CIRCUIT_BREAKER_STATE
from ovencast.settings import Settings, get_settings
from ovencast.sources.contract import SERVICES
from ovencast.sources.errors import CircuitOpen, UpstreamNotFound, UpstreamRejected

log = get_logger(__name__)
T = TypeVar("T")


class BreakerState(StrEnum):
    closed = "closed"
    half_open = "half_open"
    open = "open"

    @property
    def gauge_value(self) -> int:
        return {"closed": 0, "half_open": 1, "open": 2}[self.value]


# purgatory's state names -> ours
_STATES = {"closed": BreakerState.closed, "half-opened": BreakerState.half_open,
           "opened": BreakerState.open}


@dataclass(frozen=True)
class BreakerPolicy:
    failures: int  # consecutive failed requests that open the breaker
    recovery_s: float  # how long it stays open before one trial request

    @classmethod
    def from_settings(cls, settings: Settings, service: str) -> BreakerPolicy:
        return cls(failures=int(getattr(settings, f"breaker_{service}_failures")),
                   recovery_s=float(getattr(settings, f"breaker_{service}_recovery_s")))

    def retry_in_s(self, opened_at: float, now: float) -> float:
        """Seconds until an open breaker lets a trial through (<= 0: now)."""
        return opened_at + self.recovery_s - now


@dataclass(frozen=True)
class BreakerStatus:
    """One breaker as `GET /api/v1/circuit-breakers` lists it."""

    service: str
    state: BreakerState
    consecutive_failures: int
    failures_to_open: int
    recovery_s: float
    opened_at: datetime | None  # UTC, while open or half-open
    trial_in_s: float | None  # while open: seconds until a trial call is let through

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "state": self.state.value,
                "consecutive_failures": self.consecutive_failures,
                "failures_to_open": self.failures_to_open, "recovery_s": self.recovery_s,
                "opened_at": self.opened_at.isoformat() if self.opened_at else None,
                "trial_in_s": self.trial_in_s}


class BreakerRegistry:
    """The breakers of one process, one per service. Clients of every job share it, so
    a service that failed for one job is not hammered by the next."""

    def __init__(self, policies: Mapping[str, BreakerPolicy]) -> None:
        self.policies = dict(policies)
        self._factory = AsyncCircuitBreakerFactory(
            exclude=[UpstreamNotFound, UpstreamRejected])
        self._factory.add_listener(self._on_event)
        self._states: dict[str, BreakerState] = dict.fromkeys(self.policies,
                                                              BreakerState.closed)
        self._trials: set[str] = set()
        for service in self.policies:
            CIRCUIT_BREAKER_STATE.labels(service=service).set(0)

    @classmethod
    def from_settings(cls, settings: Settings) -> BreakerRegistry:
        return cls({s: BreakerPolicy.from_settings(settings, s) for s in SERVICES})

    async def call(self, service: str, request: Callable[[], Awaitable[T]]) -> T:
        """Run one request through the service's breaker; `CircuitOpen` (no request made)
        while it is open or while another trial call is in flight."""
        policy = self.policies[service]
        breaker = await self._factory.get_breaker(service, threshold=policy.failures,
                                                  ttl=policy.recovery_s)
        context = breaker.context
        trial = False
        if context.state != "closed":
            now = time.time()
            opened_at = context.opened_at or now
            trial = context.state == "half-opened" or policy.retry_in_s(opened_at, now) < 0
            if not trial or service in self._trials:
                raise CircuitOpen(service, max(policy.retry_in_s(opened_at, now), 0.0))
            self._trials.add(service)
            self._changed(service, BreakerState.half_open)
        try:
            try:
                await breaker.__aenter__()
            except OpenedState:
                raise CircuitOpen(service, policy.recovery_s) from None
            try:
                result = await request()
            except asyncio.CancelledError:
                raise  # neither a success nor a failure
            except Exception as exc:
                await breaker.__aexit__(type(exc), exc, exc.__traceback__)
                raise
            await breaker.__aexit__(None, None, None)
            return result
        finally:
            if trial:
                self._trials.discard(service)

    async def statuses(self) -> list[BreakerStatus]:
        """Every service's breaker, in SPEC order (closed for one never called)."""
        out: list[BreakerStatus] = []
        now = time.time()
        for service, policy in self.policies.items():
            breaker = await self._factory.get_breaker(service, threshold=policy.failures,
                                                      ttl=policy.recovery_s)
            context = breaker.context
            state = _STATES[context.state]
            opened_at = context.opened_at if state != BreakerState.closed else None
            trial_in: float | None = None
            if state == BreakerState.open and opened_at is not None:
                trial_in = round(max(policy.retry_in_s(opened_at, now), 0.0), 3)
            out.append(BreakerStatus(
                service=service, state=state,
                consecutive_failures=int(context.failure_count or 0)
                if state == BreakerState.closed else policy.failures,
                failures_to_open=policy.failures, recovery_s=policy.recovery_s,
                opened_at=datetime.fromtimestamp(opened_at, UTC) if opened_at else None,
                trial_in_s=trial_in))
        return out

    def _on_event(self, circuit: str, event_type: str, event: Any) -> None:
        if event_type == "state_changed":
            self._changed(circuit, _STATES[event.state])

    def _changed(self, service: str, new: BreakerState) -> None:
        old = self._states.get(service, BreakerState.closed)
        if old == new:
            return
        self._states[service] = new
        CIRCUIT_BREAKER_STATE.labels(service=service).set(new.gauge_value)
        emit = log.warning if new == BreakerState.open else log.info
        emit("circuit_breaker.state_changed", service=service, old=old.value, new=new.value)


_process_registry: BreakerRegistry | None = None


def process_breakers(settings: Settings) -> BreakerRegistry:
    """The breakers of this process, made from `settings` on first use."""
    global _process_registry
    if _process_registry is None:
        _process_registry = BreakerRegistry.from_settings(settings)
    return _process_registry


async def circuit_breaker_states(registry: BreakerRegistry | None = None
                                 ) -> list[BreakerStatus]:
    """For `GET /api/v1/circuit-breakers`: the process's breakers (all closed before any
    upstream call was made)."""
    return await (registry or process_breakers(get_settings())).statuses()
