"""Test fixtures: real PostgreSQL and Redis (embedded unless DATABASE_URL / REDIS_URL are set), every
service migrated with Alembic, tables truncated and Redis flushed before each test."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from reliefhub.devservers import EmbeddedPostgres, EmbeddedRedis
from reliefhub.gateway import Gateway
from reliefhub.registry import services
from shared.auth import Role, create_token
from shared.migrations import upgrade
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TEST_DB = "reliefhub_test"


@pytest.fixture(scope="session")
def servers() -> Iterator[tuple[str, str]]:
    """(database_url, redis_url) of real servers for this test session."""
    started: list[Any] = []
    db_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    base = ROOT / ".reliefhub" / f"test-{os.getpid()}"
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


async def _recreate_database(admin_url: str, name: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()


def make_test_settings(db_url: str, redis_url: str, **overrides: Any) -> Settings:
    """Settings for tests: a test secret, and every interval compressed so that events flow in moments."""
    values: dict[str, Any] = dict(
        environment="test",
        jwt_secret="test-secret-" + "t" * 32,
        database_url=db_url,
        redis_url=redis_url,
        consumer_claim_idle_ms=300,
        consumer_block_ms=100,
        relay_poll_seconds=0.2,
        stream_trim_seconds=3600,
        bus_metrics_seconds=0.5,
        matching_debounce_seconds=0.2,
        matching_global_seconds=3600,
        sweep_seconds=3600,
        db_pool_size=40,
        db_max_overflow=0,
        webhook_allowed_networks=["127.0.0.0/8", "::1/128"],
        webhook_retry_schedule=[0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4],
        webhook_poll_seconds=0.02,
    )
    return Settings(**{**values, **overrides})


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
    asyncio.run(_truncate(settings.database_url))
    sync_redis = SyncRedis.from_url(settings.redis_url)
    try:
        sync_redis.flushdb()
    finally:
        sync_redis.close()


async def _truncate(database_url: str) -> None:
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY(:s) "
                        "AND tablename <> 'alembic_version'"
                    ),
                    {"s": list(services())},
                )
            ).all()
            if rows:
                await conn.execute(text("TRUNCATE " + ", ".join(f'"{s}"."{t}"' for s, t in rows) + " CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture
async def client(gateway: Gateway, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://reliefhub.test", timeout=30) as c:
        yield c


TokenFactory = Callable[..., dict[str, str]]


@pytest.fixture(scope="session")
def auth(migrated: Settings) -> TokenFactory:
    """Headers with a bearer token: auth("coordinator", org="hub"); `regions` for a hub's coordinator."""

    def make(
        *roles: str,
        org: str = "org-hub",
        sub: str | None = None,
        group: str | None = None,
        regions: list[str] | None = None,
        **headers: str,
    ) -> dict[str, str]:
        token = create_token(
            sub=sub or f"user-{org}",
            org=org,
            roles=[Role(r) for r in roles],
            group=group,
            regions=regions,
            settings=migrated,
        )
        return {"Authorization": f"Bearer {token}", **{k.replace("_", "-"): v for k, v in headers.items()}}

    return make


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


async def eventually(probe: Callable[[], Awaitable[Any]], *, seconds: float = 15.0) -> Any:
    """Poll `probe` until it returns something truthy (and return that), or fail after `seconds`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)
