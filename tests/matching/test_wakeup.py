"""Continuous matching is woken by the dirty marks committed, in its own process or (by NOTIFY) in another: a run
starts once the debounce interval has passed, not at the next poll."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from reliefhub.gateway import Gateway
from services.matching.continuous import ContinuousMatching
from services.matching.repository import ProjectionRepository
from shared import wakeup
from shared.db import create_engine, make_sessionmaker
from shared.runtime import Runtime
from tests.helpers.catalog import RICE
from tests.helpers.db import rows
from tests.helpers.waiting import eventually


async def test_a_mark_committed_in_process_is_taken_after_the_debounce_not_the_poll(
    gateway: Gateway, engine: AsyncEngine
) -> None:
    base: Runtime = gateway.apps["matching"].state.runtime
    settings = base.settings.model_copy(update={"matching_poll_seconds": 60.0, "matching_debounce_seconds": 0.2})
    rt = dataclasses.replace(base, settings=settings)
    stop = asyncio.Event()
    task = asyncio.create_task(ContinuousMatching(rt, stop).run())
    try:
        await asyncio.sleep(0.5)  # its first dispatch found nothing: it sleeps until the poll, a minute away
        async with rt.sessionmaker() as session, session.begin():
            await ProjectionRepository(session).mark_dirty({RICE})
        marked = time.monotonic()
        while await rows(engine, "SELECT item_code FROM matching.dirty_scope"):
            assert time.monotonic() - marked < 20, "the mark waited for the poll"
            await asyncio.sleep(0.05)
        assert time.monotonic() - marked >= 0.15  # not before the debounce interval
    finally:
        stop.set()
        await task


async def test_a_mark_committed_by_another_engine_starts_a_run(
    gateway: Gateway, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No in-process wake-up and a poll a minute away: only PostgreSQL's NOTIFY can start the run in time."""
    base: Runtime = gateway.apps["matching"].state.runtime
    settings = base.settings.model_copy(update={"matching_poll_seconds": 60.0, "matching_debounce_seconds": 0.2})
    rt = dataclasses.replace(base, settings=settings)
    monkeypatch.setattr(wakeup, "notify", lambda channel: None)
    other = create_engine(settings)
    stop = asyncio.Event()
    matching = ContinuousMatching(rt, stop)
    task = asyncio.create_task(matching.run())

    async def listening() -> bool:
        return matching.listener is not None and matching.listener.listening

    try:
        await eventually(listening, seconds=10)
        await asyncio.sleep(0.5)  # its first dispatch found nothing: it sleeps until the poll, a minute away
        async with make_sessionmaker(other, rt.spec.kit, rt.spec.name)() as session, session.begin():
            await ProjectionRepository(session).mark_dirty({RICE})
        marked = time.monotonic()
        while await rows(engine, "SELECT item_code FROM matching.dirty_scope"):
            assert time.monotonic() - marked < 10, "the mark waited for the poll"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        await other.dispose()
