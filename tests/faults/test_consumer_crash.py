"""A consumer that dies in the middle of a batch: what it read stays pending in its group; another consumer of
the group takes the entries over with XAUTOCLAIM once they are idle, and every effect happens exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from reliefhub.gateway import Gateway
from services.matching.events import on_need_event
from shared.events import CloudEvent
from shared.events.consumer import Consumer
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import N95, RICE
from tests.helpers.faults import NEEDS_STREAM, effect_counts, inbox_ids
from tests.helpers.needs import create_need, create_site
from tests.helpers.streams import publish, runtime
from tests.helpers.waiting import eventually

GROUP = "matching-projection"
CLAIM_IDLE_MS = 200


async def post_needs(client: httpx.AsyncClient, auth: TokenFactory, n: int) -> list[dict[str, Any]]:
    h = auth("frontline", org="org-faults")
    site = await create_site(client, h)
    lines = [{"item_code": N95, "quantity": 10}, {"item_code": RICE, "quantity": 5}]
    return [await create_need(client, h, site["id"], *lines[: 1 + i % 2], title=f"need {i}") for i in range(n)]


async def record(session: AsyncSession, event: CloudEvent, group: str) -> None:
    await session.execute(
        text("INSERT INTO faults_test.effect (event_id, consumer) VALUES (:id, :c)"), {"id": event.id, "c": group}
    )


async def pending_by_consumer(redis: Redis, group: str) -> dict[str, int]:
    summary: Any = await redis.xpending(NEEDS_STREAM, group)
    return {c["name"]: int(c["pending"]) for c in summary["consumers"]}


@pytest.mark.parametrize("death", ["cancelled mid-handler", "read and never acked"])
async def test_a_consumer_killed_mid_batch_is_taken_over_and_each_effect_happens_once(
    death: str, client: httpx.AsyncClient, gateway: Gateway, engine: AsyncEngine, redis: Redis, auth: TokenFactory
) -> None:
    """matching's projection consumer (its real handler, plus a count of each commit) reads a batch of 13 events
    and dies: cancelled while handling the 5th, after committing 4 (each event has its own transaction, the batch
    is acked at its end), or gone right after XREADGROUP. A second consumer of the group reclaims the whole
    batch: the 4 committed events are skipped by the inbox, the rest are handled; every event once."""
    needs = await post_needs(client, auth, 12)
    # site.created and 12 need.created, in the stream, nobody has read them
    assert await publish(gateway, "needs") == 13
    rt = runtime(gateway, "matching")
    fast_claim = rt.settings.model_copy(update={"consumer_claim_idle_ms": CLAIM_IDLE_MS})
    in_fifth = asyncio.Event()
    seen: list[str] = []

    async def dying_handler(session: AsyncSession, event: CloudEvent) -> None:
        seen.append(event.id)
        await record(session, event, GROUP)
        await on_need_event(session, event)
        if len(seen) == 5:
            in_fifth.set()
            await asyncio.Event().wait()  # killed here, inside the 5th event's transaction

    async def handler(session: AsyncSession, event: CloudEvent) -> None:
        await record(session, event, GROUP)
        await on_need_event(session, event)

    def consumer(name: str, h: Any) -> Consumer:
        return Consumer(
            group=GROUP,
            stream=NEEDS_STREAM,
            handler=h,
            sessionmaker=rt.sessionmaker,
            redis=rt.redis,
            settings=fast_claim,
            name=name,
        )

    doomed = consumer("doomed", dying_handler)
    await doomed.ensure_group()
    if death == "cancelled mid-handler":
        task = asyncio.create_task(doomed.read_new(block_ms=100))
        await asyncio.wait_for(in_fifth.wait(), timeout=10)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        committed = 4
    else:
        resp: Any = await redis.xreadgroup(GROUP, "doomed", {NEEDS_STREAM: ">"}, count=100)
        assert len(resp[0][1]) == 13
        committed = 0
    assert len(await effect_counts(engine)) == committed
    assert await pending_by_consumer(redis, GROUP) == {"doomed": 13}  # nothing acked

    rescuer = consumer("rescuer", handler)
    assert await rescuer.read_new(block_ms=50) == 0  # nothing new: the batch is pending on "doomed"
    stop = asyncio.Event()
    worker = asyncio.create_task(rescuer.run(stop))  # the worker's loop: XAUTOCLAIM once entries are idle
    try:

        async def taken_over() -> bool:
            return await pending_by_consumer(redis, GROUP) == {}

        await eventually(taken_over, seconds=10)
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=10)

    entries: Any = await redis.xrange(NEEDS_STREAM)
    ids = [CloudEvent.model_validate_json(fields["event"]).id for _id, fields in entries]
    assert await effect_counts(engine) == dict.fromkeys(ids, 1)
    assert sorted(await inbox_ids(engine, "matching", GROUP)) == sorted(ids)
    lines = sorted(line["id"] for need in needs for line in need["lines"])
    async with engine.connect() as conn:
        projected = (await conn.execute(text("SELECT line_id::text, need_version FROM matching.need_line_view"))).all()
    assert sorted(r[0] for r in projected) == lines and {r[1] for r in projected} == {1}
    assert await redis.xlen(f"{NEEDS_STREAM}.dead") == 0


async def test_a_batch_consumer_killed_mid_batch_commits_nothing_and_is_taken_over_once(
    client: httpx.AsyncClient, gateway: Gateway, engine: AsyncEngine, redis: Redis, auth: TokenFactory
) -> None:
    """A batch consumer (one transaction, one inbox insert for the whole batch; the webhooks fan-out works so)
    cancelled inside its batch handler commits none of the batch; another consumer reclaims it all, once."""
    group = f"faults-batch-{uuid.uuid4().hex[:6]}"
    await post_needs(client, auth, 9)
    assert await publish(gateway, "needs") == 10
    rt = runtime(gateway, "needs")
    settings = rt.settings.model_copy(update={"consumer_claim_idle_ms": CLAIM_IDLE_MS})
    killed = asyncio.Event()

    async def one(session: AsyncSession, event: CloudEvent) -> None:
        await record(session, event, group)

    async def dying_batch(session: AsyncSession, events: list[CloudEvent]) -> None:
        for event in events:
            await record(session, event, group)
        killed.set()
        await asyncio.Event().wait()

    async def batch(session: AsyncSession, events: list[CloudEvent]) -> None:
        for event in events:
            await record(session, event, group)

    def consumer(name: str, b: Any) -> Consumer:
        return Consumer(
            group=group,
            stream=NEEDS_STREAM,
            handler=one,
            batch_handler=b,
            sessionmaker=rt.sessionmaker,
            redis=rt.redis,
            settings=settings,
            name=name,
        )

    doomed = consumer("doomed", dying_batch)
    await doomed.ensure_group()
    task = asyncio.create_task(doomed.read_new(block_ms=100))
    await asyncio.wait_for(killed.wait(), timeout=10)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await effect_counts(engine) == {}
    assert await pending_by_consumer(redis, group) == {"doomed": 10}

    await asyncio.sleep(CLAIM_IDLE_MS / 1000 + 0.1)
    assert await consumer("rescuer", batch).reclaim() == 10
    entries: Any = await redis.xrange(NEEDS_STREAM)
    ids = [CloudEvent.model_validate_json(fields["event"]).id for _id, fields in entries]
    assert await effect_counts(engine) == dict.fromkeys(ids, 1)
    assert await pending_by_consumer(redis, group) == {}
    assert sorted(await inbox_ids(engine, "needs", group)) == sorted(ids)
