"""shared.db.driver_connection: hot statements on asyncpg, inside the session's transaction (begun in SQLAlchemy's
adapter by shared.db.begin_in_adapter, or by SQLAlchemy itself, which handles a dead pooled connection)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from shared.db import begin_in_adapter, create_engine, driver_connection
from shared.errors import database_unavailable
from shared.settings import Settings

INSERT = "INSERT INTO kit_test.hot_row (n, txid) VALUES ($1, txid_current()) RETURNING txid"


class Rollback(Exception):
    """Stands for a request that fails after its statements."""


@pytest.fixture
async def hot_rows(engine: AsyncEngine) -> AsyncEngine:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE SCHEMA IF NOT EXISTS kit_test"))
        await conn.execute(text("CREATE TABLE IF NOT EXISTS kit_test.hot_row (n int NOT NULL, txid bigint NOT NULL)"))
        await conn.execute(text("TRUNCATE kit_test.hot_row"))
    return engine


@pytest.fixture
async def one_connection(migrated: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A kit engine (no pre-ping) with a single pooled connection."""
    engine = create_engine(migrated, pool_size=1)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


async def _rows(engine: AsyncEngine) -> list[tuple[int, int]]:
    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT n, txid FROM kit_test.hot_row ORDER BY n"))
        return [(int(n), int(txid)) for n, txid in result]


async def test_hot_statements_run_in_the_sessions_one_transaction(
    hot_rows: AsyncEngine, one_connection: async_sessionmaker[AsyncSession]
) -> None:
    async with one_connection() as session, session.begin():
        driver = await driver_connection(session)
        await driver.execute(INSERT.removesuffix(" RETURNING txid"), 1)  # the first: begins the transaction
        second = await driver.fetchrow(INSERT, 2)
        through_orm = (await session.execute(text("SELECT txid_current()"))).scalar_one()
    assert second is not None
    rows = await _rows(hot_rows)
    assert [n for n, _ in rows] == [1, 2]
    assert {txid for _, txid in rows} == {second[0]} == {through_orm}


async def test_a_rolled_back_session_takes_its_hot_statements_with_it(
    hot_rows: AsyncEngine, one_connection: async_sessionmaker[AsyncSession]
) -> None:
    with pytest.raises(Rollback):
        async with one_connection() as session, session.begin():
            driver = await driver_connection(session)
            assert await driver.fetchrow(INSERT, 1) is not None
            await driver.execute(INSERT, 2)
            raise Rollback
    assert await _rows(hot_rows) == []
    async with one_connection() as session, session.begin():
        driver = await driver_connection(session)
        assert await driver.fetchrow("SELECT n FROM kit_test.hot_row WHERE n = $1", 1) is None


async def test_a_first_hot_statement_on_a_dead_pooled_connection_invalidates_the_pool(
    engine: AsyncEngine, hot_rows: AsyncEngine, one_connection: async_sessionmaker[AsyncSession]
) -> None:
    """No pre-ping: the server dropped the pooled connection, and the first statement of the next request is a
    hot one. Beginning in the adapter fails, the statement goes through SQLAlchemy, which sees the disconnect and
    raises its own error (the app's 503), and the next session gets a fresh connection, not the dead one again."""
    async with one_connection() as session, session.begin():
        pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    async with engine.connect() as admin:
        assert (await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})).scalar_one()

    with pytest.raises(DBAPIError) as failed:
        async with one_connection() as session, session.begin():
            await (await driver_connection(session)).fetchrow(INSERT, 1)
    assert failed.value.connection_invalidated and database_unavailable(failed.value)

    async with one_connection() as session, session.begin():
        driver = await driver_connection(session)
        assert await driver.fetchrow(INSERT, 2) is not None
        assert (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one() != pid
    assert [n for n, _ in await _rows(hot_rows)] == [2]


async def test_begin_in_adapter_finds_what_it_uses_in_the_installed_sqlalchemy(
    one_connection: async_sessionmaker[AsyncSession],
) -> None:
    """begin_in_adapter calls the asyncpg adapter's private `_start_transaction` and reads its `_transaction`.
    When an upgrade of SQLAlchemy renames or changes them, this fails (the hot paths would otherwise fall back to
    the slower public path without a word)."""
    from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection

    assert inspect.iscoroutinefunction(AsyncAdapt_asyncpg_connection._start_transaction)
    async with one_connection() as session, session.begin():
        raw = await (await session.connection()).get_raw_connection()
        adapter: Any = raw.dbapi_connection
        driver: Any = raw.driver_connection
        assert isinstance(adapter, AsyncAdapt_asyncpg_connection) and adapter._transaction is None
        assert not driver.is_in_transaction()
        assert await begin_in_adapter(raw)
        assert driver.is_in_transaction() and adapter._transaction is not None
        assert not await begin_in_adapter(raw)  # begun already: nothing to do


async def test_a_server_with_no_connection_slot_left_is_unavailable_not_broken(engine: AsyncEngine) -> None:
    """Every slot taken (SQLSTATE 53300, here through a role's own limit of 0): the app answers 503 with
    Retry-After, as for a server that is away, and consumers keep the event for later."""
    async with engine.connect() as admin:
        await admin.execute(text("DROP ROLE IF EXISTS kit_test_full"))
        await admin.execute(text("CREATE ROLE kit_test_full LOGIN CONNECTION LIMIT 0"))
        await admin.commit()
    full = create_async_engine(engine.url.set(username="kit_test_full", password=None))
    try:
        with pytest.raises(DBAPIError) as failed:
            async with full.connect() as conn:
                await conn.execute(text("SELECT 1"))
        assert getattr(failed.value.orig, "sqlstate", None) == "53300"
        assert database_unavailable(failed.value)
    finally:
        await full.dispose()
        async with engine.connect() as admin:
            await admin.execute(text("DROP ROLE kit_test_full"))
            await admin.commit()
