"""A real HTTP receiver for webhook tests: served by uvicorn on a loopback port, verifying every request's
signature with the `standardwebhooks` library against the secrets it is told about."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified_with: list[str]  # which of the known secrets verify it
    received_at: float = field(default_factory=time.monotonic)  # the event loop's clock

    @property
    def event(self) -> dict[str, Any]:
        return dict(orjson.loads(self.body))


@dataclass
class Receiver:
    """`answers[path]` is a list of (status, headers) served in turn (the last one repeats); `delay` seconds per
    path; `on_event[path]` is called with each verified event after answering."""

    port: int
    secrets: dict[str, str] = field(default_factory=dict)  # path → secret; several may be known via `extra`
    extra_secrets: list[str] = field(default_factory=list)
    answers: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)
    bodies: dict[str, bytes] = field(default_factory=dict)  # what a path answers with (else "status <code>")
    on_event: dict[str, Callable[[dict[str, Any]], Coroutine[Any, Any, None]]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    in_flight: dict[str, int] = field(default_factory=dict)  # requests being answered now, per path
    peak: dict[str, int] = field(default_factory=dict)  # the most ever answered at once, per path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def handle(self, request: Request) -> Response:
        path = request.url.path
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        known = [s for s in [self.secrets.get(path), *self.extra_secrets] if s]
        verified = []
        for secret in known:
            try:
                Webhook(secret).verify(body, headers)
                verified.append(secret)
            except WebhookVerificationError:
                pass
        self.received.append(Received(path, headers, body, verified))
        self.in_flight[path] = self.in_flight.get(path, 0) + 1
        self.peak[path] = max(self.peak.get(path, 0), self.in_flight[path])
        try:
            if self.delay.get(path):
                await asyncio.sleep(self.delay[path])
        finally:
            self.in_flight[path] -= 1
        script = self.answers.get(path) or [(200, {})]
        status, extra = script.pop(0) if len(script) > 1 else script[0]
        callback = self.on_event.get(path)
        if callback is not None and verified and 200 <= status < 300:
            task = asyncio.create_task(callback(orjson.loads(body)))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        content = self.bodies.get(path, f"status {status}".encode())
        return Response(content, status_code=status, headers=extra)


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serve_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver(port=free_port())
    app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=receiver.port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
        for t in list(receiver.tasks):
            t.cancel()
