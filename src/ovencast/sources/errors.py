"""Errors of the upstream services. Every failure of a call is one of these, naming the
service and the cause; a failed call never turns into an empty result.

| error | when | retried | counts for the breaker |
| --- | --- | --- | --- |
| `UpstreamUnavailable` | connection error, timeout, 5xx | yes | yes |
| `CircuitOpen` (an `UpstreamUnavailable`) | the breaker refused the call | no | - |
| `UpstreamBadResponse` | malformed JSON, wrong shape, invalid rows | no | yes |
| `UpstreamNotFound` | 404 `unknown_tenant` | no | no |
| `UpstreamRejected` | any other 4xx (a bad request: our bug or a wrong URL) | no | no |
"""

from __future__ import annotations

from ovencast.errors import BadGateway, OvencastError, TenantNotFound, Unavailable


class UpstreamError(OvencastError):
    """A call to an upstream service failed. `service`: sales, weather or traffic;
    `cause`: what happened, in words. Raised only as one of the kinds below."""

    def __init__(self, service: str, cause: str, message: str | None = None) -> None:
        self.service = service
        self.cause = cause
        super().__init__(message or f"{service} service failed: {cause}")


class UpstreamUnavailable(UpstreamError, Unavailable):
    """The service could not be reached, timed out or answered 5xx (after retries)."""

    def __init__(self, service: str, cause: str) -> None:
        super().__init__(service, cause, f"{service} service unavailable: {cause}")


class CircuitOpen(UpstreamUnavailable):
    """The service's circuit breaker is open: the call was refused without a request."""

    def __init__(self, service: str, retry_in_s: float) -> None:
        self.retry_in_s = retry_in_s
        super().__init__(service, f"circuit breaker open after repeated failures; next "
                                  f"trial call in {max(retry_in_s, 0.0):.1f} s")


class UpstreamBadResponse(UpstreamError, BadGateway):
    """The service answered, but not with what the contract says (docs/UPSTREAM.md)."""

    def __init__(self, service: str, cause: str) -> None:
        super().__init__(service, cause, f"{service} service sent a malformed response: "
                                         f"{cause}")


class UpstreamNotFound(UpstreamError, TenantNotFound):
    """404 `unknown_tenant`: the service does not know the tenant (a `TenantNotFound`)."""

    def __init__(self, service: str, tenant: str, detail: str) -> None:
        self.tenant = tenant
        super().__init__(service, detail, f"{service} service does not know tenant "
                                          f"{tenant!r} (404: {detail})")


class UpstreamRejected(UpstreamError, BadGateway):
    """Any other 4xx: the service refused the request as it was made."""

    def __init__(self, service: str, status: int, error: str, detail: str) -> None:
        self.status = status
        super().__init__(service, f"{status} {error}: {detail}",
                         f"{service} service rejected the request ({status} {error}): "
                         f"{detail}")
