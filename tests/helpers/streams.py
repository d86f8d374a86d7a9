"""The event flow driven by hand: a service's runtime, its outbox relayed to its stream, its consumers and jobs
run once, and stream entries read and written as the relay writes them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from reliefhub.gateway import Gateway
from shared.events.relay import OutboxRelay
from shared.runtime import Runtime
from shared.worker import consumers_for, run_job_once


def runtime(gateway: Gateway, service: str) -> Runtime:
    """The service's runtime (engine, sessionmaker, Redis, settings) inside the gateway."""
    rt: Runtime = gateway.apps[service].state.runtime
    return rt


async def publish(gateway: Gateway, *services: str) -> int:
    """Relay the committed outbox rows of these services to their streams (what their workers' relays do),
    without running any consumer; how many were published."""
    total = 0
    for name in services:
        rt = runtime(gateway, name)
        relay = OutboxRelay(engine=rt.engine, kit=rt.spec.kit, redis=rt.redis, settings=rt.settings)
        while published := await relay.publish_batch():
            total += published
    return total


async def consume(gateway: Gateway, service: str) -> int:
    """Run the service's consumers over every new entry of their streams; how many were handled."""
    total = 0
    for consumer in consumers_for(runtime(gateway, service), name="tests"):
        await consumer.ensure_group()
        while handled := await consumer.read_new(block_ms=1):
            total += handled
    return total


async def project(gateway: Gateway) -> int:
    """Needs and supply events so far, published and projected into matching's tables."""
    await publish(gateway, "needs", "supply")
    return await consume(gateway, "matching")


async def run_job(gateway: Gateway, service: str, name: str) -> int | None:
    """One run of the service's job `name`."""
    rt = runtime(gateway, service)
    job = next(j for j in rt.spec.jobs if j.name == name)
    return await run_job_once(rt, job)


async def outbox_events(engine: AsyncEngine, schema: str) -> list[dict[str, Any]]:
    """Every envelope in a service's outbox, in seq order."""
    async with engine.connect() as conn:
        found = (await conn.execute(text(f'SELECT envelope FROM "{schema}".outbox_event ORDER BY seq'))).all()
    return [r[0] for r in found]


async def take_outbox(engine: AsyncEngine, schema: str) -> list[dict[str, Any]]:
    """The service's unpublished events in outbox order, marked published (the test delivers them itself)."""
    async with engine.begin() as conn:
        found = (
            await conn.execute(
                text(f"SELECT seq, envelope FROM {schema}.outbox_event WHERE published_at IS NULL ORDER BY seq")
            )
        ).all()
        await conn.execute(
            text(f"UPDATE {schema}.outbox_event SET published_at = now() WHERE seq = ANY(:s)"),
            {"s": [seq for seq, _ in found]},
        )
    return [env for _, env in found]


async def xadd_event(redis: Redis, stream: str, envelope: dict[str, Any]) -> str:
    """Put an envelope on a stream exactly as the relay does; its entry id."""
    return str(await redis.xadd(stream, {"type": envelope["type"], "event": json.dumps(envelope, ensure_ascii=False)}))


async def xadd_events(redis: Redis, stream: str, envelopes: Sequence[dict[str, Any]]) -> None:
    """Put these envelopes on the stream as the relay would, in this order."""
    for env in envelopes:
        await xadd_event(redis, stream, env)


async def read_entries(redis: Redis, stream: str, group: str = "tests") -> list[tuple[dict[str, str], dict[str, Any]]]:
    """Every entry of the stream not yet delivered to `group` (created if need be), in stream order, acked:
    (raw fields, decoded envelope)."""
    groups = [g["name"] for g in await redis.xinfo_groups(stream)] if await redis.exists(stream) else []
    if group not in groups:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    out: list[tuple[dict[str, str], dict[str, Any]]] = []
    while True:
        resp: Any = await redis.xreadgroup(group, "tester", {stream: ">"}, count=100)
        if not resp:
            return out
        for _stream, entries in resp:
            for msg_id, fields in entries:
                out.append((fields, json.loads(fields["event"])))
                await redis.xack(stream, group, msg_id)


async def read_events(redis: Redis, stream: str, group: str = "tests") -> list[dict[str, Any]]:
    """The envelopes of `read_entries`, each checked to carry its type in the entry's `type` field too."""
    out = []
    for fields, event in await read_entries(redis, stream, group):
        assert fields["type"] == event["type"]
        out.append(event)
    return out


async def caught_up(redis: Redis, group: str, stream: str) -> bool:
    """The group has been delivered every entry of the stream and acked them all."""
    if not await redis.exists(stream):
        return False
    info: Any = await redis.xinfo_stream(stream)
    last = info["last-generated-id"]
    groups: Any = await redis.xinfo_groups(stream)
    for g in groups:
        if g["name"] == group:
            return bool(g["last-delivered-id"] == last and int(g["pending"]) == 0)
    return False
