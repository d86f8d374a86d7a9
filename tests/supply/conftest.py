"""Supply test fixtures."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine


@pytest.fixture(scope="session", autouse=True)
def _servers_up_first(engine: AsyncEngine, redis: Redis) -> None:
    """The root `clean` fixture looks `engine` and `redis` up lazily, which fails inside the running event loop
    unless they are already set up; as session fixtures in every test's closure, pytest sets them up first."""
