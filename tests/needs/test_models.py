"""The needs tables as the models declare them are the tables the migrations built (a status typed with its enum
changes nothing in the database), and status columns read back as enum members and refuse unknown values."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.needs.models import Base, Need, Site
from shared.migrations import pending_changes
from shared.vocabulary import NeedStatus, SiteKind, Urgency, Verification


async def test_models_need_no_migration(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await conn.run_sync(pending_changes, Base.metadata) == []


def _site() -> Site:
    return Site(id=uuid.uuid4(), org="org-a", name="Site", kind=SiteKind.hospital, region_code="310101", version=1)


def _need(site: Site) -> Need:
    return Need(
        id=uuid.uuid4(),
        site_id=site.id,
        org=site.org,
        region_code=site.region_code,
        title="Masks",
        urgency=Urgency.high,
        created_by="tester",
        version=1,
    )


async def test_statuses_read_back_as_members_and_are_stored_as_their_values(engine: AsyncEngine) -> None:
    site = _site()
    need = _need(site)
    async with AsyncSession(engine, expire_on_commit=False) as session:
        session.add(site)
        await session.flush()
        session.add(need)
        await session.commit()
    async with AsyncSession(engine) as session:
        loaded = await session.get(Need, need.id)
        assert loaded is not None
        assert loaded.status is NeedStatus.open
        assert loaded.verification is Verification.unverified
        assert loaded.urgency is Urgency.high
        row = (
            await session.execute(text("SELECT status, urgency FROM needs.need WHERE id = :id"), {"id": need.id})
        ).one()
        assert tuple(row) == ("open", "high")


async def test_an_unknown_status_is_refused_before_it_reaches_the_database(engine: AsyncEngine) -> None:
    site = _site()
    need = _need(site)
    need.status = "closd"  # type: ignore[assignment]
    async with AsyncSession(engine) as session:
        session.add(site)
        await session.flush()
        session.add(need)
        with pytest.raises(StatementError, match="closd"):
            await session.commit()
        await session.rollback()
    async with engine.connect() as conn:
        assert (
            await conn.execute(text("SELECT count(*) FROM needs.site WHERE id = :id"), {"id": site.id})
        ).scalar() == 0
