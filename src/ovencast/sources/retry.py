"""Retry policy of upstream GETs: exponential backoff with jitter, bounded in attempts and
in total time. Only idempotent GETs are retried, and only for what may pass (connection
errors, timeouts, 5xx); a 4xx, a malformed body or an open circuit never is."""

from __future__ import annotations

import random
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
)

from ovencast.observability.logs import get_logger
from ovencast.observability.metrics import UPSTREAM_RETRIES
from ovencast.settings import Settings
from ovencast.sources.errors import CircuitOpen, UpstreamUnavailable

log = get_logger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    total_s: float = 120.0  # no attempt starts (or backoff sleep ends) past this
    initial_s: float = 0.5
    max_s: float = 8.0
    jitter_s: float = 0.5

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(attempts=settings.upstream_retry_attempts,
                   total_s=settings.upstream_retry_total_s,
                   initial_s=settings.upstream_retry_initial_s,
                   max_s=settings.upstream_retry_max_s,
                   jitter_s=settings.upstream_retry_jitter_s)

    @staticmethod
    def is_retryable(exc: BaseException) -> bool:
        """Unavailable (connection error, timeout, 5xx) may pass; an open circuit must
        not be hammered, and anything else would fail the same way again."""
        return isinstance(exc, UpstreamUnavailable) and not isinstance(exc, CircuitOpen)

    def backoff_s(self, attempt: int, draw: float) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based): `initial_s` doubled
        per attempt, plus `draw` (0..1) of `jitter_s`, capped at `max_s`."""
        try:
            exponential = self.initial_s * 2.0 ** (attempt - 1)
        except OverflowError:
            exponential = self.max_s
        return max(0.0, min(exponential + draw * self.jitter_s, self.max_s))

    def retrying(self, service: str) -> AsyncRetrying:
        """A tenacity controller for one logical call; re-raises the last error."""

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            UPSTREAM_RETRIES.labels(service=service).inc()
            log.info("upstream.retry", service=service, attempt=state.attempt_number,
                     sleep_s=round(state.upcoming_sleep, 3), cause=str(exc))

        return AsyncRetrying(
            stop=stop_after_attempt(self.attempts) | stop_before_delay(self.total_s),
            wait=lambda state: self.backoff_s(state.attempt_number, random.random()),
            retry=retry_if_exception(self.is_retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
