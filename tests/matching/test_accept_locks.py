"""Accepting holds no lock on the proposal while supply reserves, and loses nothing and doubles nothing when
other decisions race it: two accepts of one proposal reserve once; a run superseding the proposal while supply
reserves leaves no reservation behind.

Each test holds the proposal's lot FOR UPDATE in a connection of its own, so that supply's reservation (and
with it the accept) waits there; the accept runs as a task of its own meanwhile (the in-process client answers
a request only when the whole app has answered it, so awaiting it before the lot is let go would wait
forever). The lot is always let go, and every task awaited, before the test ends: the next test's truncation
would otherwise wait on the lot's lock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import BEIJING, RICE
from tests.helpers.db import rows
from tests.helpers.http import get_json
from tests.helpers.matching import allocation_run
from tests.helpers.needs import shelter_need
from tests.helpers.problems import assert_problem
from tests.helpers.streams import project
from tests.helpers.supply import donor_offer, get_lot

RESERVATIONS = "SELECT id::text, quantity, status FROM supply.reservation WHERE reference = :r"
DECISIONS = "SELECT action, quantity, actor FROM matching.decision WHERE proposal_id = :p ORDER BY created_at"
# Backends waiting on a lock that the holder's backend holds.
WAITING_ON = "SELECT count(*) FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid))"


async def proposed(client: httpx.AsyncClient, auth: TokenFactory, gateway: Any) -> dict[str, Any]:
    """One open proposal: 60 rice near Pudong for a shelter's need of 100."""
    await shelter_need(client, auth, {"item_code": RICE, "quantity": 100})
    await donor_offer(client, auth, {"quantity": 60})
    await project(gateway)
    (proposal,) = (await allocation_run(client, auth))["proposals"]
    out: dict[str, Any] = proposal
    return out


@contextlib.asynccontextmanager
async def lot_held(engine: AsyncEngine, lot_id: str) -> AsyncIterator[tuple[AsyncConnection, int]]:
    """The lot's row locked FOR UPDATE by a transaction of its own (and its backend's pid) until the block
    ends: supply's reservations of it wait meanwhile."""
    async with engine.connect() as conn:
        await conn.begin()
        try:
            await conn.execute(text("SELECT 1 FROM supply.lot WHERE id = :id FOR UPDATE"), {"id": lot_id})
            pid = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            yield conn, pid
        finally:
            await conn.rollback()


async def waiting_on(engine: AsyncEngine, holder: int, count: int = 1) -> None:
    """Until `count` backends wait on a lock the holder's backend holds (at most 15 s)."""
    for _ in range(300):
        async with engine.connect() as conn:
            if int((await conn.execute(text(WAITING_ON), {"holder": holder})).scalar_one()) >= count:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {count} request(s) came to wait on the held lot")


async def settled(*tasks: asyncio.Task[httpx.Response]) -> list[httpx.Response]:
    """The tasks' responses (within 30 s: a hang fails the test rather than the run)."""
    return list(await asyncio.wait_for(asyncio.gather(*tasks), timeout=30))


def started(request: Awaitable[httpx.Response]) -> asyncio.Task[httpx.Response]:
    return asyncio.ensure_future(request)


async def locked_nowait(engine: AsyncEngine, proposal_id: str) -> bool:
    """Whether another transaction can lock the proposal at once (SELECT … FOR UPDATE NOWAIT)."""
    async with engine.connect() as conn, conn.begin():
        try:
            await conn.execute(
                text("SELECT 1 FROM matching.proposal WHERE id = :id FOR UPDATE NOWAIT"), {"id": proposal_id}
            )
        except DBAPIError as exc:
            assert "could not obtain lock" in str(exc), exc
            return False
        return True


async def test_the_proposal_is_not_locked_while_supply_reserves(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any, engine: AsyncEngine
) -> None:
    coordinator = auth("coordinator", sub="coord-wu")
    proposal = await proposed(client, auth, gateway)
    accept: asyncio.Task[httpx.Response] | None = None
    try:
        async with lot_held(engine, proposal["lot_id"]) as (_, holder):
            accept = started(client.post(f"/v1/proposals/{proposal['id']}/accept", headers=coordinator))
            await waiting_on(engine, holder)  # supply's reservation waits on the lot
            assert await locked_nowait(engine, proposal["id"]), "the accept holds the proposal across its call"
            # A decision on the proposal meanwhile would not wait either: the proposal is still open.
            assert (await get_json(client, f"/v1/proposals/{proposal['id']}", coordinator))["status"] == "proposed"
    finally:
        responses = await settled(accept) if accept is not None else []
    (r,) = responses
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["accepted_quantity"], body["decided_by"]) == ("accepted", 60, "coord-wu")
    assert await rows(engine, RESERVATIONS, r=proposal["id"]) == [
        {"id": body["reservation_id"], "quantity": 60, "status": "active"}
    ]
    assert (await get_lot(client, coordinator, proposal["lot_id"]))["quantity_reserved"] == 60


async def test_two_accepts_of_one_proposal_reserve_once(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any, engine: AsyncEngine
) -> None:
    coordinator = auth("coordinator", sub="coord-qian")
    proposal = await proposed(client, auth, gateway)
    accept = f"/v1/proposals/{proposal['id']}/accept"
    tasks: list[asyncio.Task[httpx.Response]] = []
    try:
        async with lot_held(engine, proposal["lot_id"]) as (_, holder):
            tasks = [started(client.post(accept, headers=coordinator)) for _ in range(2)]
            await waiting_on(engine, holder)  # the first reservation waits on the lot, its twin on the first
            await asyncio.sleep(0.2)
    finally:
        responses = await settled(*tasks)
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    assert len({r.json()["reservation_id"] for r in responses}) == 1
    assert all(r.json()["accepted_quantity"] == 60 for r in responses)
    (reservation,) = await rows(engine, RESERVATIONS, r=proposal["id"])
    assert (reservation["quantity"], reservation["status"]) == (60, "active")
    assert reservation["id"] == responses[0].json()["reservation_id"]
    assert await rows(engine, DECISIONS, p=proposal["id"]) == [
        {"action": "accept", "quantity": 60, "actor": "coord-qian"}
    ]
    assert (await get_lot(client, coordinator, proposal["lot_id"]))["quantity_reserved"] == 60


async def test_a_run_superseding_the_proposal_meanwhile_leaves_no_reservation(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any, engine: AsyncEngine
) -> None:
    coordinator = auth("coordinator", sub="coord-sun")
    proposal = await proposed(client, auth, gateway)
    accept: asyncio.Task[httpx.Response] | None = None
    try:
        async with lot_held(engine, proposal["lot_id"]) as (_, holder):
            accept = started(client.post(f"/v1/proposals/{proposal['id']}/accept", headers=coordinator))
            await waiting_on(engine, holder)
            # A Beijing need now competes for the rice: a manual run spreads the lot, superseding the proposal
            # (its write phase locks the proposal: it does not wait on the accept).
            await shelter_need(client, auth, {"item_code": RICE, "quantity": 50}, where=BEIJING, org="org-bj")
            await project(gateway)
            run = await asyncio.wait_for(allocation_run(client, auth, item_codes=[RICE]), timeout=20)
            assert run["counts"]["superseded"] == 1
    finally:
        responses = await settled(accept) if accept is not None else []
    (r,) = responses
    body = assert_problem(r, 409, "proposal-not-open")
    assert "cancelled" in body["detail"]
    superseded = await get_json(client, f"/v1/proposals/{proposal['id']}", coordinator)
    assert superseded["status"] == "cancelled" and superseded["reason"] == f"superseded by run {run['id']}"
    assert superseded["reservation_id"] is None
    # The reservation the accept made in supply was released again: the lot holds nothing for it.
    assert [(x["quantity"], x["status"]) for x in await rows(engine, RESERVATIONS, r=proposal["id"])] == [
        (60, "released")
    ]
    assert (await get_lot(client, coordinator, proposal["lot_id"]))["quantity_reserved"] == 0
    assert [d["action"] for d in await rows(engine, DECISIONS, p=proposal["id"])] == ["cancel"]
