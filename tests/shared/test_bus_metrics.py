"""Consumer-group lag and pending entries, exported on Redis 6.2 (the embedded server, whose XINFO GROUPS has no
`lag`) as on Redis 7 (which reports it, except where it cannot tell)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.events.lag import counted_lag, export_stream_metrics, group_lags
from shared.settings import Settings
from tests.helpers.auth import TokenFactory
from tests.helpers.metrics import sample
from tests.helpers.needs import create_site
from tests.helpers.waiting import eventually

SYSTEM_REDIS = "redis://127.0.0.1:6379/0"
NEEDS_GROUPS = ("matching-projection", "logistics-projection", "webhooks-fanout")


async def _major(redis: Redis) -> int:
    info: Any = await redis.info("server")
    return int(str(info["redis_version"]).split(".")[0])


@pytest.fixture(params=["embedded", "system"])
async def any_redis(request: pytest.FixtureRequest, migrated: Settings) -> AsyncIterator[tuple[Redis, str]]:
    """(client, a stream key of this test's own) on the test session's Redis (embedded: 6.2), and on the
    machine's Redis 7 when one answers on 6379 (only this key is touched there, and deleted after)."""
    stream = f"reliefhub-test-lag-{uuid.uuid4().hex}"
    url = migrated.redis_url if request.param == "embedded" else SYSTEM_REDIS
    client = Redis.from_url(url, decode_responses=True, socket_connect_timeout=1, socket_timeout=5)
    try:
        if request.param == "system":
            try:
                major = await _major(client)
            except (OSError, RedisError) as exc:
                pytest.skip(f"no Redis on 6379: {exc!r}")
            if major < 7:
                pytest.skip("the Redis on 6379 is older than 7")
        yield client, stream
    finally:
        with contextlib.suppress(OSError, RedisError):
            await client.delete(stream)
        await client.aclose()


async def _fill(redis: Redis, stream: str, n: int) -> list[str]:
    return [str(await redis.xadd(stream, {"event": f'{{"n": {i}}}'})) for i in range(n)]


async def _read(redis: Redis, stream: str, group: str, count: int) -> None:
    await redis.xreadgroup(group, "reader", {stream: ">"}, count=count)


async def test_lag_is_the_entries_after_the_last_delivered_id(any_redis: tuple[Redis, str]) -> None:
    redis, stream = any_redis
    ids = await _fill(redis, stream, 250)  # more than one page of the counting script
    await redis.xgroup_create(stream, "fresh", id="0")
    await redis.xgroup_create(stream, "partway", id="0")
    await _read(redis, stream, "partway", 40)
    await redis.xgroup_create(stream, "caught-up", id="$")
    await redis.xgroup_create(stream, "set-to-an-id", id=ids[99])  # Redis 7 cannot tell this one's lag

    assert await group_lags(redis, stream) == {
        "fresh": (0, 250),
        "partway": (40, 210),
        "caught-up": (0, 0),
        "set-to-an-id": (0, 150),
    }
    # The count by script agrees with Redis 7's own figure where that exists.
    for group, last, lag in [("fresh", "0-0", 250), ("partway", ids[39], 210), ("caught-up", ids[-1], 0)]:
        assert await counted_lag(redis, stream, last) == (lag, True), group
    if await _major(redis) >= 7:
        native = {g["name"]: g["lag"] for g in await redis.xinfo_groups(stream)}
        assert native["fresh"] == 250 and native["partway"] == 210 and native["caught-up"] == 0

    await export_stream_metrics(redis, stream)
    for group, (pending, lag) in {"fresh": (0, 250), "partway": (40, 210), "set-to-an-id": (0, 150)}.items():
        labels = {"stream": stream, "group": group}
        assert REGISTRY.get_sample_value("reliefhub_consumer_lag", labels) == lag
        assert REGISTRY.get_sample_value("reliefhub_consumer_pending", labels) == pending


async def test_lag_past_the_counting_limit(any_redis: tuple[Redis, str]) -> None:
    """Exact while either side of the last-delivered id is within the limit; a lower bound beyond."""
    redis, stream = any_redis
    ids = await _fill(redis, stream, 30)
    assert await counted_lag(redis, stream, ids[1], limit=5) == (28, True)  # 2 up to it: XLEN less those
    assert await counted_lag(redis, stream, ids[26], limit=5) == (3, True)
    assert await counted_lag(redis, stream, ids[24], limit=5) == (5, True)  # exactly the limit after it
    assert await counted_lag(redis, stream, ids[14], limit=5) == (5, False)  # 15 either side: at least 5
    assert await counted_lag(redis, stream, "0-0", limit=29) == (30, True)
    # Trimmed below the group: only what the stream still holds counts.
    await redis.xtrim(stream, minid=ids[10], approximate=False)
    assert await counted_lag(redis, stream, ids[1], limit=5) == (20, True)


async def test_consumer_lag_is_exported_through_metrics_on_the_test_redis(
    client: httpx.AsyncClient, auth: TokenFactory, redis: Redis, workers: None
) -> None:
    """The workers' gauges, scraped from /metrics: a group that reads nothing lags by every entry, one that read
    two by the rest; the services' own groups catch up to 0."""
    stream = "needs.events"
    await redis.xgroup_create(stream, "test-idle", id="0", mkstream=True)
    await redis.xgroup_create(stream, "test-two", id="0")
    h = auth("frontline", org="org-lag")
    for i in range(5):
        await create_site(client, h, name=f"站点 {i}")

    async def entries() -> int | None:
        n = int(await redis.xlen(stream))
        return n if n >= 5 else None

    total = await eventually(entries)
    await _read(redis, stream, "test-two", 2)

    async def exported() -> bool:
        want = {"test-idle": total, "test-two": total - 2, **dict.fromkeys(NEEDS_GROUPS, 0)}
        got = {g: await sample(client, "reliefhub_consumer_lag", stream=stream, group=g) for g in want}
        pending = await sample(client, "reliefhub_consumer_pending", stream=stream, group="test-two")
        return got == want and pending == 2

    await eventually(exported, seconds=90)  # the workers sample their gauges on a timer; slow on a busy machine
