"""Dirty marks are written once per transaction, in item order, at commit: two projections marking the same
items in opposite orders (an in-sequence batch of supply events beside a batch of need events) never wait on
each other in a cycle, and a transaction that rolls back marks nothing."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from services.matching.repository import ProjectionRepository
from tests.helpers.db import rows


async def test_opposite_orders_of_marks_commit_without_a_deadlock(engine: AsyncEngine) -> None:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    codes = ["test.dirty.a", "test.dirty.b"]
    both_marked = asyncio.Barrier(2)

    async def mark(order: list[str]) -> None:
        async with sessions() as session, session.begin():
            repo = ProjectionRepository(session)
            await repo.mark_dirty({order[0]})
            await both_marked.wait()  # each transaction holds its first mark before taking its second
            await repo.mark_dirty({order[1]})
            await asyncio.sleep(0.05)

    # Written as they came, the second marks would wait on each other's uncommitted row: a deadlock.
    await asyncio.wait_for(asyncio.gather(mark(codes), mark(codes[::-1])), timeout=30)
    got = await rows(
        engine, "SELECT item_code FROM matching.dirty_scope WHERE item_code LIKE 'test.dirty.%' ORDER BY 1"
    )
    assert [r["item_code"] for r in got] == codes
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM matching.dirty_scope WHERE item_code LIKE 'test.dirty.%'"))


async def test_a_rolled_back_transaction_marks_nothing(engine: AsyncEngine) -> None:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session:
        await session.begin()
        await ProjectionRepository(session).mark_dirty({"test.dirty.rolled_back"})
        await session.rollback()
        async with session.begin():  # the session's next transaction commits without the mark
            await session.execute(text("SELECT 1"))
    assert await rows(engine, "SELECT 1 FROM matching.dirty_scope WHERE item_code = 'test.dirty.rolled_back'") == []
