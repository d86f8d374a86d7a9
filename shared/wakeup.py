"""In-process wake-ups: a transaction that left work for a worker of this process (events in an outbox, dirty
marks for continuous matching) wakes it when it commits, rather than leaving the work to the worker's next poll.
Work left by other processes is still found by polling."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

Listener = tuple[str, asyncio.AbstractEventLoop, asyncio.Event]

_lock = threading.Lock()
_listeners: set[Listener] = set()
_PENDING = "wakeup.pending"  # session.info: the channels its transaction is to wake on commit


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
