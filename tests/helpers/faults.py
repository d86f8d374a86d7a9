"""The fault tests' own servers (stopped and restarted on purpose), every service's workers with a test-only
consumer whose effect is not idempotent, and probes of what the consumers did. Their fixtures are in
tests/faults/conftest.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from reliefhub.devservers import EmbeddedPostgres, EmbeddedRedis
from reliefhub.gateway import Gateway
from shared.events import CloudEvent
from shared.events.consumer import Consumer
from shared.worker import run_worker
from tests.helpers.streams import runtime

NEEDS_STREAM = "needs.events"
# The consumer groups of needs.events and the schema of each one's inbox.
NEEDS_GROUPS = {"matching-projection": "matching", "logistics-projection": "logistics", "webhooks-fanout": "webhooks"}
# A test-only group on needs.events whose handler's effect is NOT idempotent (one row per time it commits), so
# a second application of an event would show; its inbox is needs.inbox_event.
EFFECT_GROUP = "faults-effects"


@dataclass
class FaultServers:
    """The faults' own servers, with the stops and restarts the tests inject."""

    base: Path
    pg: EmbeddedPostgres
    redis: EmbeddedRedis
    restarts: int = 0

    def stop_redis(self) -> None:
        self.redis.stop()

    def start_redis(self, *, fresh: bool = False) -> None:
        """Start Redis again on the same port: on its data directory (its append-only file brings back every
        stream, group and pending entry), or, `fresh`, on an empty one (a Redis that lost its data)."""
        if fresh:
            self.restarts += 1
            self.redis = EmbeddedRedis(self.base / f"redis-{self.restarts}", durable=True, port=self.redis.port)
        self.redis.start()

    def stop_postgres(self) -> None:
        self.pg.stop("fast")

    def start_postgres(self) -> None:
        self.pg.start()

    def begin_smart_shutdown(self) -> None:
        """`pg_ctl stop -m smart` without waiting: open sessions carry on, every new connection is refused with
        SQLSTATE 57P03 ("the database system is shutting down") until the last session leaves."""
        self.pg._pg("pg_ctl", "-D", str(self.pg.data_dir / "pgdata"), "-W", "-m", "smart", "stop")

    def ensure_running(self) -> None:
        """After a test that failed half-way through an outage."""
        if self.pg.running_port() is None:
            self.start_postgres()
        if self.redis._proc is None or self.redis._proc.poll() is not None:
            self.redis._proc = None
            self.start_redis()


async def truncate_effects(database_url: str) -> None:
    """Create (if need be) and empty the test-only faults_test.effect table."""
    eng = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with eng.begin() as conn:
            await conn.execute(text("CREATE SCHEMA IF NOT EXISTS faults_test"))
            await conn.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS faults_test.effect ("
                    "event_id text NOT NULL, consumer text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                )
            )
            await conn.execute(text("TRUNCATE faults_test.effect"))
    finally:
        await eng.dispose()


@contextlib.asynccontextmanager
async def running_workers(gateway: Gateway) -> AsyncIterator[None]:
    """Every service's relay, consumers and jobs, as `reliefhub dev` runs them, and the test-only EFFECT_GROUP
    consumer on needs.events."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_worker(app.state.runtime, stop)) for app in gateway.apps.values()]
    tasks.append(asyncio.create_task(effect_consumer(gateway).run(stop)))
    try:
        yield
    finally:
        stop.set()
        _done, pending = await asyncio.wait(tasks, timeout=20)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert not pending, f"{len(pending)} worker tasks did not stop in time"


async def record_effect(session: AsyncSession, event: CloudEvent) -> None:
    await session.execute(
        text("INSERT INTO faults_test.effect (event_id, consumer) VALUES (:id, :c)"),
        {"id": event.id, "c": EFFECT_GROUP},
    )


def effect_consumer(gateway: Gateway) -> Consumer:
    rt = runtime(gateway, "needs")
    return Consumer(
        group=EFFECT_GROUP,
        stream=NEEDS_STREAM,
        handler=record_effect,
        sessionmaker=rt.sessionmaker,
        redis=rt.redis,
        settings=rt.settings,
    )


async def effect_counts(engine: AsyncEngine) -> dict[str, int]:
    """event id → how many times the EFFECT_GROUP handler committed for it."""
    async with engine.connect() as conn:
        found = (await conn.execute(text("SELECT event_id, count(*) FROM faults_test.effect GROUP BY event_id"))).all()
    return {r[0]: int(r[1]) for r in found}


async def inbox_ids(engine: AsyncEngine, schema: str, group: str) -> list[str]:
    """The needs events a group's inbox holds (a group may also consume other streams: webhooks-fanout)."""
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                f'SELECT event_id FROM "{schema}".inbox_event '
                "WHERE consumer = :g AND event_type LIKE 'reliefhub.needs.%'"
            ),
            {"g": group},
        )
        return [r[0] for r in found]


def new_ids(envelope: dict[str, Any]) -> dict[str, Any]:
    """A copy of a need event about a different need (new event, need and line ids)."""
    out = json.loads(json.dumps(envelope))
    out["id"] = str(uuid.uuid4())
    out["data"]["id"] = out["subject"] = str(uuid.uuid4())
    for line in out["data"]["lines"]:
        line["id"] = str(uuid.uuid4())
    return out


async def redis_is_down(redis: Redis) -> bool:
    try:
        await redis.ping()
    except (RedisConnectionError, OSError):
        return True
    return False
