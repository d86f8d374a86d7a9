"""Continuous matching: each item group whose lines or lots changed is re-allocated once quiet, and every group
with active lines periodically; each group in its own transaction, failing groups backing off."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy.exc import DBAPIError

from services.matching import schemas
from services.matching.component import Bounds, Changed
from services.matching.events import SYSTEM
from services.matching.repository import DIRTY_CHANNEL, DirtyMark, ProjectionRepository
from services.matching.runs import RunAbandoned
from services.matching.service import accept_committed, run_allocation
from shared import wakeup
from shared.catalog import get_catalog
from shared.db import utcnow
from shared.metrics import MATCHING_BACKING_OFF, MATCHING_RUN_FAILURES
from shared.runtime import Runtime

log = logging.getLogger("reliefhub.matching")


@dataclass(frozen=True)
class ItemGroup:
    """Items whose lines compete for the same lots: a connected component of the catalog's substitutes (an
    item the catalog does not know is a group of its own). Groups are independent allocation problems, so each
    is run, fails and backs off on its own."""

    key: str
    items: tuple[str, ...]


@lru_cache(maxsize=1)
def _catalog_groups() -> dict[str, ItemGroup]:
    parent: dict[str, str] = {}

    def root(code: str) -> str:
        parent.setdefault(code, code)
        while parent[code] != code:
            parent[code] = parent[parent[code]]
            code = parent[code]
        return code

    for item in get_catalog().items:
        for sub in item.substitutes:
            a, b = root(item.code), root(sub)
            parent[max(a, b)] = min(a, b)
        root(item.code)
    members: dict[str, list[str]] = {}
    for code in parent:
        members.setdefault(root(code), []).append(code)
    return {code: ItemGroup(r, tuple(sorted(members[r]))) for code in parent for r in (root(code),)}


def item_group(code: str) -> ItemGroup:
    return _catalog_groups().get(code) or ItemGroup(code, (code,))


def _groups_of(codes: Iterable[str]) -> dict[str, ItemGroup]:
    return {g.key: g for g in map(item_group, codes)}


def _by_group(marks: Iterable[DirtyMark]) -> dict[str, list[DirtyMark]]:
    out: dict[str, list[DirtyMark]] = {}
    for mark in marks:
        out.setdefault(item_group(mark.item_code).key, []).append(mark)
    return out


def _failure_reason(exc: BaseException) -> str:
    """The driver's error class under SQLAlchemy's wrappers (LockNotAvailableError, QueryCanceledError, …)."""
    cause: BaseException = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    while cause.__cause__ is not None and type(cause).__module__.startswith("sqlalchemy"):
        cause = cause.__cause__
    return type(cause).__name__


class _GroupBusy(Exception):
    """Another worker is running this group."""


# How long runs in progress get to notice the stop and roll back before they are cancelled outright.
_ABANDON_SECONDS = 1.5


class ContinuousMatching:
    """A worker's continuous matching: each item group whose lines or lots changed (dirty_scope) is re-allocated
    once quiet for the debounce interval, and every group with active lines every `matching_global_seconds`.

    Each group runs in its own transaction, several at once, so a slow group delays no other. A failing group
    is retried after a backoff kept in dirty_scope (doubling per failure), while groups that never failed go
    first. On stop no new run starts, runs in progress are abandoned (rolled back) and their marks queued
    again for whichever worker runs next."""

    def __init__(self, rt: Runtime, stop: asyncio.Event) -> None:
        self.rt, self.stop, self.settings = rt, stop, rt.settings
        self.running: dict[str, asyncio.Task[None]] = {}
        self.periodic: dict[str, ItemGroup] = {}  # groups of the global pass not run yet, in order
        self.wake = asyncio.Event()  # marks committed in this process, or a run ended
        self.run_ended = False
        self.listener: wakeup.PgListener | None = None

    async def run(self) -> None:
        next_pass = asyncio.get_running_loop().time()
        async with wakeup.listening(self.rt.engine, DIRTY_CHANNEL, self.wake, self.stop) as listener:
            self.listener = listener
            try:
                await self._loop(next_pass)
            finally:
                await self._abandon()

    async def _loop(self, next_pass: float) -> None:
        loop = asyncio.get_running_loop()
        while not self.stop.is_set():
            due_in: float | None = None
            try:
                if loop.time() >= next_pass:
                    await self._queue_global_pass()
                    next_pass = loop.time() + self.settings.matching_global_seconds
                due_in = await self._dispatch()
            except Exception as exc:
                log.warning("continuous matching could not dispatch: %r", exc)
            await self._sleep(due_in)

    async def _sleep(self, due_in: float | None) -> None:
        """Until the next dispatch: when the earliest queued group is due (`due_in` seconds), at the latest after
        `matching_poll_seconds` (a safety net: marks of other processes notify; the debounce interval while
        the NOTIFY connection is down), at once when a run ends (its group's marks may be due),
        and no later than the debounce interval after marks committed (none is due sooner)."""
        loop = asyncio.get_running_loop()
        poll = self.settings.matching_poll_seconds
        if self.listener is None or not self.listener.listening:
            poll = min(poll, self.settings.matching_debounce_seconds)
        deadline = loop.time() + (poll if due_in is None else min(poll, due_in))
        while not self.stop.is_set() and not self.run_ended:
            left = deadline - loop.time()
            if left <= 0:
                return
            self.wake.clear()
            waiter = asyncio.ensure_future(self.wake.wait())
            stopping = asyncio.ensure_future(self.stop.wait())
            try:
                await asyncio.wait([waiter, stopping], timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                stopping.cancel()
            if waiter.done() and not waiter.cancelled():
                deadline = min(deadline, loop.time() + self.settings.matching_debounce_seconds)
        self.run_ended = False

    async def _queue_global_pass(self) -> None:
        async with self.rt.sessionmaker() as session:
            codes = await ProjectionRepository(session).active_item_codes()
        for key, group in sorted(_groups_of(codes).items()):
            self.periodic.setdefault(key, group)

    async def _dispatch(self) -> float | None:
        """Start the due groups' runs; returns in how many seconds the next queued group is due (None: none is
        waiting for its debounce interval)."""
        free = self.settings.matching_concurrency - len(self.running)
        if free <= 0:
            return None
        async with self.rt.sessionmaker() as session, session.begin():
            repo = ProjectionRepository(session)
            queued = _by_group(await repo.dirty())
            chosen = self._due(queued, free)
            taken = await repo.take_dirty([m.item_code for key in chosen for m in queued[key]]) if chosen else []
        for key, marks in _by_group(taken).items():
            self.periodic.pop(key, None)
            self._start(item_group(marks[0].item_code), "continuous", marks)
        self._start_periodic(queued)
        return self._next_due(queued, set(chosen))

    def _next_due(self, queued: dict[str, list[DirtyMark]], chosen: set[str]) -> float | None:
        """Seconds until the earliest queued group that is neither started nor running is due: quiet for the
        debounce interval and past its backoff."""
        now = utcnow()
        debounce = timedelta(seconds=self.settings.matching_debounce_seconds)
        waits = [
            (max(min(m.since for m in marks) + debounce, *(m.not_before or now for m in marks)) - now).total_seconds()
            for key, marks in queued.items()
            if key not in chosen and key not in self.running
        ]
        return max(0.0, min(waits)) if waits else None

    def _due(self, queued: dict[str, list[DirtyMark]], free: int) -> list[str]:
        """The queued groups to run now (at most `free`): quiet for the debounce interval, not running, not
        backing off; groups that never failed first, then the longest waiting, so new work never queues behind
        retries."""
        now = utcnow()
        cutoff = now - timedelta(seconds=self.settings.matching_debounce_seconds)
        backing_off = {key for key, marks in queued.items() if any(m.not_before and m.not_before > now for m in marks)}
        MATCHING_BACKING_OFF.set(len(backing_off))
        due = [
            key
            for key, marks in queued.items()
            if key not in self.running and key not in backing_off and any(m.since <= cutoff for m in marks)
        ]
        due.sort(key=lambda k: (max(m.attempts for m in queued[k]), min(m.since for m in queued[k])))
        return due[:free]

    def _start_periodic(self, queued: dict[str, list[DirtyMark]]) -> None:
        """Groups of the global pass, while there is room; a queued group runs (or retries) from the queue."""
        for key in list(self.periodic):
            if len(self.running) >= self.settings.matching_concurrency:
                break
            group = self.periodic.pop(key)
            if key not in self.running and key not in queued:
                self._start(group, "periodic", [])

    def _start(self, group: ItemGroup, trigger: str, marks: list[DirtyMark]) -> None:
        task = asyncio.create_task(self._run_group(group, trigger, marks), name=f"matching-run-{group.key}")
        self.running[group.key] = task
        task.add_done_callback(lambda _: self._ended(group.key))

    def _ended(self, key: str) -> None:
        self.running.pop(key, None)
        self.run_ended = True
        self.wake.set()

    async def _run_group(self, group: ItemGroup, trigger: str, marks: list[DirtyMark]) -> None:
        attempts = max((m.attempts for m in marks), default=0)
        try:
            async with self.rt.sessionmaker() as session, session.begin():
                repo = ProjectionRepository(session)
                lock_timeout = self.settings.matching_lock_timeout_seconds
                if not await repo.try_lock(f"matching:group:{group.key}", lock_timeout=lock_timeout):
                    raise _GroupBusy()
                run, _ = await run_allocation(
                    session,
                    scope=schemas.RunScope(item_codes=list(group.items)),
                    trigger=trigger,
                    actor=SYSTEM,
                    stop=self.stop,
                    changed=self._changed(marks),
                    auto_accept=False,
                )
            # Committed: its locks are let go before any auto-accept calls supply.
            async with self.rt.sessionmaker() as session:
                await accept_committed(session, run.id, self.stop)
        except _GroupBusy:
            if marks:  # changes the other worker's run may have missed
                await self._queue_again(group, marks, attempts=attempts, not_before=None, error=None)
        except RunAbandoned:
            await self._queue_again(group, marks, attempts=attempts, not_before=None, error=None)
        except asyncio.CancelledError:  # not abandoned in time
            await self._queue_again(group, marks, attempts=attempts, not_before=None, error=None)
            raise
        except Exception as exc:
            attempts += 1
            delay = min(
                self.settings.matching_backoff_max_seconds, self.settings.matching_backoff_seconds * 2 ** (attempts - 1)
            )
            reason = _failure_reason(exc)
            MATCHING_RUN_FAILURES.labels(trigger, reason).inc()
            log.warning(
                "%s run of item group %s failed (attempt %d, retried in %.1f s): %s: %s",
                trigger,
                group.key,
                attempts,
                delay,
                reason,
                exc,
            )
            await self._queue_again(
                group,
                marks,
                attempts=attempts,
                not_before=utcnow() + timedelta(seconds=delay),
                error=f"{reason}: {exc}"[:1000],
            )

    def _changed(self, marks: list[DirtyMark]) -> Changed | None:
        """The lines and lots the marks name, unless some mark is of the whole item (or there is none: a periodic
        run)."""
        if not marks or any(m.whole for m in marks):
            return None
        bounds = Bounds(self.settings.matching_component_max_size, self.settings.matching_component_max_hops)
        return Changed({i for m in marks for i in m.lines}, {i for m in marks for i in m.lots}, bounds)

    async def _queue_again(
        self,
        group: ItemGroup,
        marks: list[DirtyMark],
        *,
        attempts: int,
        not_before: datetime | None,
        error: str | None,
    ) -> None:
        marks = marks or [DirtyMark(group.key, utcnow(), 0)]  # a periodic run: its group is left dirty
        try:
            async with self.rt.sessionmaker() as session, session.begin():
                await ProjectionRepository(session).put_back_dirty(
                    marks, attempts=attempts, not_before=not_before, error=error
                )
        except Exception as exc:  # the next global pass covers the group
            log.warning("item group %s could not be queued again: %r", group.key, exc)

    async def _abandon(self) -> None:
        tasks = list(self.running.values())
        if not tasks:
            return
        log.info("continuous matching stopped, abandoning %d run(s) in progress", len(tasks))
        _, pending = await asyncio.wait(tasks, timeout=_ABANDON_SECONDS)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=_ABANDON_SECONDS)


async def continuous_matching(rt: Runtime, stop: asyncio.Event) -> None:
    await ContinuousMatching(rt, stop).run()
