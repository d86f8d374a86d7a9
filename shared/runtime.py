"""The live resources of one service in one process: engine, sessions, Redis."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.db import create_engine, make_sessionmaker
from shared.service import ServiceSpec
from shared.settings import Settings


@dataclass
class Runtime:
    spec: ServiceSpec
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis

    @classmethod
    def start(cls, spec: ServiceSpec, settings: Settings) -> Runtime:
        engine = create_engine(settings)
        redis = Redis.from_url(
            settings.redis_url,
            decode_responses=True,
            socket_timeout=10,
            socket_connect_timeout=5,
            health_check_interval=30,
        )
        return cls(spec, settings, engine, make_sessionmaker(engine, spec.kit, spec.name), redis)

    async def close(self) -> None:
        await self.redis.aclose()
        await self.engine.dispose()
