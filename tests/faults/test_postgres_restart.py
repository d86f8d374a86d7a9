"""PostgreSQL stopped and started again under a running gateway and its workers: requests meanwhile get a prompt
503 problem+json (never a 500, never a hang), the same processes serve 201s again once it is back, and the
workers resume, including the events that were waiting in the streams during the outage."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from asyncpg import exceptions as pg_errors  # type: ignore[import-untyped]
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from reliefhub.gateway import Gateway
from shared.errors import install_error_handlers
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import N95
from tests.helpers.faults import NEEDS_STREAM, FaultServers, new_ids
from tests.helpers.needs import create_site, need_body
from tests.helpers.problems import assert_problem
from tests.helpers.streams import outbox_events, runtime, xadd_event
from tests.helpers.waiting import eventually

REQUEST_TIMEOUT = 8.0  # seconds; a request that takes longer during the outage counts as a hang
OUTAGE_SECONDS = 3.0  # longer than consumer_max_deliveries x consumer_claim_idle_ms (5 x 0.3 s)


async def projected_lines(engine: AsyncEngine, need_id: str) -> int:
    async with engine.connect() as conn:
        q = text("SELECT count(*) FROM matching.need_line_view WHERE need_id = :n")
        return int((await conn.execute(q, {"n": need_id})).scalar_one())


async def timed(request: Any) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    r: httpx.Response = await asyncio.wait_for(request, timeout=REQUEST_TIMEOUT)
    return r, time.monotonic() - start


async def test_postgres_restart_gives_503_then_recovers_without_restarting_the_app(
    client: httpx.AsyncClient,
    gateway: Gateway,
    engine: AsyncEngine,
    redis: Redis,
    auth: TokenFactory,
    fault_servers: FaultServers,
    workers: None,
) -> None:
    h = auth("frontline", org="org-faults")
    site = await create_site(client, h)
    r = await client.post("/v1/needs", headers=h, json=need_body(site["id"], {"item_code": N95, "quantity": 1}))
    assert r.status_code == 201, r.text
    before = r.json()
    await eventually(lambda: projected_lines(engine, before["id"]))
    [_site_created, need_created] = await outbox_events(engine, "needs")

    # Meanwhile a client keeps reading, through the stop, the outage and the start: only 200s and 503s.
    seen: list[int] = []
    probing = asyncio.Event()

    async def probe() -> None:
        while not probing.is_set():
            r, _took = await timed(client.get("/v1/needs", headers=h))
            seen.append(r.status_code)
            await asyncio.sleep(0.02)

    prober = asyncio.create_task(probe())
    await asyncio.to_thread(fault_servers.stop_postgres)
    try:
        for _ in range(3):
            for request in (
                client.post("/v1/needs", headers=h, json=need_body(site["id"])),
                client.get(f"/v1/needs/{before['id']}", headers=h),
                client.get("/v1/needs", headers=h),
            ):
                r, took = await timed(request)
                body = assert_problem(r, 503)
                assert body["type"] == "urn:reliefhub:problem:service-unavailable"
                assert r.headers["Retry-After"] == "2"
                assert took < 6, took
        # An event arrives while the database is away (from a service whose own database is up, or relayed just
        # before the outage): matching's consumer cannot handle it until PostgreSQL is back.
        waiting = new_ids(need_created)
        await xadd_event(redis, NEEDS_STREAM, waiting)
        await asyncio.sleep(OUTAGE_SECONDS)
    finally:
        await asyncio.to_thread(fault_servers.start_postgres)
        await asyncio.sleep(0.3)
        probing.set()
        await asyncio.wait_for(prober, timeout=REQUEST_TIMEOUT + 1)
    assert set(seen) <= {200, 503} and 503 in seen, seen

    # The same app, no restart: its pool replaces the connections that died with the server.
    statuses = []
    for _ in range(5):
        r, _took = await timed(client.post("/v1/needs", headers=h, json=need_body(site["id"])))
        statuses.append(r.status_code)
    assert statuses == [201] * 5, statuses
    after = r.json()
    r, _took = await timed(client.get(f"/v1/needs/{before['id']}", headers=h))
    assert r.status_code == 200, r.text

    # The workers resume: a need posted after the recovery reaches matching's projection, and so does the event
    # that waited in the stream through the outage (not dead-lettered as if it were poison).
    await eventually(lambda: projected_lines(engine, after["id"]), seconds=20)
    await eventually(lambda: projected_lines(engine, waiting["data"]["id"]), seconds=20)
    assert await redis.xlen(f"{NEEDS_STREAM}.dead") == 0


async def test_a_database_refusing_new_connections_while_it_shuts_down_gives_503(
    client: httpx.AsyncClient, gateway: Gateway, auth: TokenFactory, fault_servers: FaultServers
) -> None:
    """A server shutting down (or starting up) still accepts TCP connections but refuses sessions with SQLSTATE
    57P03: a request that needs a new connection then must get a 503 as well, not a 500."""
    h = auth("frontline", org="org-faults")
    site = await create_site(client, h)
    await asyncio.to_thread(fault_servers.begin_smart_shutdown)
    try:
        await runtime(gateway, "needs").engine.dispose()  # the next request opens a new connection
        for request in (
            client.post("/v1/needs", headers=h, json=need_body(site["id"])),
            client.get("/v1/needs", headers=h),
        ):
            r, took = await timed(request)
            assert_problem(r, 503)
            assert took < 6, took
    finally:
        await asyncio.to_thread(fault_servers.stop_postgres)
        await asyncio.to_thread(fault_servers.start_postgres)
    r, _took = await timed(client.post("/v1/needs", headers=h, json=need_body(site["id"])))
    assert r.status_code == 201, r.text


async def test_after_a_restart_nobody_noticed_the_pool_gives_at_most_one_503(
    client: httpx.AsyncClient, gateway: Gateway, auth: TokenFactory, fault_servers: FaultServers
) -> None:
    """No pre-ping (shared/db.py: a dropped connection invalidates the pool on first use instead): after a restart
    that no request saw, the first request on a dead pooled connection gets a 503 (retryable) and invalidates the
    whole pool; every later one is served."""
    h = auth("frontline", org="org-faults")
    site = await create_site(client, h)
    await asyncio.gather(*(client.get("/v1/needs", headers=h) for _ in range(5)))  # several pooled connections
    await asyncio.to_thread(fault_servers.stop_postgres)
    await asyncio.to_thread(fault_servers.start_postgres)
    statuses = []
    for _ in range(4):
        r, _took = await timed(client.post("/v1/needs", headers=h, json=need_body(site["id"])))
        statuses.append(r.status_code)
        if r.status_code != 201:
            assert_problem(r, 503)
    assert statuses in ([201] * 4, [503] + [201] * 3), statuses


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (pg_errors.ConnectionDoesNotExistError("connection was closed in the middle of operation"), 503),
        (pg_errors.InterfaceError("connection is closed"), 503),
        (pg_errors.AdminShutdownError("terminating connection due to administrator command"), 503),
        (pg_errors.CannotConnectNowError("the database system is starting up"), 503),
        (pg_errors.InterfaceError("cannot perform operation: another operation is in progress"), 500),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
async def test_raw_driver_errors_of_a_database_going_away_are_503(error: Exception, status: int) -> None:
    """The hot paths send statements to asyncpg directly (shared.db.driver_connection), so a server that dies
    between two of them raises asyncpg's own errors, not SQLAlchemy's: they must map to 503 all the same."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.get("/boom")
    assert_problem(r, status)
