"""The logistics tables as the models type them: statuses and ledger kinds are enums in Python and the same
strings in the database, so typing the columns needed no migration; the projections of needs and offers speak
the shared vocabulary."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.logistics.models import Base, LedgerEntry, LedgerKind, Procurement, ProcurementStatus
from services.logistics.repository import LedgerRepository, ProcurementRepository, ProjectionRepository
from shared.db import utcnow
from shared.migrations import pending_changes
from shared.pagination import PageParams
from shared.vocabulary import NeedStatus, OfferStatus


async def test_the_migrated_schema_matches_the_models(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        assert await connection.run_sync(pending_changes, Base.metadata) == []


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


async def test_projected_needs_and_offers_read_back_with_the_shared_statuses(engine: AsyncEngine) -> None:
    offer_id, need_id = uuid.uuid4(), uuid.uuid4()
    now = utcnow()
    async with AsyncSession(engine, expire_on_commit=False) as session:
        repo = ProjectionRepository(session)
        await repo.upsert_offer(
            {
                "offer_id": offer_id,
                "donor_id": uuid.uuid4(),
                "org": "org-donor",
                "kind": "cash",
                "status": OfferStatus.withdrawn,
                "amount": 1000,
                "currency": "CNY",
                "tracking_ref": uuid.uuid4().hex,
                "procurement_id": None,
                "lots": [],
                "version": 1,
                "offer_created_at": now,
            }
        )
        await repo.upsert_need(
            {
                "need_id": need_id,
                "site_id": uuid.uuid4(),
                "org": "org-site",
                "region_code": "310115",
                "title": "A need",
                "status": NeedStatus.cancelled,
                "beneficiaries": None,
                "lines": [],
                "version": 1,
                "need_created_at": now,
            }
        )
        await session.commit()
        offer, need = await repo.offer(offer_id), await repo.need(need_id)
        assert offer is not None and offer.status is OfferStatus.withdrawn
        assert need is not None and need.status is NeedStatus.cancelled
        # A withdrawn pledge is not spent from: the conditional update compares with the member.
        assert await repo.spend(offer_id, 10) is False
