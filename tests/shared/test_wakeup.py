"""Cross-process wake-ups (shared.wakeup): rows committed through another engine wake a relay by PostgreSQL's
NOTIFY, also after its listening connection was killed. The in-process wake-up is switched off in these tests,
and the relay's poll is a minute away, so only a notification can make it publish in time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from reliefhub.gateway import Gateway
from services.needs.events import SITE_CREATED
from shared import wakeup
from shared.db import create_engine, make_sessionmaker
from shared.events import CloudEvent, publish
from shared.events.relay import OutboxRelay
from shared.runtime import Runtime
from tests.helpers.waiting import eventually

STREAM = "needs.events"


@pytest.fixture
def rt(gateway: Gateway) -> Runtime:
    runtime: Runtime = gateway.apps["needs"].state.runtime
    return runtime


@pytest.fixture
async def other_process(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[async_sessionmaker[Any]]:
    """Sessions as another process has them: an engine of their own, and no in-process wake-up."""
    monkeypatch.setattr(wakeup, "notify", lambda channel: None)
    engine = create_engine(rt.settings)
    yield make_sessionmaker(engine, rt.spec.kit, rt.spec.name)
    await engine.dispose()


async def publish_site(sessionmaker: async_sessionmaker[Any], n: int) -> CloudEvent:
    data = {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "org": "org-a",
        "name": f"site {n}",
        "kind": "warehouse",
        "region_code": "KE-30",
        "lat": None,
        "lon": None,
        "version": 1,
    }
    async with sessionmaker() as s, s.begin():
        return await publish(s, SITE_CREATED, data, subject=f"site-{n}")


async def published_ids(redis: Redis) -> list[str]:
    entries: Any = await redis.xrange(STREAM)
    return [json.loads(fields["event"])["id"] for _id, fields in entries]


@pytest.fixture
async def relay(rt: Runtime) -> AsyncIterator[OutboxRelay]:
    settings = rt.settings.model_copy(update={"relay_poll_seconds": 60.0})
    relay = OutboxRelay(engine=rt.engine, kit=rt.spec.kit, redis=rt.redis, settings=settings)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    await eventually(lambda: _true(relay.listener is not None and relay.listener.listening), seconds=10)
    await asyncio.sleep(0.3)  # its first batch found nothing: it sleeps until the poll, a minute away
    yield relay
    stop.set()
    await task


async def _true(value: bool) -> bool:
    return value


async def test_a_row_committed_by_another_engine_wakes_the_relay(
    relay: OutboxRelay, other_process: async_sessionmaker[Any], redis: Redis
) -> None:
    event = await publish_site(other_process, 1)

    async def published() -> list[str]:
        return await published_ids(redis)

    assert await eventually(published, seconds=10) == [event.id]


async def test_the_relay_listens_again_after_its_connection_is_killed(
    relay: OutboxRelay, other_process: async_sessionmaker[Any], redis: Redis, engine: AsyncEngine
) -> None:
    first = await publish_site(other_process, 1)

    async def published() -> list[str]:
        return await published_ids(redis)

    await eventually(published, seconds=10)
    assert relay.listener is not None and relay.listener.connects == 1
    async with engine.connect() as conn:
        killed = (
            await conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'reliefhub-listen' AND query LIKE 'LISTEN%reliefhub_outbox_needs%'"
                )
            )
        ).scalar()
    assert killed == 1

    listener = relay.listener
    await eventually(lambda: _true(listener.connects == 2 and listener.listening), seconds=10)
    await asyncio.sleep(0.3)  # the wake-up of the reconnection is spent: the relay sleeps until the poll again
    second = await publish_site(other_process, 2)

    async def both() -> bool:
        return await published_ids(redis) == [first.id, second.id]

    await eventually(both, seconds=10)
