"""Calling a ReliefHub API over HTTP: retries with backoff (`RetryingClient`), and for service-to-service calls
timeouts, a service token and trace context (`ServiceClient`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from shared.auth import SERVICE_ORG, Role, create_token
from shared.settings import Settings
from shared.tracing import current_traceparent

RETRY_STATUSES = frozenset({429, 502, 503, 504})


def service_identity(service: str) -> tuple[str, str]:
    """The (org, sub) a service's calls to the others carry (see `Principal.identity`)."""
    return (SERVICE_ORG, f"service:{service}")


def retryable_response(response: httpx.Response) -> bool:
    """An answer that says "not now": rate limited, or a gateway or service that is unavailable."""
    return response.status_code in RETRY_STATUSES


class RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"{response.request.method} {response.request.url} → {response.status_code}")
        self.response = response


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, (RetryableStatus, httpx.TransportError))


class _Backoff:
    """Exponential backoff with jitter (0.1 s, doubling, at most `max_wait`); optionally at least the answer's
    Retry-After, still at most `max_wait`."""

    def __init__(self, max_wait: float, honour_retry_after: bool) -> None:
        self.exponential = wait_exponential_jitter(multiplier=0.1, max=max_wait, jitter=0.1)  # `initial` is deprecated
        self.max_wait = max_wait
        self.honour_retry_after = honour_retry_after

    def __call__(self, state: RetryCallState) -> float:
        wait = float(self.exponential(state))
        failure = state.outcome.exception() if state.outcome is not None else None
        if self.honour_retry_after and isinstance(failure, RetryableStatus):
            try:
                wait = max(wait, float(failure.response.headers.get("Retry-After", "0")))
            except ValueError:  # an HTTP date: the backoff alone
                pass
        return min(wait, self.max_wait)


class RetryingClient:
    """Requests over an httpx client, retrying what is safe to retry: connection errors and the answers
    `retry_response` picks (429/502/503/504 by default). A POST carries an Idempotency-Key, kept across
    retries, so a retried write never acts twice. When the attempts run out, a retryable answer is returned and
    a connection error raised."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        attempts: int,
        max_wait: float = 2.0,
        honour_retry_after: bool = False,
        retry_response: Callable[[httpx.Response], bool] = retryable_response,
    ) -> None:
        self.client = client
        self.attempts = max(attempts, 1)
        self.retry_response = retry_response
        self._backoff = _Backoff(max_wait, honour_retry_after)

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        send = dict(headers or {})
        if method.upper() == "POST":
            send["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=self._backoff,
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self.send(method, path, headers=send, json=json, params=params)
                    if self.retry_response(response):
                        raise RetryableStatus(response)
                    return response
        except RetryableStatus as exc:
            return exc.response
        raise AssertionError("unreachable")

    async def send(
        self, method: str, path: str, *, headers: dict[str, str], json: Any, params: dict[str, Any] | None
    ) -> httpx.Response:
        """One attempt; a subclass adds what every attempt carries or counts."""
        return await self.client.request(method, path, headers=headers, json=json, params=params)

    async def aclose(self) -> None:
        await self.client.aclose()


class ServiceClient(RetryingClient):
    """An httpx client for service-to-service calls: a service token, timeouts, trace context, and
    `settings.http_retries` retries."""

    def __init__(
        self, service: str, base_url: str, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.service = service
        self.settings = settings
        org, sub = service_identity(service)
        token = create_token(sub=sub, org=org, roles=[Role.admin], ttl_seconds=24 * 3600, settings=settings)
        client = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            timeout=httpx.Timeout(settings.http_timeout_seconds, connect=min(2.0, settings.http_timeout_seconds)),
            headers={"User-Agent": f"reliefhub-{service}", "Authorization": f"Bearer {token}"},
        )
        super().__init__(client, attempts=max(settings.http_retries, 0) + 1)

    async def send(
        self, method: str, path: str, *, headers: dict[str, str], json: Any, params: dict[str, Any] | None
    ) -> httpx.Response:
        traceparent = current_traceparent()
        if traceparent:
            headers = {**headers, "traceparent": traceparent}
        return await super().send(method, path, headers=headers, json=json, params=params)
