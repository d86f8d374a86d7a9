"""Redis stopped in the middle of a burst of needs and started again: the API never depends on Redis (the outbox
holds the events), and once Redis is back every event reaches every consumer group, none twice.

The relay publishes a batch with XADD and then marks its rows `published_at` in the same PostgreSQL transaction:
a failure before the commit leaves the rows to be published again (duplicates in the stream, absorbed by the
inboxes), so nothing is lost while Redis is down or dies mid-batch. A Redis that comes back *without its data*
(no persistence, a lost volume, failover to a lagging replica) would have lost the events that no group had
handled yet; the relay notices (its epoch key is gone) and publishes the recent ones again
(`relay_republish_seconds`), and the inboxes absorb what was handled already. The last test shows it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from reliefhub.gateway import Gateway
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import N95, QUILT, RICE, WATER
from tests.helpers.db import scalar
from tests.helpers.faults import (
    EFFECT_GROUP,
    NEEDS_GROUPS,
    NEEDS_STREAM,
    FaultServers,
    effect_counts,
    redis_is_down,
    running_workers,
)
from tests.helpers.needs import create_need, create_site, need_body
from tests.helpers.streams import publish
from tests.helpers.waiting import eventually

N_NEEDS = 1000
CONCURRENCY = 20
STOP_AFTER = 250  # responses before Redis is stopped
ITEMS = [N95, RICE, WATER, QUILT]
GROUP_INBOXES = {**NEEDS_GROUPS, EFFECT_GROUP: "needs"}


def body(site_id: str, i: int) -> dict[str, Any]:
    lines = [{"item_code": ITEMS[(i + k) % len(ITEMS)], "quantity": 1 + i % 7} for k in range(1 + i % 2)]
    return need_body(site_id, *lines, title=f"burst {i}")


def delivery_sql() -> str:
    """One query: the needs outbox rows not yet published, then, per group, how many of the needs service's
    events its inbox holds."""
    per_group = [
        f"(SELECT count(*) FROM \"{schema}\".inbox_event WHERE consumer = '{group}' "
        "AND event_id IN (SELECT id::text FROM needs.outbox_event))"
        for group, schema in GROUP_INBOXES.items()
    ]
    return "SELECT (SELECT count(*) FROM needs.outbox_event WHERE published_at IS NULL), " + ", ".join(per_group)


async def test_a_burst_of_needs_survives_a_redis_outage_and_every_event_is_handled_once(
    client: httpx.AsyncClient,
    gateway: Gateway,
    engine: AsyncEngine,
    redis: Redis,
    auth: TokenFactory,
    fault_servers: FaultServers,
    workers: None,
) -> None:
    """1,000 needs, 20 at a time; Redis is stopped after 250 answers and started again (same port, same
    append-only file) once the burst is over."""
    h = auth("frontline", org="org-faults")
    sites = [(await create_site(client, h, name=f"站点 {n}"))["id"] for n in range(10)]
    gate = asyncio.Semaphore(CONCURRENCY)
    statuses: list[int] = []
    lines: list[str] = []
    answered_while_down = 0
    enough = asyncio.Event()
    down = asyncio.Event()

    async def post(i: int) -> None:
        nonlocal answered_while_down
        async with gate:
            r = await asyncio.wait_for(client.post("/v1/needs", headers=h, json=body(sites[i % 10], i)), timeout=30)
        statuses.append(r.status_code)
        if r.status_code == 201:
            lines.extend(line["id"] for line in r.json()["lines"])
            answered_while_down += down.is_set()
        if len(statuses) == STOP_AFTER:
            enough.set()

    async def outage() -> None:
        await enough.wait()
        await asyncio.to_thread(fault_servers.stop_redis)
        down.set()

    stopper = asyncio.create_task(outage())
    await asyncio.gather(*(post(i) for i in range(N_NEEDS)))
    await asyncio.wait_for(stopper, timeout=20)

    assert statuses == [201] * N_NEEDS, {s: statuses.count(s) for s in set(statuses)}
    assert answered_while_down >= 500, answered_while_down  # accepted while Redis was away
    assert await redis_is_down(redis)
    unpublished = "SELECT count(*) FROM needs.outbox_event WHERE published_at IS NULL"
    assert await scalar(engine, unpublished) >= answered_while_down  # their events wait in the outbox
    events = int(await scalar(engine, "SELECT count(*) FROM needs.outbox_event"))
    assert events == N_NEEDS + len(sites)

    await asyncio.to_thread(fault_servers.start_redis)

    query = text(delivery_sql())
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        async with engine.connect() as conn:
            unpublished_now, *delivered = (await conn.execute(query)).one()
        if unpublished_now == 0 and delivered == [events] * len(GROUP_INBOXES):
            break
        state = (unpublished_now, dict(zip(GROUP_INBOXES, delivered, strict=True)))
        assert asyncio.get_running_loop().time() < deadline, state
        await asyncio.sleep(0.5)

    # Each group's inbox holds every event exactly once (its key), and the effects that would show a second
    # application (one row per commit; one projection row per line) show none.
    effects = await effect_counts(engine)
    assert len(effects) == events and set(effects.values()) == {1}
    async with engine.connect() as conn:
        total, distinct = (
            await conn.execute(text("SELECT count(*), count(DISTINCT line_id) FROM matching.need_line_view"))
        ).one()
        projected = {r[0] for r in await conn.execute(text("SELECT line_id::text FROM matching.need_line_view"))}
    assert total == distinct == len(lines) and projected == set(lines)
    assert await redis.xlen(NEEDS_STREAM) >= events  # the relay may have published a batch twice
    assert await redis.xlen(f"{NEEDS_STREAM}.dead") == 0


async def test_a_redis_that_restarts_empty_gets_everything_again(
    client: httpx.AsyncClient,
    gateway: Gateway,
    engine: AsyncEngine,
    redis: Redis,
    auth: TokenFactory,
    fault_servers: FaultServers,
) -> None:
    """Redis restarts without its data. Events still in the outbox (posted while it was down) reach the new
    Redis and every group; so do the events the relay had already put on the old Redis, that no group had
    handled yet: the relay publishes them again."""
    h = auth("frontline", org="org-faults")
    site = await create_site(client, h)
    relayed = [await create_need(client, h, site["id"], title=f"before {i}") for i in range(5)]
    assert await publish(gateway, "needs") == 6  # on the stream, rows marked published; no consumer has run yet

    await asyncio.to_thread(fault_servers.stop_redis)
    while_down = [await create_need(client, h, site["id"], title=f"while down {i}") for i in range(5)]
    await asyncio.to_thread(fault_servers.start_redis, fresh=True)  # same port, empty: the streams are gone

    async def projected(need_id: str) -> bool:
        n = await scalar(engine, "SELECT count(*) FROM matching.need_line_view WHERE need_id = :n", n=need_id)
        return bool(n)

    async with running_workers(gateway):

        async def outbox_delivered() -> bool:
            return all([await projected(n["id"]) for n in while_down])

        await eventually(outbox_delivered, seconds=20)
        lost = [n["id"] for n in relayed if not await projected(n["id"])]
    assert not lost, f"{len(lost)} of {len(relayed)} events relayed before Redis lost its data never arrived"
