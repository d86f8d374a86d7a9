"""Test fixtures: real PostgreSQL and Redis (embedded unless DATABASE_URL / REDIS_URL are set), every
service migrated with Alembic, tables truncated and Redis flushed before each test. Plain helpers (builders,
scenarios, readers) are in tests/helpers."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from reliefhub.devservers import EmbeddedPostgres, EmbeddedRedis
from reliefhub.gateway import Gateway
from reliefhub.registry import services
from shared.migrations import upgrade
from shared.settings import Settings
from tests.helpers.auth import TokenFactory, token_factory
from tests.helpers.db import truncate_services
from tests.helpers.settings import ROOT, make_test_settings

TEST_DB = "reliefhub_test"


@pytest.fixture(scope="session")
def servers() -> Iterator[tuple[str, str]]:
    """(database_url, redis_url) of real servers for this test session."""
    started: list[Any] = []
    db_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    base = ROOT / ".reliefhub" / f"test-{os.getpid()}"
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1…: `make test` runs the suite in parallel processes
    if db_url and worker:
        # Servers of one's own, shared by the parallel workers: a database and a Redis database each.
        admin_url, name = db_url.rsplit("/", 1)
        db_url = f"{admin_url}/{name}_{worker}"
        asyncio.run(_recreate_database(f"{admin_url}/postgres", f"{name}_{worker}"))
    if redis_url and worker:
        redis_url = _worker_redis(redis_url, int(worker.removeprefix("gw")))
    if not db_url:
        pg = EmbeddedPostgres(base / "pg", durable=False)
        pg.start()
        started.append(pg)
        db_url = pg.url.rsplit("/", 1)[0] + f"/{TEST_DB}"
        asyncio.run(_recreate_database(pg.url, TEST_DB))
    if not redis_url:
        rd = EmbeddedRedis(base / "redis", durable=False)
        redis_url = rd.start()
        started.append(rd)
    try:
        yield db_url, redis_url
    finally:
        for server in reversed(started):
            server.stop()
        if started:
            import shutil

            shutil.rmtree(base, ignore_errors=True)


def _worker_redis(url: str, index: int) -> str:
    """The Redis database of parallel worker `index`: the URL's own number plus the index (of 16)."""
    head, _, number = url.rpartition("/")
    if not number.isdigit():
        head, number = url.rstrip("/"), "0"
    return f"{head}/{(int(number) + index) % 16}"


async def _recreate_database(admin_url: str, name: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()


@pytest.fixture(scope="session")
def settings(servers: tuple[str, str]) -> Settings:
    return make_test_settings(*servers)


@pytest.fixture(scope="session")
def migrated(settings: Settings) -> Settings:
    for spec in services().values():
        upgrade(spec, settings)
    return settings


@pytest.fixture(scope="session")
async def engine(migrated: Settings) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(migrated.database_url)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
async def redis(migrated: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(migrated.redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def gateway(migrated: Settings) -> AsyncIterator[Gateway]:
    gw = Gateway(migrated)
    async with gw.lifespan():
        yield gw


@pytest.fixture(autouse=True)
def clean(request: pytest.FixtureRequest) -> None:
    """Empty every service's tables and Redis before each test that touches them.

    A sync fixture, so the session-scoped servers and migrations are set up outside the event loop."""
    if not {"engine", "gateway", "redis"} & set(request.fixturenames):
        return
    settings: Settings = request.getfixturevalue("migrated")
    asyncio.run(truncate_services(settings.database_url))
    sync_redis = SyncRedis.from_url(settings.redis_url)
    try:
        sync_redis.flushdb()
    finally:
        sync_redis.close()


@pytest.fixture
async def client(gateway: Gateway, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://reliefhub.test", timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def auth(migrated: Settings) -> TokenFactory:
    """Headers with a bearer token: auth("coordinator", org="hub"); `regions` for a hub's coordinator."""
    return token_factory(migrated)


@pytest.fixture
def cli_env(migrated: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """The environment a `reliefhub` command sees: the test servers and the test signing secret."""
    from reliefhub import cli

    monkeypatch.setenv("DATABASE_URL", migrated.database_url)
    monkeypatch.setenv("REDIS_URL", migrated.redis_url)
    monkeypatch.setenv("RELIEFHUB_JWT_SECRET", migrated.jwt_secret)
    monkeypatch.setattr(cli, "DEV_ENV", tmp_path / "dev.env")
    monkeypatch.setattr(cli, "DEV_STATE", tmp_path / "dev.json")
    return migrated


@pytest.fixture
async def workers(gateway: Gateway, client: httpx.AsyncClient) -> AsyncIterator[None]:
    """Every service's relay, consumers and jobs, as `reliefhub dev` runs them."""
    from shared.worker import run_worker

    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_worker(app.state.runtime, stop)) for app in gateway.apps.values()]
    yield
    stop.set()
    await asyncio.gather(*tasks)
