"""Change cursors for offline clients: `?updated_since=` on a list returns exactly the records changed after the
point the cursor names, never one committed later with an older sequence number.

Every tracked row carries `change_seq` (from a per-table sequence, set on insert and, by a trigger, on every
update) and `change_xid` (the writing transaction's id). Sequence numbers are drawn before commit, so
transactions commit out of sequence order: a cursor made of the highest `change_seq` seen would skip a row
numbered lower whose transaction commits a moment later. A cursor therefore names a transaction-id watermark
instead: the snapshot's xmin (`pg_snapshot_xmin`), below which every transaction has finished. A sync returns
the rows whose writing transaction lies in [previous watermark, current watermark) — a set no later commit can
change — ordered by `change_seq`; rows of transactions still running wait for the next call. See docs/sync.md."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, FetchedValue, Select, and_, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, undefer

from shared.errors import InvalidRequest

CURSOR_VERSION = 1
WATERMARK_SQL = text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


class ChangeTracked:
    """`change_seq` and `change_xid`, both filled by the database (a column default on insert, the table's
    trigger on update). Deferred, and raising when touched unloaded: only change queries read them."""

    change_seq: Mapped[int] = mapped_column(
        BigInteger, server_default=FetchedValue(), deferred=True, deferred_raiseload=True
    )
    change_xid: Mapped[int] = mapped_column(
        BigInteger, server_default=FetchedValue(), index=True, deferred=True, deferred_raiseload=True
    )

    @classmethod
    def changed_between(cls, since: int, until: int) -> ColumnElement[bool]:
        """Written by a transaction in [since, until); aggregates whose children change on their own widen it."""
        return and_(cls.change_xid >= since, cls.change_xid < until)


@dataclass(frozen=True)
class ChangeWindow:
    """The changes of transactions with ids in [since, until), after `after_seq` when paging inside it."""

    since: int
    until: int | None = None
    after_seq: int | None = None


def encode_change_cursor(window: ChangeWindow) -> str:
    raw = json.dumps([CURSOR_VERSION, window.since, window.until, window.after_seq]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_change_cursor(cursor: str) -> ChangeWindow:
    """A cursor this API returned, or `0` for everything from the start."""
    if cursor == "0":
        return ChangeWindow(since=0)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, since, until, after = json.loads(raw)
        if version != CURSOR_VERSION:
            raise ValueError("unknown cursor version")
        for value in (since, until, after):
            if value is not None and (type(value) is not int or not 0 <= value < 2**63):
                raise ValueError("not a cursor position")
        if type(since) is not int or (until is not None and until < since):
            raise ValueError("not a cursor window")
        return ChangeWindow(since=since, until=until, after_seq=after)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(
            "updated_since is not a cursor this API returned (or 0 for everything).",
            errors=[{"loc": ["query", "updated_since"], "msg": "invalid change cursor"}],
        ) from exc


async def current_watermark(session: AsyncSession) -> int:
    """Every transaction with a lower id has committed or rolled back."""
    return int((await session.execute(WATERMARK_SQL)).scalar_one())


async def changes_page(
    session: AsyncSession, stmt: Select[Any], entity: Any, window: ChangeWindow, watermark: int, limit: int
) -> tuple[list[Any], str]:
    """One page of the window's changes in `change_seq` order, and the cursor to pass next: the rest of this
    window while rows remain, else the start of the next window."""
    until = window.until if window.until is not None else max(window.since, watermark)
    condition = entity.changed_between(window.since, until)
    stmt = stmt.where(condition)
    if window.after_seq is not None:
        stmt = stmt.where(entity.change_seq > window.after_seq)
    stmt = stmt.options(undefer(entity.change_seq)).order_by(entity.change_seq).limit(limit + 1)
    rows = list((await session.execute(stmt)).unique().scalars().all())
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_change_cursor(ChangeWindow(window.since, until, rows[-1].change_seq))
    return rows, encode_change_cursor(ChangeWindow(until))
