"""The outbox backlog gauge while Redis is down: it is read from PostgreSQL, which still holds the events."""

from __future__ import annotations

import asyncio

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers.auth import TokenFactory
from tests.helpers.db import scalar
from tests.helpers.faults import FaultServers, redis_is_down
from tests.helpers.metrics import sample
from tests.helpers.needs import create_need, create_site
from tests.helpers.waiting import eventually

UNPUBLISHED = "SELECT count(*) FROM needs.outbox_event WHERE published_at IS NULL"


async def test_the_outbox_backlog_gauge_counts_unpublished_events_while_redis_is_down(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    redis: Redis,
    auth: TokenFactory,
    fault_servers: FaultServers,
    workers: None,
) -> None:
    h = auth("frontline", org="org-faults")
    site = await create_site(client, h)

    async def backlog() -> float | None:
        return await sample(client, "reliefhub_outbox_backlog", service="needs")

    async def relayed() -> bool:
        return await scalar(engine, UNPUBLISHED) == 0 and await backlog() == 0

    await eventually(relayed)

    await asyncio.to_thread(fault_servers.stop_redis)
    try:
        assert await redis_is_down(redis)
        for i in range(7):
            await create_need(client, h, site["id"], title=f"while down {i}")
        waiting = int(await scalar(engine, UNPUBLISHED))
        assert waiting >= 7  # one need.created each (and whatever else the needs service published)

        async def reported() -> bool:
            return await backlog() == waiting

        await eventually(reported, seconds=10)
        assert await redis_is_down(redis)
        assert await scalar(engine, UNPUBLISHED) == waiting
    finally:
        await asyncio.to_thread(fault_servers.start_redis)

    await eventually(relayed, seconds=30)  # published once Redis is back, and the gauge says so
