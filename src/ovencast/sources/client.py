"""One upstream service over HTTP: httpx with the SPEC timeouts, every request through the
service's circuit breaker, retries around it, every failure an `UpstreamError`.

Order: retry( breaker( one GET ) ). Each attempt is one request the breaker counts, and
once the breaker opens the retries stop (an open circuit is not retried).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from ovencast.observability.logs import get_logger
from ovencast.observability.metrics import observe_upstream
from ovencast.settings import Settings
from ovencast.sources import contract
from ovencast.sources.breakers import BreakerRegistry
from ovencast.sources.errors import (
    UpstreamBadResponse,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)
from ovencast.sources.retry import RetryPolicy

log = get_logger(__name__)
PageT = TypeVar("PageT", bound=BaseModel)
Params = Mapping[str, str | int | Sequence[str]]

_TIMEOUT_KINDS: dict[type[httpx.TimeoutException], str] = {
    httpx.ConnectTimeout: "connect", httpx.ReadTimeout: "read",
    httpx.WriteTimeout: "write", httpx.PoolTimeout: "pool"}
# A server that keeps sending pages would otherwise be followed forever.
MAX_PAGES = 10_000


def timeouts(settings: Settings) -> httpx.Timeout:
    return httpx.Timeout(connect=settings.http_connect_timeout,
                         read=settings.http_read_timeout,
                         write=settings.http_write_timeout,
                         pool=settings.http_pool_timeout)


class ServiceClient:
    """GETs to one service. `tenant` is only used to word a 404 `unknown_tenant`."""

    def __init__(self, service: str, base_url: str, *, settings: Settings,
                 breakers: BreakerRegistry, transport: httpx.AsyncBaseTransport | None = None
                 ) -> None:
        self.service = service
        self.base_url = base_url.rstrip("/")
        self._timeout = timeouts(settings)
        self._retry = RetryPolicy.from_settings(settings)
        self._breakers = breakers
        self._page_size = min(settings.upstream_page_size, contract.MAX_PAGE_SIZE)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=self._timeout, transport=transport,
            headers={"accept": "application/json", "user-agent": "ovencast"})

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get(self, path: str, params: Params, model: type[PageT], *, tenant: str
                  ) -> PageT:
        """One logical GET: retried, through the breaker, the body validated."""
        async for attempt in self._retry.retrying(self.service):
            with attempt, observe_upstream(self.service):
                return await self._breakers.call(
                    self.service, lambda: self._get_once(path, params, model, tenant))
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def pages(self, path: str, params: Params, model: type[PageT], *, tenant: str
                    ) -> AsyncIterator[PageT]:
        """Every page of a paged resource, following `next_cursor`."""
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            query: dict[str, Any] = {**params, "limit": self._page_size}
            if cursor is not None:
                query["cursor"] = cursor
            page = await self.get(path, query, model, tenant=tenant)
            yield page
            cursor = getattr(page, "next_cursor", None)
            if cursor is None:
                return
        raise UpstreamBadResponse(self.service, f"more than {MAX_PAGES} pages for {path}")

    async def _get_once(self, path: str, params: Params, model: type[PageT],
                        tenant: str) -> PageT:
        where = f"GET {self.base_url}{path}"
        try:
            response = await self._http.get(path, params=params)
        except httpx.TimeoutException as exc:
            kind = next((k for t, k in _TIMEOUT_KINDS.items() if isinstance(exc, t)), "")
            limit = getattr(self._timeout, kind or "read")
            raise UpstreamUnavailable(
                self.service, f"{kind} timeout after {limit:g} s ({where})".strip()) from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(
                self.service, f"{_describe(exc)} ({where})") from exc
        status = response.status_code
        if status >= 400:
            error, detail = _error_body(response)
            if status >= 500:
                raise UpstreamUnavailable(self.service,
                                          f"HTTP {status} {error}: {detail} ({where})")
            if status == 404 and error == contract.ERROR_UNKNOWN_TENANT:
                raise UpstreamNotFound(self.service, tenant, detail)
            hint = (f"; is {self.service.upper()}_SERVICE_URL={self.base_url} right?"
                    if status == 404 else "")
            raise UpstreamRejected(self.service, status, error, f"{detail} ({where}){hint}")
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UpstreamBadResponse(
                self.service, f"body is not valid JSON ({exc}; {len(response.content)} "
                              f"bytes, content-type "
                              f"{response.headers.get('content-type')!r}) ({where})"
            ) from exc
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: "
                                 f"{e['msg']}" for e in exc.errors()[:5])
            raise UpstreamBadResponse(self.service,
                                      f"not a {model.__name__}: {problems} ({where})") from exc


def _describe(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        what = "connection refused or unreachable"
    elif isinstance(exc, httpx.RemoteProtocolError):
        what = "connection dropped"
    else:
        what = "connection failed"
    detail = str(exc) or type(exc).__name__
    return f"{what}: {detail}"


def _error_body(response: httpx.Response) -> tuple[str, str]:
    """The contract's `{"error", "detail"}`, or a stand-in for a body that is not one
    (a proxy's HTML page, an empty 502)."""
    try:
        body = contract.ErrorBody.model_validate(response.json())
        return body.error, body.detail
    except (ValueError, ValidationError):
        text = " ".join(response.text.split())[:200]
        return response.reason_phrase or "error", text or "(no body)"
