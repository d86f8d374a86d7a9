"""The logistics tables as the models type them: statuses and ledger kinds are enums in Python and the same
strings in the database, so typing the columns needed no migration."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.logistics.models import SCHEMA, Base, LedgerEntry, LedgerKind, Procurement, ProcurementStatus
from services.logistics.repository import LedgerRepository, ProcurementRepository
from shared.db import utcnow
from shared.pagination import PageParams


def _pending(connection: Connection) -> list[Any]:
    def include_name(name: str | None, type_: str, parent_names: object) -> bool:
        if type_ == "schema":
            return name == SCHEMA
        return not (type_ == "table" and name == "alembic_version")

    opts = {"include_schemas": True, "include_name": include_name, "compare_type": True}
    return list(compare_metadata(MigrationContext.configure(connection, opts=opts), Base.metadata))


async def test_the_migrated_schema_matches_the_models(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        assert await connection.run_sync(_pending) == []


def _procurement(status: Any) -> Procurement:
    now = utcnow()
    return Procurement(
        id=uuid.uuid4(),
        org="org-a",
        supplier={"name": "Supplier"},
        currency="CNY",
        total=100,
        lines=[{"item_code": "water", "quantity": 1, "unit_price": 100, "amount": 100}],
        status=status,
        created_by="user:a",
        version=1,
        created_at=now,
        updated_at=now,
        funding=[],
    )


async def test_statuses_are_stored_as_their_strings_and_read_back_as_members(engine: AsyncEngine) -> None:
    async with AsyncSession(engine, expire_on_commit=False) as session:
        p = ProcurementRepository(session).add(_procurement(ProcurementStatus.ordered))
        await LedgerRepository(session).book(
            ref=f"spent:{p.id}", kind=LedgerKind.spent, amount=100, currency="CNY", procurement_id=p.id
        )
        await session.commit()
        stored = await session.execute(text("SELECT status FROM logistics.procurement WHERE id = :id"), {"id": p.id})
        assert stored.scalar_one() == "ordered"
        session.expunge_all()
        found = await ProcurementRepository(session).get_full(p.id)
        assert found is not None and found.status is ProcurementStatus.ordered
        entries, _ = await LedgerRepository(session).search(PageParams(limit=10, after=None), procurement_id=p.id)
        assert [type(e) for e in entries] == [LedgerEntry] and entries[0].kind is LedgerKind.spent


async def test_a_status_that_is_no_member_is_refused_before_it_reaches_the_table(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session:
        ProcurementRepository(session).add(_procurement("shipped"))
        with pytest.raises(StatementError, match="shipped"):
            await session.flush()
