"""The outbox relay: publishes committed outbox rows to the service's Redis stream, in order, in batches."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import zlib
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import wakeup
from shared.db import KitTables
from shared.events.outbox import outbox_channel
from shared.metrics import OUTBOX_BACKLOG, OUTBOX_PUBLISHED
from shared.settings import Settings

log = logging.getLogger("reliefhub.relay")
BACKLOG_EXPORT_SECONDS = 1.0


class OutboxRelay:
    """Moves outbox rows to Redis. One relay per service publishes at a time (an advisory lock keeps order);
    a crash between XADD and the UPDATE republishes the batch, which consumers' inboxes deduplicate."""

    def __init__(self, *, engine: AsyncEngine, kit: KitTables, redis: Redis, settings: Settings) -> None:
        self.engine = engine
        self.kit = kit
        self.redis = redis
        self.settings = settings
        self._lock_key = zlib.crc32(f"outbox:{kit.schema}".encode())
        t = f'"{kit.schema}".outbox_event'
        self._select = text(f"SELECT seq, stream, envelope FROM {t} WHERE published_at IS NULL ORDER BY seq LIMIT :n")
        self._mark = text(f"UPDATE {t} SET published_at = now() WHERE seq = ANY(:seqs)")
        self._backlog = text(f"SELECT count(*) FROM {t} WHERE published_at IS NULL")
        self._unpublish = text(
            f"UPDATE {t} SET published_at = NULL WHERE published_at > now() - make_interval(secs => :window)"
        )
        # Present while Redis still holds what this relay published; gone when Redis lost its data.
        self._epoch_key = f"reliefhub:relay-epoch:{kit.schema}"
        self._epoch_checked = 0.0
        self._drained = False  # the last batch published every row its snapshot held
        self._wake = asyncio.Event()  # outbox rows committed in this process
        self._backlog_exported = 0.0
        self.listener: wakeup.PgListener | None = None

    async def check_epoch(self) -> int:
        """If Redis came back without its data (no persistence, a lost volume, failover to a lagging replica),
        events relayed but not yet handled by every consumer group would be lost: publish the recent ones
        (`relay_republish_seconds`) again. Consumers' inboxes make the repeats harmless. Returns how many."""
        if await self.redis.exists(self._epoch_key):
            return 0
        async with self.engine.begin() as conn:
            got = (await conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": self._lock_key})).scalar()
            if not got:
                return 0
            result = await conn.execute(self._unpublish, {"window": self.settings.relay_republish_seconds})
        await self.redis.set(self._epoch_key, "1")
        count = int(getattr(result, "rowcount", 0) or 0)
        if count:
            log.warning("Redis lost the %s stream's data: publishing the last %d events again", self.kit.schema, count)
        return count

    async def publish_batch(self) -> int:
        """Publish up to one batch; returns how many rows were published (0 if another relay holds the lock)."""
        self._drained = False
        async with self.engine.begin() as conn:
            got = (await conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": self._lock_key})).scalar()
            if not got:
                return 0
            rows = (await conn.execute(self._select, {"n": self.settings.relay_batch_size})).all()
            if not rows:
                self._drained = True
                return 0
            pipe = self.redis.pipeline(transaction=False)
            for _seq, stream, envelope in rows:
                env: dict[str, Any] = envelope
                pipe.xadd(stream, {"type": env["type"], "event": json.dumps(env, ensure_ascii=False)})
            await pipe.execute()
            await conn.execute(self._mark, {"seqs": [r[0] for r in rows]})
        self._drained = len(rows) < self.settings.relay_batch_size
        OUTBOX_PUBLISHED.labels(self.kit.schema).inc(len(rows))
        return len(rows)

    async def backlog(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(self._backlog)).scalar_one())

    async def export_backlog(self) -> int:
        """Set `reliefhub_outbox_backlog` from PostgreSQL alone: it holds while Redis is away."""
        count = await self.backlog()
        OUTBOX_BACKLOG.labels(self.kit.schema).set(count)
        return count

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop`: back to back while there is a backlog; else when rows commit (woken in this
        process directly, from others by NOTIFY: see shared.wakeup), and every `relay_poll_seconds` in any case
        (a cheap query on a partial index), every `relay_pace_seconds` while the NOTIFY connection is down.
        NOTIFY takes a lock at commit that serialises notifying writers; the outbox statement sends it, once per
        transaction, so a request pays no round trip for it."""
        async with wakeup.listening(self.engine, outbox_channel(self.kit.schema), self._wake, stop) as listener:
            self.listener = listener
            await self._relay(stop)

    async def _relay(self, stop: asyncio.Event) -> None:
        delay = 0.5
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                if loop.time() - self._epoch_checked >= 1.0:
                    await self.check_epoch()
                    self._epoch_checked = loop.time()
                self._wake.clear()  # rows committed from here on wake the idle relay again
                started = loop.time()
                published = await self.publish_batch()
                delay = 0.5
            except Exception as exc:  # Redis or PostgreSQL away: rows stay in the outbox
                log.warning("outbox relay for %s failed: %s", self.kit.schema, exc)
                await _sleep_or_stop(stop, delay)
                delay = min(delay * 2, 10.0)
                continue
            if published >= self.settings.relay_batch_size:
                continue
            if self._drained:  # every row its snapshot held is published: no count needed
                OUTBOX_BACKLOG.labels(self.kit.schema).set(0)
            elif loop.time() - self._backlog_exported >= BACKLOG_EXPORT_SECONDS:
                # The gauge once a second, not on every idle poll: a count query per poll doubled what an idle
                # relay costs (the worker's bus-metrics loop exports it too, also while Redis is away).
                with contextlib.suppress(Exception):
                    await self.export_backlog()
                self._backlog_exported = loop.time()
            await self._idle(stop, started, published)

    async def _idle(self, stop: asyncio.Event, started: float, published: int) -> None:
        """Until rows commit or the poll is due (`relay_poll_seconds` after the last batch began), or `stop`. A
        relay whose last batch published rows keeps a pace (`relay_pace_seconds` between batches), publishing what
        came meanwhile as one batch rather than a batch per commit."""
        loop = asyncio.get_running_loop()
        if published:
            await _sleep_or_stop(stop, started + self.settings.relay_pace_seconds - loop.time())
        poll = self.settings.relay_poll_seconds
        if self.listener is None or not self.listener.listening:
            poll = min(poll, self.settings.relay_pace_seconds)
        left = started + poll - loop.time()
        if left > 0 and not stop.is_set():
            await wakeup.wait_any(stop, self._wake, seconds=left)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
