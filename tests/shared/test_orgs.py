"""The kit's view of the organisations registry (shared.orgs) against a real HTTP server standing in for the
partners service: approved organisations are remembered for a while, other answers asked again, and a registry
that cannot be reached refuses writes — except for organisations it approved a little while ago."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from reliefhub.devservers import free_port
from services.needs.main import SERVICE as NEEDS
from shared.errors import ServiceUnavailable
from shared.orgs import OrgStatuses
from shared.runtime import Runtime, calls_of
from shared.settings import Settings

STATUSES = {"org-ok": "approved", "org-wait": "pending"}


@asynccontextmanager
async def registry() -> AsyncIterator[tuple[str, list[str]]]:
    asked: list[str] = []

    async def organization(request: Request) -> JSONResponse:
        org = request.path_params["org"]
        asked.append(org)
        if org not in STATUSES:
            return JSONResponse({"status": 404}, status_code=404)
        return JSONResponse({"id": org, "status": STATUSES[org]})

    app = Starlette(routes=[Route("/v1/organizations/{org}", organization)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", asked
    finally:
        server.should_exit = True
        await task


def _settings(url: str, **more: object) -> Settings:
    return Settings(
        environment="test",
        jwt_secret="test-secret-" + "t" * 32,
        org_registry=True,
        http_retries=0,
        http_timeout_seconds=2.0,
        service_urls={"partners": url},
        **more,  # type: ignore[arg-type]
    )


async def test_approved_is_remembered_and_everything_else_asked_again() -> None:
    async with registry() as (url, asked):
        rt = Runtime.start(NEEDS, _settings(url))
        try:
            statuses = OrgStatuses()
            assert [await statuses.status(rt, "org-ok") for _ in range(3)] == ["approved"] * 3
            assert [await statuses.status(rt, "org-wait") for _ in range(2)] == ["pending"] * 2
            assert await statuses.status(rt, "org-none") is None
            assert asked == ["org-ok", "org-wait", "org-wait", "org-none"]
        finally:
            await rt.close()


async def test_an_unreachable_registry_refuses_unless_it_approved_the_organisation_recently() -> None:
    rt = Runtime.start(NEEDS, _settings(f"http://127.0.0.1:{free_port()}", org_status_cache_seconds=0.0))
    try:
        statuses = OrgStatuses()
        with pytest.raises(ServiceUnavailable):
            await statuses.status(rt, "org-ok")
        statuses.approved_at["org-ok"] = time.monotonic() - 1  # it said so a second ago
        assert await statuses.status(rt, "org-ok") == "approved"
        statuses.approved_at["org-ok"] = time.monotonic() - rt.settings.org_status_stale_seconds - 1
        with pytest.raises(ServiceUnavailable):
            await statuses.status(rt, "org-ok")
    finally:
        await rt.close()


def test_every_service_calls_the_registry_when_it_is_on() -> None:
    on = _settings("http://partners.internal:8000")
    assert "partners" in calls_of(NEEDS, on)
    assert "partners" not in calls_of(NEEDS, Settings(environment="test", jwt_secret="test-secret-" + "t" * 32))
