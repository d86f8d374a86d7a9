"""Continuous matching is woken by the dirty marks committed in its own process: a run starts once the debounce
interval has passed, not at the next poll."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from reliefhub.gateway import Gateway
from services.matching.continuous import ContinuousMatching
from services.matching.repository import ProjectionRepository
from shared.runtime import Runtime
from tests.helpers.catalog import RICE
from tests.helpers.db import rows


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
