"""Fixtures of the needs service tests."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine


@pytest.fixture(scope="session", autouse=True)
async def backends(engine: AsyncEngine, redis: Redis) -> None:
    """Set up the engine and Redis before the root `clean` fixture asks for them: it looks them up with
    getfixturevalue from inside the running loop, which fails when they are not set up yet."""
