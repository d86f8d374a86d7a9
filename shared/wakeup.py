"""Wake-ups: a transaction that left work for a worker (events in an outbox, dirty marks for continuous matching,
webhook deliveries) wakes it when it commits, rather than leaving the work to the worker's next poll. A worker of
the same process is woken directly (`on_commit`); one of another process through PostgreSQL's LISTEN/NOTIFY: the
transaction sends `pg_notify` (`notify_sql`, `notify_at_commit`), the worker LISTENs (`listening`). The workers'
polls remain, slow, as a safety net: a notification missed while a listening connection was down loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import AsyncIterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

Listener = tuple[str, asyncio.AbstractEventLoop, asyncio.Event]

_lock = threading.Lock()
_listeners: set[Listener] = set()
_PENDING = "wakeup.pending"  # session.info: the channels its transaction is to wake on commit
_SENT = "wakeup.sent"  # session.info: channel → the transaction that sent its pg_notify

log = logging.getLogger("reliefhub.wakeup")
RECONNECT_SECONDS = 0.5  # the first wait before a lost listening connection is opened again; doubles up to
RECONNECT_MAX_SECONDS = 10.0
KEEPALIVE_SECONDS = 30.0
KEEPALIVE_TIMEOUT_SECONDS = 5.0


def listen(channel: str, wake: asyncio.Event) -> Listener:
    """Set `wake` (in the running loop) whenever work on `channel` commits; pass the result to `unlisten`."""
    entry = (channel, asyncio.get_running_loop(), wake)
    with _lock:
        _listeners.add(entry)
    return entry


def unlisten(entry: Listener) -> None:
    with _lock:
        _listeners.discard(entry)


def notify(channel: str) -> None:
    """Wake every listener of `channel` (callable from any thread; one whose loop has closed is skipped)."""
    with _lock:
        entries = [e for e in _listeners if e[0] == channel]
    for _, loop, wake in entries:
        with contextlib.suppress(RuntimeError):  # its loop is closed
            loop.call_soon_threadsafe(wake.set)


def on_commit(session: AsyncSession | Session, channel: str) -> None:
    """Wake `channel`'s listeners once the session's current transaction commits (not if it rolls back)."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    sync.info.setdefault(_PENDING, set()).add(channel)


# Listeners of every session, once (a listener per session would cost more than the wake-up saves).
@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    pending: set[str] | None = session.info.get(_PENDING)
    if pending:
        channels = list(pending)
        pending.clear()
        for channel in channels:
            notify(channel)


@event.listens_for(Session, "after_soft_rollback")
def _rolled_back(session: Session, previous_transaction: Any) -> None:
    pending: set[str] | None = session.info.get(_PENDING)
    if pending and not session.in_transaction():  # the outermost transaction rolled back (not a savepoint)
        pending.clear()


def pg_channel(channel: str) -> str:
    """The PostgreSQL channel (LISTEN/NOTIFY) of a wake-up channel: `outbox:needs` → `reliefhub_outbox_needs`."""
    return "reliefhub_" + re.sub(r"[^a-z0-9]", "_", channel.lower())


def notify_sql(channel: str) -> str:
    """`pg_notify` of `channel`, to be evaluated by a statement of the transaction that left the work: PostgreSQL
    delivers it at commit (once, however often the transaction sent it), never if the transaction rolls back."""
    return f"pg_notify('{pg_channel(channel)}', '')"


async def notify_at_commit(session: AsyncSession, channel: str) -> None:
    """Wake `channel`'s listeners, in this process and in others, once the session's transaction commits: a
    statement of its own, sent once per transaction (for writes not hot enough to carry `notify_sql`)."""
    on_commit(session, channel)
    sent: dict[str, Any] = session.info.setdefault(_SENT, {})
    transaction = session.sync_session.get_transaction()
    if sent.get(channel) is not transaction:
        await session.execute(text(f"SELECT {notify_sql(channel)}"))
        sent[channel] = transaction


class PgListener:
    """LISTENs on a channel's PostgreSQL twin over a dedicated connection, setting `wake` on each notification:
    work committed by other processes. The connection may drop (a restarted server, the network): it is opened
    again with backoff, `listening` is False meanwhile (callers poll faster), and `wake` is set once it listens
    again, since whatever committed in between notified no one."""

    def __init__(self, engine: AsyncEngine, channel: str, wake: asyncio.Event) -> None:
        self.dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.channel = pg_channel(channel)
        self.wake = wake
        self.listening = False
        self.connects = 0  # connections made so far (one more after each reconnect)

    async def run(self, stop: asyncio.Event) -> None:
        delay = RECONNECT_SECONDS
        while not stop.is_set():
            try:
                await self._listen(stop)
                delay = RECONNECT_SECONDS
            except Exception as exc:
                log.warning("listening on %s failed (polling meanwhile): %r", self.channel, exc)
            self.listening = False
            if not stop.is_set():
                await wait_any(stop, seconds=delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _listen(self, stop: asyncio.Event) -> None:
        lost = asyncio.Event()
        conn = await asyncpg.connect(self.dsn, timeout=5, server_settings={"application_name": "reliefhub-listen"})
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(self.channel, lambda *_: self.wake.set())
            self.listening = True
            self.connects += 1
            self.wake.set()
            while not stop.is_set() and not lost.is_set() and not conn.is_closed():
                if not await wait_any(stop, lost, seconds=KEEPALIVE_SECONDS):
                    # A connection whose peer vanished without a word is noticed only by using it.
                    await conn.execute("SELECT 1", timeout=KEEPALIVE_TIMEOUT_SECONDS)
        finally:
            self.listening = False
            if not conn.is_closed():
                conn.terminate()


async def wait_any(*events: asyncio.Event, seconds: float) -> bool:
    """Until one of `events` is set (True) or `seconds` passed (False)."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        done, _ = await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    return bool(done)


@contextlib.asynccontextmanager
async def listening(
    engine: AsyncEngine, channel: str, wake: asyncio.Event, stop: asyncio.Event
) -> AsyncIterator[PgListener]:
    """Set `wake` whenever work on `channel` commits, in this process or (through PostgreSQL) in another."""
    entry = listen(channel, wake)
    listener = PgListener(engine, channel, wake)
    task = asyncio.create_task(listener.run(stop), name=f"listen-{listener.channel}")
    try:
        yield listener
    finally:
        unlisten(entry)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
