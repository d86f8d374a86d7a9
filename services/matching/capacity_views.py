"""matching's projection of partners' capacities (`capacity_view`), kept apart from the capacity matching in
`capacities.py` so that the event handlers can use it without the scoring code."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.matching.models import CapacityView


async def upsert_capacity(session: AsyncSession, row: dict[str, Any]) -> None:
    """A capacity from its event, unless a newer version is already projected."""
    stmt = insert(CapacityView).values(**row)
    fields = {k: stmt.excluded[k] for k in row if k != "capacity_id"}
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[CapacityView.capacity_id],
            set_={**fields, "updated_at": func.now()},
            where=CapacityView.version < stmt.excluded.version,
        )
    )


async def get_capacity(session: AsyncSession, capacity_id: uuid.UUID) -> CapacityView | None:
    return await session.get(CapacityView, capacity_id)
