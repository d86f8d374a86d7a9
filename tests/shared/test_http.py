"""ServiceClient against a real HTTP server on 127.0.0.1: retries keep one Idempotency-Key, a service token,
trace context, refused connections and timeouts."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from reliefhub.devservers import free_port
from shared.auth import Role, decode_token
from shared.http import RetryingClient, ServiceClient, retryable_response
from shared.settings import Settings
from shared.tracing import continue_trace, parse_trace_id

SETTINGS = Settings(environment="test", jwt_secret="test-secret-" + "t" * 32, http_timeout_seconds=2.0, http_retries=3)


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedServer:
    """Answers with the scripted statuses in turn (the last one repeats), after `delay` seconds."""

    statuses: list[int]
    delay: float = 0.0
    retry_after: str | None = None
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, target, _version = request_line.split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.seen.append(Seen(method, target, headers, body))
            status = self.statuses[min(len(self.seen), len(self.statuses)) - 1]
            if self.delay:
                await asyncio.sleep(self.delay)
            payload = json.dumps({"attempt": len(self.seen)}).encode()
            retry_after = f"Retry-After: {self.retry_after}\r\n" if self.retry_after else ""
            writer.write(
                f"HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\n{retry_after}"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ScriptedServer]:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for task in list(self._tasks):  # a sleeping handler must not outlive the test
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()


@asynccontextmanager
async def service_client(port: int, settings: Settings = SETTINGS) -> AsyncIterator[ServiceClient]:
    client = ServiceClient("matching", f"http://127.0.0.1:{port}", settings)
    try:
        yield client
    finally:
        await client.aclose()


async def test_a_post_retried_after_503s_is_one_logical_call_with_one_key() -> None:
    trace = continue_trace(None)
    async with ScriptedServer([503, 503, 201]).running() as server, service_client(server.port) as client:
        response = await client.request("POST", "/v1/lots/1/reservations", json={"quantity": 3, "reference": "p-1"})

    assert response.status_code == 201 and response.json() == {"attempt": 3}
    assert len(server.seen) == 3
    keys = {s.headers["idempotency-key"] for s in server.seen}
    assert len(keys) == 1 and uuid.UUID(keys.pop())
    for seen in server.seen:
        assert (seen.method, seen.target) == ("POST", "/v1/lots/1/reservations")
        assert json.loads(seen.body) == {"quantity": 3, "reference": "p-1"}
        scheme, _, token = seen.headers["authorization"].partition(" ")
        principal = decode_token(token, SETTINGS)
        assert scheme == "Bearer" and principal.roles == frozenset({Role.admin})
        assert (principal.sub, principal.org) == ("service:matching", "reliefhub")
        assert parse_trace_id(seen.headers["traceparent"]) == parse_trace_id(trace)
        assert seen.headers["user-agent"] == "reliefhub-matching"


async def test_the_callers_idempotency_key_is_sent_and_reads_carry_none() -> None:
    async with ScriptedServer([502, 200]).running() as server, service_client(server.port) as client:
        got = await client.request("GET", "/v1/sites/1", params={"fields": "address"})
        posted = await client.request("POST", "/v1/x", json={}, idempotency_key="proposal-42")
    assert got.status_code == 200 and posted.status_code == 200
    assert [s.target for s in server.seen] == ["/v1/sites/1?fields=address", "/v1/sites/1?fields=address", "/v1/x"]
    assert "idempotency-key" not in server.seen[0].headers and "idempotency-key" not in server.seen[1].headers
    assert server.seen[2].headers["idempotency-key"] == "proposal-42"


async def test_retries_stop_after_http_retries_and_return_the_last_answer() -> None:
    settings = SETTINGS.model_copy(update={"http_retries": 2})
    async with ScriptedServer([503]).running() as server, service_client(server.port, settings) as client:
        response = await client.request("POST", "/v1/x", json={})
    assert response.status_code == 503
    assert len(server.seen) == 3


@pytest.mark.parametrize("status", [400, 404, 409, 422, 500])
async def test_other_statuses_are_not_retried(status: int) -> None:
    async with ScriptedServer([status, 201]).running() as server, service_client(server.port) as client:
        response = await client.request("POST", "/v1/x", json={})
    assert response.status_code == status
    assert len(server.seen) == 1


async def test_a_refused_connection_raises_connect_error_after_retries() -> None:
    settings = SETTINGS.model_copy(update={"http_retries": 1})
    async with service_client(free_port(), settings) as client:
        with pytest.raises(httpx.ConnectError):
            await client.request("POST", "/v1/x", json={})


async def test_a_slow_server_times_out_per_attempt() -> None:
    settings = SETTINGS.model_copy(update={"http_timeout_seconds": 0.2, "http_retries": 1})
    async with ScriptedServer([201], delay=5.0).running() as server, service_client(server.port, settings) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await client.request("POST", "/v1/x", json={})
        elapsed = time.monotonic() - started
    assert len(server.seen) == 2  # one retry, then the timeout is raised
    assert elapsed < 4.0  # far less than the server's 5 s per answer


async def test_a_retrying_client_retries_what_its_caller_names_and_can_wait_for_retry_after() -> None:
    def in_flight(response: httpx.Response) -> bool:
        return retryable_response(response) or response.status_code == 409

    async with ScriptedServer([409, 503, 201], retry_after="0.4").running() as server:
        http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}")
        client = RetryingClient(http, attempts=3, honour_retry_after=True, retry_response=in_flight)
        try:
            started = time.monotonic()
            response = await client.request("POST", "/v1/x", json={}, idempotency_key="k-1")
            elapsed = time.monotonic() - started
        finally:
            await client.aclose()
    assert response.status_code == 201 and len(server.seen) == 3
    assert {s.headers["idempotency-key"] for s in server.seen} == {"k-1"}
    assert elapsed >= 0.8  # two waits of the answer's Retry-After, longer than the backoff's 0.1 s and 0.2 s


async def test_retry_after_never_stretches_a_wait_past_the_clients_maximum() -> None:
    async with ScriptedServer([429, 200], retry_after="30").running() as server:
        http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}")
        client = RetryingClient(http, attempts=2, max_wait=0.2, honour_retry_after=True)
        try:
            started = time.monotonic()
            response = await client.request("GET", "/v1/x")
            elapsed = time.monotonic() - started
        finally:
            await client.aclose()
    assert response.status_code == 200 and len(server.seen) == 2
    assert elapsed < 10  # not the 30 s asked for
