"""Calling another service over HTTP: timeouts, retries with backoff, a service token, trace context."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from shared.auth import Role, create_token
from shared.settings import Settings
from shared.tracing import current_traceparent

RETRY_STATUSES = frozenset({429, 502, 503, 504})
SERVICE_ORG = "reliefhub"


def service_identity(service: str) -> tuple[str, str]:
    """The (org, sub) a service's calls to the others carry (see `Principal.identity`)."""
    return (SERVICE_ORG, f"service:{service}")


class RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"{response.request.method} {response.request.url} → {response.status_code}")
        self.response = response


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, (RetryableStatus, httpx.TransportError))


class ServiceClient:
    """An httpx client for service-to-service calls. Writes carry an Idempotency-Key, kept across retries,
    so a retried POST never acts twice."""

    def __init__(
        self, service: str, base_url: str, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.service = service
        self.settings = settings
        org, sub = service_identity(service)
        self._token = create_token(sub=sub, org=org, roles=[Role.admin], ttl_seconds=24 * 3600, settings=settings)
        self.client = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            timeout=httpx.Timeout(settings.http_timeout_seconds, connect=min(2.0, settings.http_timeout_seconds)),
            headers={"User-Agent": f"reliefhub-{service}"},
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        """Send with retries on connection errors and 429/502/503/504; returns the last response."""
        headers = {"Authorization": f"Bearer {self._token}"}
        if method.upper() == "POST":
            headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        retrying = AsyncRetrying(
            stop=stop_after_attempt(max(self.settings.http_retries, 0) + 1),
            wait=wait_exponential_jitter(multiplier=0.1, max=2.0, jitter=0.1),  # `initial` is deprecated
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    traceparent = current_traceparent()
                    if traceparent:
                        headers["traceparent"] = traceparent
                    response = await self.client.request(method, path, json=json, params=params, headers=headers)
                    if response.status_code in RETRY_STATUSES:
                        raise RetryableStatus(response)
                    return response
        except RetryableStatus as exc:
            return exc.response
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self.client.aclose()
