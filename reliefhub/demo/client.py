"""The demo's HTTP side: a client on the kit's retrying client (tokens minted locally, bounded concurrency,
idempotency keys on POSTs), and the two ways the demo waits for things."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import httpx

from reliefhub.demo.data import JSON
from shared.auth import Role, create_token
from shared.http import RetryingClient, retryable_response
from shared.settings import Settings

T = TypeVar("T")

ATTEMPTS = 8
MAX_WAIT_SECONDS = 10.0


class DemoError(RuntimeError):
    """The demo cannot go on: a request failed or something it waits for did not happen in time."""


def problem_text(response: httpx.Response) -> str:
    """What a problem+json answer says, short enough for one line."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if not isinstance(body, dict):
        return str(body)[:300]
    text = str(body.get("detail") or body.get("title") or body)
    errors = body.get("errors")
    if errors:
        text += " " + "; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in errors[:5])
    return text[:500]


def _retry(response: httpx.Response) -> bool:
    """The kit's retryable answers, and a repeated POST whose first attempt is still being processed."""
    return retryable_response(response) or (
        response.status_code == 409 and "idempotency-key-in-flight" in response.text
    )


class _Bounded(RetryingClient):
    """Every attempt holds one of the demo's places in flight (not its waits between attempts) and is counted."""

    def __init__(self, client: httpx.AsyncClient, concurrency: int) -> None:
        super().__init__(
            client, attempts=ATTEMPTS, max_wait=MAX_WAIT_SECONDS, honour_retry_after=True, retry_response=_retry
        )
        self.limit = asyncio.Semaphore(concurrency)
        self.attempts_sent = 0

    async def send(
        self, method: str, path: str, *, headers: dict[str, str], json: Any, params: dict[str, Any] | None
    ) -> httpx.Response:
        async with self.limit:
            self.attempts_sent += 1
            return await super().send(method, path, headers=headers, json=json, params=params)


class Api:
    """The demo's HTTP client: bearer tokens minted locally, bounded concurrency, idempotency keys on POSTs,
    retries (the kit's) of what is safe to retry."""

    def __init__(self, client: httpx.AsyncClient, settings: Settings, concurrency: int, tag: str) -> None:
        self.settings = settings
        self.tag = tag
        self.concurrency = concurrency
        self._http = _Bounded(client, concurrency)
        self._tokens: dict[tuple[str, str, str | None], dict[str, str]] = {}

    @property
    def requests(self) -> int:
        return self._http.attempts_sent

    def org(self, name: str) -> str:
        return f"demo-{self.tag}-{name}"

    def auth(self, role: Role, org: str, group: str | None = None) -> dict[str, str]:
        key = (role.value, org, group)
        if key not in self._tokens:
            token = create_token(
                sub=f"{org}-{role.value}",
                org=org,
                roles=[role],
                group=group,
                ttl_seconds=6 * 3600,
                settings=self.settings,
            )
            self._tokens[key] = {"Authorization": f"Bearer {token}"}
        return self._tokens[key]

    async def call(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        key: str | None = None,
        ok: tuple[int, ...] = (200, 201),
        allow: tuple[int, ...] = (),
    ) -> httpx.Response:
        """One request; a status outside `ok` and `allow` is a DemoError naming the request and the problem."""
        try:
            response = await self._http.request(
                method,
                path,
                headers=headers,
                json=json,
                params=params,
                idempotency_key=f"demo-{self.tag}-{key or secrets.token_hex(8)}",
            )
        except httpx.TransportError as exc:
            raise DemoError(f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc
        if response.status_code in ok or response.status_code in allow:
            return response
        hint = (
            " (does the server sign tokens with another RELIEFHUB_JWT_SECRET?)" if response.status_code == 401 else ""
        )
        raise DemoError(f"{method} {path} answered {response.status_code}: {problem_text(response)}{hint}")

    async def json(self, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any) -> JSON:
        body = (await self.call(method, path, headers, **kw)).json()
        assert isinstance(body, dict)
        return body

    async def all(self, path: str, headers: dict[str, str], params: dict[str, Any] | None = None) -> list[JSON]:
        """Every page of a list."""
        items: list[JSON] = []
        query = {**(params or {}), "limit": 500}
        while True:
            page = await self.json("GET", path, headers, params=query)
            items.extend(page["items"])
            if not page.get("next_cursor"):
                return items
            query["cursor"] = page["next_cursor"]

    async def changed(
        self, path: str, headers: dict[str, str], params: dict[str, Any] | None, since: str
    ) -> tuple[list[JSON], str]:
        """What of a change-tracked list changed after `since` (a `sync_cursor`, or "0" for everything), and the
        cursor to ask from next time: a poll that costs what changed, not the whole list."""
        items: list[JSON] = []
        while True:
            page = await self.json(
                "GET", path, headers, params={**(params or {}), "limit": 500, "updated_since": since}
            )
            items.extend(page["items"])
            since = page["sync_cursor"]
            if not page.get("has_more"):
                return items, since


async def wait_for(
    what: Callable[[], str],
    probe: Callable[[], Awaitable[T | None]],
    wait_seconds: float,
    interval: float = 0.4,
    say: Callable[[str], None] | None = None,
) -> T:
    """Poll `probe` until it returns something other than None; DemoError after `wait_seconds` seconds, saying what
    was awaited and how far it got (`what` is called then, and every 15 s to `say`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    next_note = loop.time() + 15
    while True:
        value = await probe()
        if value is not None:
            return value
        if loop.time() > deadline:
            raise DemoError(f"gave up after {wait_seconds:.0f} s waiting for {what()}")
        if say is not None and loop.time() > next_note:
            say(f"  still waiting for {what()}")
            next_note = loop.time() + 15
        await asyncio.sleep(interval)


async def gather(coros: Sequence[Awaitable[T]]) -> list[T]:
    """Run everything (the Api's semaphore bounds what is in flight); the first failure cancels the rest."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
