"""The kit's app behind a real uvicorn on a loopback port, served as `reliefhub dev` and `serve` configure it:
an unhandled error is a 500 problem that leaves the keep-alive connection usable, and no `server` header."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request

from reliefhub.gateway import UVICORN_OPTIONS
from shared.app import create_service_app
from shared.db import make_kit_tables, service_metadata
from shared.service import ServiceSpec
from shared.settings import Settings
from tests.helpers.browser import serving
from tests.helpers.problems import assert_problem


def kit_app(settings: Settings) -> FastAPI:
    router = APIRouter(prefix="/v1")

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("not handled anywhere")

    @router.get("/peer")
    async def peer(request: Request) -> dict[str, int]:
        """The client's port: the same port, the same connection."""
        assert request.client is not None
        return {"port": request.client.port}

    metadata = service_metadata("kit_test")
    spec = ServiceSpec(
        name="kit_test",
        description="a bare service",
        metadata=metadata,
        kit=make_kit_tables(metadata),
        routers=[router],
        migrations=Path("."),
    )
    return create_service_app(spec, settings)


@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_an_unhandled_error_keeps_the_connection_and_no_server_header(settings: Settings, http: str) -> None:
    served = serving(kit_app(settings), http=http, **UVICORN_OPTIONS)
    async with served as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
        before = await client.get("/v1/peer")
        failed = await client.get("/v1/boom")
        after = await client.get("/v1/peer")

    assert before.status_code == after.status_code == 200
    body = assert_problem(failed, 500)
    assert "not handled" not in failed.text and body["detail"] == "An unexpected error occurred."
    assert "traceparent" in failed.headers
    assert after.json()["port"] == before.json()["port"], "the server closed the keep-alive connection"
    for response in (before, failed, after):
        assert "server" not in response.headers
        assert "date" in response.headers
