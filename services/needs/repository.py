"""Every query of the needs service."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from services.needs.models import Claim, LineMatch, LineShipment, Need, NeedLine, OperationView, Site, catalog
from shared.db import RepositoryBase, driver_connection
from shared.events.outbox import OUTBOX_COLUMNS, outbox_returning
from shared.pagination import PageParams, paginate
from shared.vocabulary import ClaimStatus, NeedLineStatus, NeedStatus, SiteKind, Urgency


@dataclass(frozen=True, slots=True)
class SiteRef:
    """What intake needs of a site."""

    id: uuid.UUID
    org: str
    region_code: str
    kind: str
    lat: float | None
    lon: float | None


# Intake's hot statements, in SQL for asyncpg (see shared.db.driver_connection).
_SITE_WITH_TWIN_SQL = """
SELECT s.id, s.org, s.region_code, s.kind, s.lat, s.lon,
       (SELECT n.id FROM needs.need n
         WHERE n.site_id = s.id AND n.status = ANY($3::text[])
           AND EXISTS (SELECT 1 FROM needs.need_line l WHERE l.need_id = n.id AND l.item_code = ANY($2::text[]))
         ORDER BY n.created_at DESC LIMIT 1) AS twin_id
  FROM needs.site s
 WHERE s.id = $1
"""
_NEED_COLUMNS = (
    "id",
    "site_id",
    "org",
    "region_code",
    "title",
    "urgency",
    "needed_by",
    "beneficiaries",
    "beneficiary_groups",
    "status",
    "verification",
    "duplicate_of",
    "confirmed_at",
    "created_at",
    "updated_at",
    "created_by",
    "version",
    "operation_id",
)
_LINE_ARRAYS = (
    "id",
    "position",
    "item_code",
    "quantity",
    "unit",
    "notes",
    "status",
    "item_request_id",
    "pending_reason",
    "deadline",
)
# Data-modifying CTEs run as one statement; the lines' foreign key is checked at its end, after the need.
_JSON_COLUMNS = {"beneficiary_groups"}  # the driver's connection takes JSONB as text
_N = len(_NEED_COLUMNS)
_LINE_TYPES = ("uuid", "int", "text", "int", "text", "text", "text", "uuid", "text", "text")
_LINES = ", ".join(f"${_N + i}::{t}[]" for i, t in enumerate(_LINE_TYPES, 1))
_OUTBOX = ", ".join(f"${_N + len(_LINE_TYPES) + i}" for i in range(1, 6))
_INSERT_NEW_SQL = f"""
WITH need AS (
  INSERT INTO needs.need ({", ".join(_NEED_COLUMNS)}) VALUES ({", ".join(f"${i}" for i in range(1, _N + 1))})
), lines AS (
  INSERT INTO needs.need_line ({", ".join(("need_id", *_LINE_ARRAYS))})
  SELECT $1, {", ".join(f"l.{c}" for c in _LINE_ARRAYS)}
    FROM unnest({_LINES})
         AS l({", ".join(_LINE_ARRAYS)})
)
INSERT INTO needs.outbox_event ({OUTBOX_COLUMNS}) VALUES ({_OUTBOX}) {outbox_returning("needs")}
"""


class SiteRepository(RepositoryBase[Site]):
    model = Site

    async def get_many(self, ids: set[uuid.UUID]) -> dict[uuid.UUID, Site]:
        if not ids:
            return {}
        rows = (await self.session.execute(select(Site).where(Site.id.in_(ids)))).scalars()
        return {s.id: s for s in rows}

    async def search(
        self, params: PageParams, *, org: str | None, kind: SiteKind | None, region_code: str | None
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

    async def waiting_on(self, request_id: uuid.UUID) -> list[uuid.UUID]:
        """The needs with a line waiting (`pending_item`) on this item request, in id order."""
        stmt = (
            select(NeedLine.need_id)
            .where(NeedLine.item_request_id == request_id, NeedLine.status == NeedLineStatus.pending_item)
            .distinct()
            .order_by(NeedLine.need_id)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def get_with_lines(self, need_id: uuid.UUID, *, for_update: bool = False) -> Need | None:
        # One statement (a join, not a second SELECT for the lines): a roll-up committing in between would
        # otherwise pair new line quantities with the old status.
        stmt = select(Need).options(joinedload(Need.lines)).where(Need.id == need_id)
        if for_update:
            stmt = stmt.with_for_update(of=Need)
        return (await self.session.execute(stmt)).unique().scalar_one_or_none()

    async def search(
        self,
        params: PageParams,
        *,
        status: NeedStatus | None,
        site_id: uuid.UUID | None,
        region_code: str | None,
        item_code: str | None,
        urgency: Urgency | None,
        operation_id: uuid.UUID | None = None,
    ) -> tuple[list[Need], str | None]:
        stmt = self._with_lines()
        if operation_id:
            stmt = stmt.where(Need.operation_id == operation_id)
        if status:
            stmt = stmt.where(Need.status == status)
        if site_id:
            stmt = stmt.where(Need.site_id == site_id)
        if region_code:
            stmt = stmt.where(Need.region_code.startswith(region_code, autoescape=True))
        if urgency:
            stmt = stmt.where(Need.urgency == urgency)
        if item_code:
            stmt = stmt.where(exists().where(NeedLine.need_id == Need.id, NeedLine.item_code == item_code))
        return await paginate(self.session, stmt, Need.created_at, Need.id, params)

    def _twin_condition(
        self, site_id: uuid.UUID, item_codes: set[str], statuses: tuple[NeedStatus, ...]
    ) -> tuple[ColumnElement[bool], ...]:
        return (
            Need.site_id == site_id,
            Need.status.in_(statuses),
            exists().where(NeedLine.need_id == Need.id, NeedLine.item_code.in_(item_codes)),
        )

    async def active_of_site(self, site_id: uuid.UUID, statuses: tuple[NeedStatus, ...]) -> list[Need]:
        stmt = self._with_lines().where(Need.site_id == site_id, Need.status.in_(statuses)).with_for_update(of=Need)
        return list((await self.session.execute(stmt)).scalars())

    async def site_with_twin_id(
        self, site_id: uuid.UUID, item_codes: set[str], statuses: tuple[NeedStatus, ...]
    ) -> tuple[SiteRef | None, uuid.UUID | None]:
        """The site and its open twin need's id, in one round trip (the intake hot path)."""
        driver = await driver_connection(self.session)
        row = await driver.fetchrow(_SITE_WITH_TWIN_SQL, site_id, sorted(item_codes), [s.value for s in statuses])
        if row is None:
            return None, None
        return SiteRef(row[0], row[1], row[2], row[3], row[4], row[5]), row[6]

    async def insert_new(self, need: dict[str, Any], lines: list[dict[str, Any]], outbox: tuple[Any, ...]) -> None:
        """Insert a new need, its lines and its outbox event in one statement (the intake hot path)."""
        driver = await driver_connection(self.session)
        columns = [[line[c] for line in lines] for c in _LINE_ARRAYS]
        values = [json.dumps(need[c]) if c in _JSON_COLUMNS else need[c] for c in _NEED_COLUMNS]
        await driver.execute(_INSERT_NEW_SQL, *values, *columns, *outbox)

    async def find_open_twin_id(
        self, site_id: uuid.UUID, item_codes: set[str], statuses: tuple[NeedStatus, ...]
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
        self, site_id: uuid.UUID, item_codes: set[str], statuses: tuple[NeedStatus, ...], *, for_update: bool = False
    ) -> Need | None:
        """The most recent active need of the site that asks for any of these items, with its lines."""
        stmt = (
            self._with_lines()
            .where(*self._twin_condition(site_id, item_codes, statuses))
            .order_by(Need.created_at.desc())
            .limit(1)
        )
        if for_update:
            stmt = stmt.with_for_update(of=Need)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def expire_stale(self, now: datetime, confirmed_before: datetime, limit: int) -> list[uuid.UUID]:
        candidates = (
            select(Need.id)
            .where(Need.status == NeedStatus.open, or_(Need.needed_by < now, Need.confirmed_at < confirmed_before))
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        result = await self.session.execute(
            update(Need)
            .where(Need.id.in_(candidates))
            .values(
                status=NeedStatus.expired,
                closed_at=now,
                version=Need.version + 1,
                close_reason="expired: past needed_by or not re-confirmed",
            )
            .returning(Need.id)
        )
        return list(result.scalars())


@dataclass(frozen=True, slots=True)
class LineTotals:
    matched: int
    in_transit: int
    delivered: int


class RollupRepository(RepositoryBase[LineMatch]):
    """The latest state the roll-up has seen of each accepted proposal and shipment line, and the sums over it."""

    model = LineMatch

    async def record_matches(self, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
        """Upsert, keeping the newer version; returns the needs whose rows changed."""
        return await self._upsert(LineMatch, LineMatch.proposal_id, rows)

    async def record_shipment_lines(self, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
        return await self._upsert(LineShipment, LineShipment.shipment_line_id, rows)

    async def _upsert(self, model: Any, key: Any, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
        if not rows:
            return set()
        stmt = insert(model).values(rows)
        upsert = stmt.on_conflict_do_update(
            index_elements=[key],
            set_={c: stmt.excluded[c] for c in rows[0] if c != key.key},
            where=model.version < stmt.excluded.version,
        ).returning(model.need_id)
        return set((await self.session.execute(upsert)).scalars())

    async def line_totals(self, need_id: uuid.UUID) -> dict[uuid.UUID, LineTotals]:
        """Per line of the need: accepted minus given back, in transit, delivered; summed over the rows."""
        matched = (
            select(LineMatch.need_line_id, func.sum(LineMatch.quantity).label("accepted"))
            .where(LineMatch.need_id == need_id)
            .group_by(LineMatch.need_line_id)
            .subquery()
        )
        shipped = (
            select(
                LineShipment.need_line_id,
                func.sum(LineShipment.quantity_in_transit).label("in_transit"),
                func.sum(LineShipment.quantity_delivered).label("delivered"),
                func.sum(LineShipment.quantity_returned).label("returned"),
            )
            .where(LineShipment.need_id == need_id)
            .group_by(LineShipment.need_line_id)
            .subquery()
        )
        stmt = (
            select(
                NeedLine.id,
                func.greatest(func.coalesce(matched.c.accepted, 0) - func.coalesce(shipped.c.returned, 0), 0),
                func.coalesce(shipped.c.in_transit, 0),
                func.coalesce(shipped.c.delivered, 0),
            )
            .outerjoin(matched, matched.c.need_line_id == NeedLine.id)
            .outerjoin(shipped, shipped.c.need_line_id == NeedLine.id)
            .where(NeedLine.need_id == need_id)
        )
        rows = (await self.session.execute(stmt)).all()
        return {r[0]: LineTotals(int(r[1]), int(r[2]), int(r[3])) for r in rows}


async def add_catalog_item(session: AsyncSession, code: str, body: dict[str, Any]) -> bool:
    """A new item in the catalog table, unless the code is taken (then False)."""
    stmt = insert(catalog).values(code=code, body=body).on_conflict_do_nothing(index_elements=["code"])
    added = await session.execute(stmt.returning(catalog.c.code))
    return added.first() is not None


class OperationViewRepository(RepositoryBase[OperationView]):
    """needs' copy of logistics' relief operations (shared.operations): `keep_newest` stores each version."""

    model = OperationView


class ClaimRepository(RepositoryBase[Claim]):
    """Partners' claims on need lines, and the lines they lock."""

    model = Claim

    async def page(
        self, params: PageParams, *, need_id: uuid.UUID | None, org: str | None, status: ClaimStatus | None
    ) -> tuple[list[Claim], str | None]:
        stmt = select(Claim)
        if need_id:
            stmt = stmt.where(Claim.need_id == need_id)
        if org:
            stmt = stmt.where(Claim.org == org)
        if status:
            stmt = stmt.where(Claim.status == status)
        return await paginate(self.session, stmt, Claim.created_at, Claim.id, params)

    async def expiring(self, now: datetime, limit: int) -> list[Claim]:
        """Pending claims past their `expires_at`, oldest first, locked; rows another transaction holds are
        left to the next sweep."""
        stmt = (
            select(Claim)
            .where(Claim.status == ClaimStatus.pending, Claim.expires_at <= now)
            .order_by(Claim.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def lock_lines(self, need_id: uuid.UUID) -> None:
        """The need's lines locked and read again as committed now (into the session's objects)."""
        stmt = select(NeedLine).where(NeedLine.need_id == need_id).with_for_update()
        await self.session.execute(stmt.execution_options(populate_existing=True))
