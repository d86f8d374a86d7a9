"""Every query of the needs service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, exists, or_, select, update
from sqlalchemy.orm import selectinload

from services.needs.models import Need, NeedLine, Site
from shared.db import RepositoryBase
from shared.pagination import PageParams, paginate


class SiteRepository(RepositoryBase[Site]):
    model = Site

    async def get_many(self, ids: set[uuid.UUID]) -> dict[uuid.UUID, Site]:
        if not ids:
            return {}
        rows = (await self.session.execute(select(Site).where(Site.id.in_(ids)))).scalars()
        return {s.id: s for s in rows}

    async def search(
        self, params: PageParams, *, org: str | None, kind: str | None, region_code: str | None
    ) -> tuple[list[Site], str | None]:
        stmt = select(Site)
        if org:
            stmt = stmt.where(Site.org == org)
        if kind:
            stmt = stmt.where(Site.kind == kind)
        if region_code:
            stmt = stmt.where(Site.region_code.startswith(region_code, autoescape=True))
        return await paginate(self.session, stmt, Site.created_at, Site.id, params)


class NeedRepository(RepositoryBase[Need]):
    model = Need

    def _with_lines(self) -> Select[Need]:
        return select(Need).options(selectinload(Need.lines))

    async def get_with_lines(self, need_id: uuid.UUID, *, for_update: bool = False) -> Need | None:
        stmt = self._with_lines().where(Need.id == need_id)
        if for_update:
            stmt = stmt.with_for_update(of=Need)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def search(self, params: PageParams, **filters: Any) -> tuple[list[Need], str | None]:
        stmt = self._with_lines()
        if filters.get("status"):
            stmt = stmt.where(Need.status == filters["status"])
        if filters.get("site_id"):
            stmt = stmt.where(Need.site_id == filters["site_id"])
        if filters.get("region_code"):
            stmt = stmt.where(Need.region_code.startswith(filters["region_code"], autoescape=True))
        if filters.get("urgency"):
            stmt = stmt.where(Need.urgency == filters["urgency"])
        if filters.get("org"):
            stmt = stmt.where(Need.org == filters["org"])
        if filters.get("item_code"):
            stmt = stmt.where(exists().where(NeedLine.need_id == Need.id, NeedLine.item_code == filters["item_code"]))
        return await paginate(self.session, stmt, Need.created_at, Need.id, params)

    def _twin_condition(self, site_id: uuid.UUID, item_codes: set[str], statuses: tuple[str, ...]) -> Any:
        return (
            Need.site_id == site_id,
            Need.status.in_(statuses),
            exists().where(NeedLine.need_id == Need.id, NeedLine.item_code.in_(item_codes)),
        )

    async def active_of_site(self, site_id: uuid.UUID, statuses: tuple[str, ...]) -> list[Need]:
        stmt = self._with_lines().where(Need.site_id == site_id, Need.status.in_(statuses)).with_for_update(of=Need)
        return list((await self.session.execute(stmt)).scalars())

    async def site_with_twin_id(
        self, site_id: uuid.UUID, item_codes: set[str], statuses: tuple[str, ...]
    ) -> tuple[Site | None, uuid.UUID | None]:
        """The site and its open twin need's id, in one round trip (the intake hot path)."""
        twin = (
            select(Need.id)
            .where(*self._twin_condition(site_id, item_codes, statuses))
            .order_by(Need.created_at.desc())
            .limit(1)
            .scalar_subquery()
        )
        row = (await self.session.execute(select(Site, twin).where(Site.id == site_id))).first()
        return (row[0], row[1]) if row else (None, None)

    async def find_open_twin_id(
        self, site_id: uuid.UUID, item_codes: set[str], statuses: tuple[str, ...]
    ) -> uuid.UUID | None:
        """The id of the most recent active need of the site that asks for any of these items."""
        stmt = (
            select(Need.id)
            .where(*self._twin_condition(site_id, item_codes, statuses))
            .order_by(Need.created_at.desc())
            .limit(1)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def find_open_twin(
        self, site_id: uuid.UUID, item_codes: set[str], statuses: tuple[str, ...], *, for_update: bool = False
    ) -> Need | None:
        """The most recent active need of the site that asks for any of these items, with its lines."""
        stmt = (
            self._with_lines()
            .where(
                Need.site_id == site_id,
                Need.status.in_(statuses),
                exists().where(NeedLine.need_id == Need.id, NeedLine.item_code.in_(item_codes)),
            )
            .order_by(Need.created_at.desc())
            .limit(1)
        )
        if for_update:
            stmt = stmt.with_for_update(of=Need)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def expire_stale(self, now: datetime, confirmed_before: datetime, limit: int) -> list[uuid.UUID]:
        candidates = (
            select(Need.id)
            .where(Need.status == "open", or_(Need.needed_by < now, Need.confirmed_at < confirmed_before))
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        result = await self.session.execute(
            update(Need)
            .where(Need.id.in_(candidates))
            .values(
                status="expired",
                closed_at=now,
                version=Need.version + 1,
                close_reason="expired: past needed_by or not re-confirmed",
            )
            .returning(Need.id)
        )
        return list(result.scalars())
