"""Consumer groups: each event handled once per group, in one transaction with an inbox row, acked after commit.

Stale pending entries (a consumer died mid-batch) are taken over with XAUTOCLAIM; an entry delivered more
than `consumer_max_deliveries` times moves to `<stream>.dead`. See https://redis.io/docs/latest/develop/data-types/streams/.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import kit_of
from shared.errors import database_unavailable, retryable
from shared.events.envelope import CloudEvent, dead_letter_stream
from shared.metrics import DEAD_LETTERS, EVENTS_HANDLED, PROJECTION_LAG
from shared.settings import Settings
from shared.tracing import continue_trace

log = logging.getLogger("reliefhub.consumer")

Handler = Callable[[AsyncSession, CloudEvent], Awaitable[None]]
# Handles a batch of events in one transaction (with one inbox insert for all of them); for consumers whose
# per-event work is small next to a transaction's cost, such as the webhooks fan-out.
BatchHandler = Callable[[AsyncSession, list[CloudEvent]], Awaitable[None]]
# The event types a group acts on: exact names, and prefixes ending in "." ("reliefhub.needs.need."). Entries of
# other types are acked as they arrive, with no transaction: the group's handler would do nothing with them.
EventTypes = tuple[str, ...]


def concerns(types: EventTypes | None, event_type: str) -> bool:
    """Whether a group acting on `types` (None: on every event) has anything to do with an event of `event_type`."""
    if types is None:
        return True
    return any(event_type == t or (t.endswith(".") and event_type.startswith(t)) for t in types)


def in_sequence(handler: Handler) -> BatchHandler:
    """A batch handler that applies `handler` to each event of the batch in order, in the batch's one
    transaction: the per-event work is unchanged, but a backlog costs one transaction, one inbox insert and one
    ack per batch instead of per event. When any event fails, the whole batch rolls back and the consumer
    handles its events one by one (so a poison event is retried and dead-lettered alone)."""

    async def apply_all(session: AsyncSession, events: list[CloudEvent]) -> None:
        for event in events:
            await handler(session, event)

    apply_all.__name__ = f"in_sequence({getattr(handler, '__name__', 'handler')})"
    return apply_all


def observe_lag(group: str, events: Iterable[CloudEvent]) -> None:
    """Record, for each event just committed by `group`, how long after its publication that was."""
    now = datetime.now(UTC)
    histogram = PROJECTION_LAG.labels(group)
    for event in events:
        when = event.time if event.time.tzinfo else event.time.replace(tzinfo=UTC)
        histogram.observe(max((now - when).total_seconds(), 0.0))


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Consumer:
    def __init__(
        self,
        *,
        group: str,
        stream: str,
        handler: Handler,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Redis,
        settings: Settings,
        name: str | None = None,
        batch_handler: BatchHandler | None = None,
        types: EventTypes | None = None,
    ) -> None:
        self.group = group
        self.types = types
        self.stream = stream
        self.handler = handler
        self.batch_handler = batch_handler
        self.sessionmaker = sessionmaker
        self.redis = redis
        self.settings = settings
        self.name = name or default_consumer_name()

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def handle(self, msg_id: str, fields: dict[str, str]) -> bool:
        """Handle one entry; True when it may be acked (handled now, or earlier, or undecodable)."""
        try:
            event = CloudEvent.model_validate_json(fields.get("event", ""))
        except ValidationError as exc:
            await self.dead_letter(msg_id, fields, f"undecodable: {exc.error_count()} errors")
            return True
        continue_trace(event.traceparent)
        async with self.sessionmaker() as session, session.begin():
            inbox = kit_of(session).inbox
            claimed = await session.execute(
                insert(inbox)
                .values(consumer=self.group, event_id=event.id, event_type=event.type)
                .on_conflict_do_nothing()
                .returning(inbox.c.event_id)
            )
            if claimed.first() is None:
                EVENTS_HANDLED.labels(self.group, "duplicate").inc()
                return True
            await self.handler(session, event)
        EVENTS_HANDLED.labels(self.group, "ok").inc()
        observe_lag(self.group, [event])
        return True

    async def handle_colliding(self, msg_id: str, fields: dict[str, str], attempts: int = 4) -> bool:
        """`handle`, run again at once (after a short, growing pause) when its transaction lost a collision with
        another (a deadlock, a serialization failure): the event is not at fault and waiting `claim_idle` for
        its redelivery would only delay it."""
        for attempt in range(attempts - 1):
            try:
                return await self.handle(msg_id, fields)
            except Exception as exc:
                if not retryable(exc):
                    raise
                await asyncio.sleep(0.02 * 2**attempt)
        return await self.handle(msg_id, fields)

    async def ack(self, msg_ids: list[str]) -> None:
        if msg_ids:
            await self.redis.xack(self.stream, self.group, *msg_ids)

    async def process_batch(self, entries: list[tuple[str, dict[str, str]]]) -> list[tuple[str, dict[str, str]]]:
        """Handle entries in one transaction; returns those left to handle one by one (all of them when the
        batch failed, so that one bad event cannot hold back the others)."""
        assert self.batch_handler is not None
        decoded: list[tuple[str, CloudEvent]] = []
        done: list[str] = []
        for msg_id, fields in entries:
            try:
                decoded.append((msg_id, CloudEvent.model_validate_json(fields.get("event", ""))))
            except ValidationError as exc:
                await self.dead_letter(msg_id, fields, f"undecodable: {exc.error_count()} errors")
                done.append(msg_id)
        for attempt in range(2):  # a batch that lost a collision is run once more before its events go singly
            try:
                events = await self._apply_batch([e for _, e in decoded])
                break
            except Exception as exc:
                if attempt == 0 and retryable(exc):
                    await asyncio.sleep(0.05)
                    continue
                log.warning(
                    "batch handler %s failed on %d events, handling them one by one: %r", self.group, len(decoded), exc
                )
                await self.ack(done)
                return [(msg_id, fields) for msg_id, fields in entries if msg_id not in done]
        EVENTS_HANDLED.labels(self.group, "ok").inc(len(events))
        observe_lag(self.group, events)
        EVENTS_HANDLED.labels(self.group, "duplicate").inc(len(decoded) - len(events))
        await self.ack(done + [msg_id for msg_id, _ in decoded])
        return []

    async def _apply_batch(self, decoded: list[CloudEvent]) -> list[CloudEvent]:
        """One transaction: the inbox takes the events not seen before, the batch handler applies them; the events
        applied."""
        assert self.batch_handler is not None
        async with self.sessionmaker() as session, session.begin():
            inbox = kit_of(session).inbox
            fresh: set[str] = set()
            if decoded:
                result = await session.execute(
                    insert(inbox)
                    .values([{"consumer": self.group, "event_id": e.id, "event_type": e.type} for e in decoded])
                    .on_conflict_do_nothing()
                    .returning(inbox.c.event_id)
                )
                fresh = set(result.scalars())
            events = list({e.id: e for e in decoded if e.id in fresh}.values())
            if events:
                await self.batch_handler(session, events)
        return events

    def _not_concerned(self, entries: list[tuple[str, dict[str, str]]]) -> list[str]:
        """The entries whose type (the relay's `type` field) this group does not act on."""
        if self.types is None:
            return []
        return [
            msg_id
            for msg_id, fields in entries
            if isinstance(kind := fields.get("type"), str) and not concerns(self.types, kind)
        ]

    async def process(self, entries: list[tuple[str, dict[str, str]]]) -> int:
        done: list[str] = []
        handled = 0
        skipped = self._not_concerned(entries)
        if skipped:
            await self.ack(skipped)
            EVENTS_HANDLED.labels(self.group, "skipped").inc(len(skipped))
            ignored = set(skipped)
            entries = [(msg_id, fields) for msg_id, fields in entries if msg_id not in ignored]
            handled = len(skipped)
            if not entries:
                return handled
        if self.batch_handler is not None and len(entries) > 1:
            left = await self.process_batch(entries)
            handled += len(entries) - len(left)
            if not left:
                return handled
            entries = left
        for msg_id, fields in entries:
            try:
                if await self.handle_colliding(msg_id, fields):
                    done.append(msg_id)
            except Exception as exc:  # left pending: retried after claim_idle, dead-lettered after N tries
                EVENTS_HANDLED.labels(self.group, "error").inc()
                log.warning("handler %s failed on %s: %r", self.group, msg_id, exc)
                if database_unavailable(exc) or retryable(exc):
                    await self.uncount_delivery(msg_id)
        await self.ack(done)
        return handled + len(done)

    async def uncount_delivery(self, msg_id: str) -> None:
        """Give back the delivery an attempt used when it failed for want of the database: the event is not at
        fault, and an outage longer than `consumer_max_deliveries` claims must not move it to the dead letters."""
        detail: Any = await self.redis.xpending_range(self.stream, self.group, min=msg_id, max=msg_id, count=1)
        if detail:
            retries = max(int(detail[0]["times_delivered"]) - 1, 0)
            await self.redis.xclaim(self.stream, self.group, self.name, 0, [msg_id], retrycount=retries, justid=True)

    async def read_new(self, block_ms: int | None = None) -> int:
        resp: Any = await self.redis.xreadgroup(
            self.group,
            self.name,
            {self.stream: ">"},
            count=self.settings.consumer_batch_size,
            block=self.settings.consumer_block_ms if block_ms is None else block_ms,
        )
        if not resp:
            return 0
        handled = 0
        for _stream, entries in resp:
            handled += await self.process([(i, f) for i, f in entries if f is not None])
        return handled

    async def reclaim(self) -> int:
        """Take over entries idle longer than `consumer_claim_idle_ms`; dead-letter the hopeless ones."""
        start = "0-0"
        handled = 0
        while True:
            resp: Any = await self.redis.xautoclaim(
                self.stream,
                self.group,
                self.name,
                min_idle_time=self.settings.consumer_claim_idle_ms,
                start_id=start,
                count=self.settings.consumer_batch_size,
            )
            start, entries = resp[0], resp[1]
            retry: list[tuple[str, dict[str, str]]] = []
            for msg_id, fields in entries:
                if fields is None:
                    continue
                detail: Any = await self.redis.xpending_range(self.stream, self.group, min=msg_id, max=msg_id, count=1)
                deliveries = int(detail[0]["times_delivered"]) if detail else 1
                if deliveries > self.settings.consumer_max_deliveries:
                    await self.dead_letter(msg_id, fields, f"delivered {deliveries} times")
                    await self.ack([msg_id])
                else:
                    retry.append((msg_id, fields))
            handled += await self.process(retry)
            if start in ("0-0", b"0-0") or not entries:
                return handled

    async def dead_letter(self, msg_id: str, fields: dict[str, str], reason: str) -> None:
        entry: dict[Any, Any] = {**fields, "original_id": msg_id, "group": self.group, "reason": reason}
        await self.redis.xadd(dead_letter_stream(self.stream), entry)
        DEAD_LETTERS.labels(self.stream, self.group).inc()
        log.error("moved %s from %s (group %s) to dead letters: %s", msg_id, self.stream, self.group, reason)

    async def run(self, stop: asyncio.Event) -> None:
        claim_every = max(self.settings.consumer_claim_idle_ms / 1000 / 2, 0.05)
        last_claim = 0.0
        loop = asyncio.get_running_loop()
        delay = 0.5
        while not stop.is_set():
            try:
                await self.ensure_group()
                if loop.time() - last_claim >= claim_every:
                    last_claim = loop.time()
                    await self.reclaim()
                await self.read_new()
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis or PostgreSQL away: entries stay pending
                log.warning("consumer %s on %s: %r", self.group, self.stream, exc)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, 10.0)
