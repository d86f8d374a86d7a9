"""Cursor pagination over (created_at, id), newest first; or, with `updated_since`, over a change window in
change order (shared.changes)."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from shared.app import SessionDep
from shared.changes import ChangeWindow, changes_page, current_watermark, decode_change_cursor, encode_change_cursor
from shared.errors import InvalidRequest

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True)
class PageParams:
    limit: int
    after: tuple[datetime, uuid.UUID] | None
    changes: ChangeWindow | None = None  # set: the page lists this window's changes instead
    watermark: int | None = None  # the transaction-id watermark taken before the query (change-tracked lists)


class SyncPage(Page[T], Generic[T]):
    """A page of a change-tracked list."""

    sync_cursor: str = Field(
        description="Pass as `updated_since` to get what changed after this response: keep the first page's "
        "cursor when walking a whole list with `cursor`."
    )
    has_more: bool = Field(False, description="With `updated_since`: more changes wait; call again with sync_cursor.")


def encode_cursor(created_at: datetime, id_: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(id_)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, id_ = json.loads(raw)
        created_at = datetime.fromisoformat(at)
        if created_at.tzinfo is None:
            raise ValueError("a cursor's timestamp carries its offset")
        created_at.astimezone(UTC)  # out of range in UTC: refuse it here, not as a driver error (a 500)
        return created_at, uuid.UUID(str(id_))
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidRequest(
            "The cursor is not one this API returned.", errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}]
        ) from exc


async def page_params(
    limit: Annotated[int, Query(ge=1, le=500, description="Page size (max 500).")] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page.")] = None,
) -> PageParams:
    return PageParams(limit=limit, after=decode_cursor(cursor) if cursor else None)


PageQuery = Annotated[PageParams, Depends(page_params)]


async def sync_page_params(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size (max 500).")] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page.")] = None,
    updated_since: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Only what changed after this point, in change order: a `sync_cursor` of an earlier "
            "response, or `0` for everything. Not with `cursor`.",
        ),
    ] = None,
) -> PageParams:
    if cursor and updated_since:
        raise InvalidRequest(
            "Send either cursor (paging newest first) or updated_since (changes), not both.",
            errors=[{"loc": ["query", "updated_since"], "msg": "not with cursor"}],
        )
    changes = decode_change_cursor(updated_since) if updated_since else None
    after = decode_cursor(cursor) if cursor else None
    return PageParams(limit=limit, after=after, changes=changes, watermark=await current_watermark(session))


SyncPageQuery = Annotated[PageParams, Depends(sync_page_params)]


def sync_page(items: list[T], cursor: str | None, params: PageParams) -> SyncPage[T]:
    """The response of a change-tracked list: in change mode `cursor` is the next sync cursor."""
    if params.changes is None:
        assert params.watermark is not None, "change-tracked lists take SyncPageQuery"
        return SyncPage(
            items=items, next_cursor=cursor, sync_cursor=encode_change_cursor(ChangeWindow(params.watermark))
        )
    assert cursor is not None
    return SyncPage(
        items=items, next_cursor=None, sync_cursor=cursor, has_more=decode_change_cursor(cursor).until is not None
    )


async def paginate(
    session: AsyncSession,
    stmt: Select[Any],
    created_at: InstrumentedAttribute[Any],
    id_col: InstrumentedAttribute[Any],
    params: PageParams,
) -> tuple[list[Any], str | None]:
    if params.changes is not None:
        assert params.watermark is not None
        return await changes_page(session, stmt, created_at.class_, params.changes, params.watermark, params.limit)
    if params.after is not None:
        stmt = stmt.where(tuple_(created_at, id_col) < tuple_(*params.after))
    stmt = stmt.order_by(created_at.desc(), id_col.desc()).limit(params.limit + 1)
    rows = list((await session.execute(stmt)).scalars().all())
    next_cursor = None
    if len(rows) > params.limit:
        rows = rows[: params.limit]
        last = rows[-1]
        next_cursor = encode_cursor(getattr(last, created_at.key), getattr(last, id_col.key))
    return rows, next_cursor
