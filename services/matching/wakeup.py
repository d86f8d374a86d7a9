"""In-process wake-ups of continuous matching: a transaction that queued dirty marks wakes this process's
dispatchers when it commits, rather than leaving its marks to their next poll. Marks queued by other processes
are still found by polling (`matching_poll_seconds`)."""

from __future__ import annotations

import asyncio
import contextlib
import threading

_lock = threading.Lock()
_listeners: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()


def listen(event: asyncio.Event) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
    """Set `event` (in the running loop) whenever marks commit; pass the result to `unlisten` when done."""
    entry = (asyncio.get_running_loop(), event)
    with _lock:
        _listeners.add(entry)
    return entry


def unlisten(entry: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
    with _lock:
        _listeners.discard(entry)


def marks_committed() -> None:
    """Wake every listener (callable from any thread; a listener whose loop has closed is skipped)."""
    with _lock:
        entries = list(_listeners)
    for loop, event in entries:
        with contextlib.suppress(RuntimeError):  # its loop is closed
            loop.call_soon_threadsafe(event.set)
