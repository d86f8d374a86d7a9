"""Fault-injection fixtures: an embedded PostgreSQL and Redis of the faults' own (always embedded, even when
DATABASE_URL / REDIS_URL point elsewhere), so that stopping and restarting them never disturbs the rest of the
suite; every service migrated on them, and a Gateway, client and workers on top (tests/helpers/faults.py holds
the servers' handle and the probes).

The fixtures keep the names of tests/conftest.py (`settings`, `migrated`, `engine`, `redis`, `gateway`, `client`,
`workers`, `auth`, `clean`), so inside tests/faults they replace those and never start the session's servers."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from reliefhub.devservers import EmbeddedPostgres, EmbeddedRedis
from reliefhub.gateway import Gateway
from reliefhub.registry import services
from shared.migrations import upgrade
from shared.settings import Settings
from tests.helpers.auth import TokenFactory, token_factory
from tests.helpers.db import truncate_services
from tests.helpers.faults import FaultServers, running_workers, truncate_effects
from tests.helpers.settings import make_test_settings


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
    asyncio.run(truncate_services(migrated.database_url))
    asyncio.run(truncate_effects(migrated.database_url))
    sync_redis = SyncRedis.from_url(migrated.redis_url)
    try:
        sync_redis.flushdb()
    finally:
        sync_redis.close()


@pytest.fixture
async def client(gateway: Gateway, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://reliefhub.test", timeout=30) as c:
        yield c


@pytest.fixture(scope="package")
def auth(migrated: Settings) -> TokenFactory:
    return token_factory(migrated)


@pytest.fixture
async def workers(gateway: Gateway, client: httpx.AsyncClient) -> AsyncIterator[None]:
    async with running_workers(gateway):
        yield
