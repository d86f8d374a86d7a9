"""W3C trace context: the current `traceparent`, carried through requests, HTTP calls and events."""

from __future__ import annotations

import random
import re
from contextvars import ContextVar

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_random = random.Random()
_current: ContextVar[str | None] = ContextVar("traceparent", default=None)


def new_traceparent(trace_id: str | None = None) -> str:
    # Trace ids need to be unique, not secret (W3C trace context §3.2.2.3): no system call per request.
    trace = trace_id or f"{_random.getrandbits(128) or 1:032x}"
    return f"00-{trace}-{_random.getrandbits(64) or 1:016x}-01"


def parse_trace_id(traceparent: str | None) -> str | None:
    if not traceparent:
        return None
    m = _TRACEPARENT.match(traceparent.strip().lower())
    return m.group(1) if m else None


def continue_trace(incoming: str | None) -> str:
    """A traceparent for this unit of work: a new span in the caller's trace, or a new trace."""
    tp = new_traceparent(parse_trace_id(incoming))
    _current.set(tp)
    return tp


def current_traceparent() -> str | None:
    return _current.get()


def current_trace_id() -> str | None:
    return parse_trace_id(_current.get())
