"""The living catalog across services: the needs service owns it (its `catalog_item` table, changed through
its API) and publishes each change as an event; every other service that reads the catalog keeps a copy of
the changes in its own `catalog_item` table (written by its consumer of those events), and each process,
API or worker, folds that table into `get_catalog()` at most every `REFRESH_SECONDS`, before it answers a
request or runs its work. No restart is needed, and a restarted process starts from its table again."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, MetaData, String, Table, func, select
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.catalog import Item, apply_items
from shared.events import CloudEvent

REFRESH_SECONDS = 2.0
ITEM_ADDED = "reliefhub.needs.item.added"
CATALOG_TYPES = (ITEM_ADDED,)  # what `catalog_handler` acts on (Subscription.types)


def catalog_table(metadata: MetaData) -> Table:
    """Items added to (or changed in) the seed catalog, as the catalog's own item documents."""
    return Table(
        "catalog_item",
        metadata,
        Column("code", String(100), primary_key=True),
        Column("body", JSONB, nullable=False),
        Column("changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


async def store_item(session: AsyncSession, table: Table, item: Item) -> None:
    """Write the item into this service's table (the newest body wins) and into this process's catalog."""
    body = item.model_dump(mode="json")
    stmt = insert(table).values(code=item.code, body=body)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["code"], set_={"body": body, "changed_at": func.now()})
    )
    apply_items([item])


class _Follower:
    """When this process last read its table, and the newest change it saw."""

    def __init__(self) -> None:
        self.checked = 0.0
        self.seen: dict[str, datetime] = {}


_followers: dict[str, _Follower] = {}


async def refresh(sessionmaker: async_sessionmaker[AsyncSession], table: Table, *, force: bool = False) -> None:
    """Fold the table's changes into this process's catalog, at most every REFRESH_SECONDS (unless forced)."""
    follower = _followers.setdefault(f"{table.schema}.{table.name}", _Follower())
    now = time.monotonic()
    if not force and now - follower.checked < REFRESH_SECONDS:
        return
    follower.checked = now
    since = max(follower.seen.values(), default=None)
    query = select(table.c.code, table.c.body, table.c.changed_at)
    if since is not None:
        query = query.where(table.c.changed_at >= since)
    async with sessionmaker() as session:
        rows = (await session.execute(query)).all()
    fresh = [r for r in rows if follower.seen.get(r.code) != r.changed_at]
    if fresh:
        apply_items([Item.model_validate(r.body) for r in fresh])
        follower.seen.update({r.code: r.changed_at for r in fresh})


def catalog_handler(table: Table) -> Any:
    """A consumer handler for the needs stream: keeps the catalog's changes in `table` (others are ignored)."""

    async def on_catalog_event(session: AsyncSession, event: CloudEvent) -> None:
        if event.type == ITEM_ADDED:
            await store_item(session, table, Item.model_validate(event.data))

    return on_catalog_event
