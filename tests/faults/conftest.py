"""Fault-injection fixtures: an embedded PostgreSQL and Redis of the faults' own (always embedded, even when
DATABASE_URL / REDIS_URL point elsewhere), so that stopping and restarting them never disturbs the rest of the
suite; every service migrated on them, and a Gateway, client and workers on top.

The fixtures keep the names of tests/conftest.py (`settings`, `migrated`, `engine`, `redis`, `gateway`, `client`,
`workers`, `auth`, `clean`), so inside tests/faults they replace those and never start the session's servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from reliefhub.devservers import EmbeddedPostgres, EmbeddedRedis
from reliefhub.gateway import Gateway
from reliefhub.registry import services
from shared.auth import Role, create_token
from shared.events import CloudEvent
from shared.events.consumer import Consumer
from shared.events.relay import OutboxRelay
from shared.migrations import upgrade
from shared.runtime import Runtime
from shared.settings import Settings
from shared.worker import run_worker
from tests.conftest import TokenFactory, _truncate, make_test_settings

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


@pytest.fixture(scope="package")
def fault_servers() -> Iterator[FaultServers]:
    # Not pytest's tmp_path: pytest resets its base directory to mode 0700 whenever a session starts, which
    # would lock out PostgreSQL's unprivileged user (see EmbeddedPostgres) between restarts.
    base = Path(tempfile.mkdtemp(prefix="reliefhub-faults-"))
    servers = FaultServers(
        base,
        EmbeddedPostgres(base / "pg", durable=False),
        # Durable: append-only file, so a stopped and restarted Redis keeps its streams (see test_redis_outage).
        EmbeddedRedis(base / "redis", durable=True),
    )
    try:
        servers.pg.start()
        servers.redis.start()
        yield servers
    finally:
        servers.redis.stop()
        servers.pg.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="package")
def settings(fault_servers: FaultServers) -> Settings:
    """As tests/conftest.py's settings, on the faults' servers."""
    return make_test_settings(
        fault_servers.pg.url,
        fault_servers.redis.url,
        db_pool_size=25,
        # Not 0.02 s as in tests/conftest.py: no webhook endpoint exists here, and a dispatcher polling 50 times
        # a second would take a third of the one event loop every service's workers share.
        webhook_poll_seconds=0.5,
    )


@pytest.fixture(scope="package")
def migrated(settings: Settings) -> Settings:
    for spec in services().values():
        upgrade(spec, settings)
    return settings


@pytest.fixture(scope="package")
async def engine(migrated: Settings) -> AsyncIterator[AsyncEngine]:
    """For the tests' own queries (pre-pinged, so that no pooled connection outlives a PostgreSQL restart)."""
    eng = create_async_engine(migrated.database_url, pool_size=2, pool_pre_ping=True)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="package")
async def redis(migrated: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(migrated.redis_url, decode_responses=True, socket_timeout=5, socket_connect_timeout=2)
    yield client
    await client.aclose()


@pytest.fixture(scope="package")
async def gateway(migrated: Settings) -> AsyncIterator[Gateway]:
    gw = Gateway(migrated)
    async with gw.lifespan():
        yield gw


@pytest.fixture(autouse=True)
def clean(fault_servers: FaultServers, migrated: Settings) -> None:
    """Both servers up (a test that failed mid-outage may have left one down), every table empty (and the
    test-only faults_test.effect), Redis flushed."""
    fault_servers.ensure_running()
    asyncio.run(_truncate(migrated.database_url))
    asyncio.run(_truncate_effects(migrated.database_url))
    sync_redis = SyncRedis.from_url(migrated.redis_url)
    try:
        sync_redis.flushdb()
    finally:
        sync_redis.close()


async def _truncate_effects(database_url: str) -> None:
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


@pytest.fixture
async def client(gateway: Gateway, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://reliefhub.test", timeout=30) as c:
        yield c


@pytest.fixture(scope="package")
def auth(migrated: Settings) -> TokenFactory:
    def make(*roles: str, org: str = "org-hub", sub: str | None = None, **headers: str) -> dict[str, str]:
        token = create_token(sub=sub or f"user-{org}", org=org, roles=[Role(r) for r in roles], settings=migrated)
        return {"Authorization": f"Bearer {token}", **{k.replace("_", "-"): v for k, v in headers.items()}}

    return make


def runtime(gateway: Gateway, service: str) -> Runtime:
    rt: Runtime = gateway.apps[service].state.runtime
    return rt


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


@pytest.fixture
async def workers(gateway: Gateway, client: httpx.AsyncClient) -> AsyncIterator[None]:
    async with running_workers(gateway):
        yield


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
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT event_id, count(*) FROM faults_test.effect GROUP BY event_id"))).all()
    return {r[0]: int(r[1]) for r in rows}


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def outbox_events(engine: AsyncEngine, schema: str = "needs") -> list[dict[str, Any]]:
    """Every envelope in a service's outbox, in seq order."""
    async with engine.connect() as conn:
        rows = (await conn.execute(text(f'SELECT envelope FROM "{schema}".outbox_event ORDER BY seq'))).all()
    return [r[0] for r in rows]


async def inbox_ids(engine: AsyncEngine, schema: str, group: str) -> list[str]:
    """The needs events a group's inbox holds (a group may also consume other streams: webhooks-fanout)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                f'SELECT event_id FROM "{schema}".inbox_event '
                "WHERE consumer = :g AND event_type LIKE 'reliefhub.needs.%'"
            ),
            {"g": group},
        )
        return [r[0] for r in rows]


async def relay_all(gateway: Gateway, service: str = "needs") -> int:
    """Publish a service's whole outbox now (what its worker's relay does), without running any consumer."""
    rt = runtime(gateway, service)
    relay = OutboxRelay(engine=rt.engine, kit=rt.spec.kit, redis=rt.redis, settings=rt.settings)
    total = 0
    while published := await relay.publish_batch():
        total += published
    return total


async def xadd_event(redis: Redis, envelope: dict[str, Any], stream: str = NEEDS_STREAM) -> str:
    """Put an envelope on a stream exactly as the relay does."""
    msg_id = str(
        await redis.xadd(stream, {"type": envelope["type"], "event": json.dumps(envelope, ensure_ascii=False)})
    )
    return msg_id


async def caught_up(redis: Redis, group: str, stream: str = NEEDS_STREAM) -> bool:
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


def new_ids(envelope: dict[str, Any]) -> dict[str, Any]:
    """A copy of a need event about a different need (new event, need and line ids)."""
    out = json.loads(json.dumps(envelope))
    out["id"] = str(uuid.uuid4())
    out["data"]["id"] = out["subject"] = str(uuid.uuid4())
    for line in out["data"]["lines"]:
        line["id"] = str(uuid.uuid4())
    return out
