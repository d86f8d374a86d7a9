"""The outbox relay: publishes committed outbox rows to the service's Redis stream, in order, in batches."""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import KitTables
from shared.events.outbox import notify_channel
from shared.metrics import OUTBOX_BACKLOG, OUTBOX_PUBLISHED
from shared.settings import Settings

log = logging.getLogger("reliefhub.relay")


class OutboxRelay:
    """Moves outbox rows to Redis. One relay per service publishes at a time (an advisory lock keeps order);
    a crash between XADD and the UPDATE republishes the batch, which consumers' inboxes deduplicate."""

    def __init__(self, *, engine: AsyncEngine, kit: KitTables, redis: Redis, settings: Settings) -> None:
        self.engine = engine
        self.kit = kit
        self.redis = redis
        self.settings = settings
        self._wake = asyncio.Event()
        self._lock_key = zlib.crc32(f"outbox:{kit.schema}".encode())
        t = f'"{kit.schema}".outbox_event'
        self._select = text(f"SELECT seq, stream, envelope FROM {t} WHERE published_at IS NULL ORDER BY seq LIMIT :n")
        self._mark = text(f"UPDATE {t} SET published_at = now() WHERE seq = ANY(:seqs)")
        self._backlog = text(f"SELECT count(*) FROM {t} WHERE published_at IS NULL")

    async def publish_batch(self) -> int:
        """Publish up to one batch; returns how many rows were published (0 if another relay holds the lock)."""
        async with self.engine.begin() as conn:
            got = (await conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": self._lock_key})).scalar()
            if not got:
                return 0
            rows = (await conn.execute(self._select, {"n": self.settings.relay_batch_size})).all()
            if not rows:
                return 0
            pipe = self.redis.pipeline(transaction=False)
            for _seq, stream, envelope in rows:
                env: dict[str, Any] = envelope
                pipe.xadd(stream, {"type": env["type"], "event": json.dumps(env, ensure_ascii=False)})
            await pipe.execute()
            await conn.execute(self._mark, {"seqs": [r[0] for r in rows]})
        OUTBOX_PUBLISHED.labels(self.kit.schema).inc(len(rows))
        return len(rows)

    async def backlog(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(self._backlog)).scalar_one())

    async def _listen(self, stop: asyncio.Event) -> None:
        """LISTEN for commits that wrote outbox rows, so publishing does not wait for the next poll."""
        while not stop.is_set():
            try:
                async with self.engine.connect() as conn:
                    raw = await conn.get_raw_connection()
                    driver: Any = raw.driver_connection

                    def wake(*_: object) -> None:
                        self._wake.set()

                    lost = asyncio.Event()
                    driver.add_termination_listener(lambda *_, lost=lost: lost.set())
                    await driver.add_listener(notify_channel(self.kit.schema), wake)
                    try:
                        await _wait_any(stop, lost)
                    finally:
                        if not driver.is_closed():
                            await driver.remove_listener(notify_channel(self.kit.schema), wake)
            except Exception as exc:  # the relay keeps polling meanwhile
                log.warning("outbox listener for %s lost: %s", self.kit.schema, exc)
                await _sleep_or_stop(stop, 2.0)

    async def run(self, stop: asyncio.Event) -> None:
        listener = asyncio.create_task(self._listen(stop))
        delay = 0.5
        try:
            while not stop.is_set():
                try:
                    published = await self.publish_batch()
                    delay = 0.5
                except Exception as exc:  # Redis or PostgreSQL away: rows stay in the outbox
                    log.warning("outbox relay for %s failed: %s", self.kit.schema, exc)
                    await _sleep_or_stop(stop, delay)
                    delay = min(delay * 2, 10.0)
                    continue
                if published >= self.settings.relay_batch_size:
                    continue
                self._wake.clear()
                try:
                    OUTBOX_BACKLOG.labels(self.kit.schema).set(await self.backlog())
                except Exception:
                    pass
                waiter = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait(
                    {waiter, stopper}, timeout=self.settings.relay_poll_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                waiter.cancel()
                stopper.cancel()
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def _wait_any(*events: asyncio.Event, within: float | None = None) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
