"""The supply tables as the models declare them are the tables the migrations built: typing the offer, lot and
reservation statuses with their enums changes nothing in the database."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from services.supply.models import Base
from shared.migrations import pending_changes


async def test_models_need_no_migration(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await conn.run_sync(pending_changes, Base.metadata) == []
