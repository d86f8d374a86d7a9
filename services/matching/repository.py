"""Every query of the matching service."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from services.matching.models import (
    AllocationRun,
    Decision,
    DirtyScope,
    LotView,
    NeedLineView,
    PolicyVersion,
    Proposal,
)
from shared.db import RepositoryBase
from shared.pagination import PageParams, paginate

ACTIVE_NEED = ("open", "matched", "in_transit")
AVAILABLE_LOT = ("not_required", "verified")


def _accepted_by_line() -> Any:
    return (
        select(
            Proposal.need_line_id, func.sum(Proposal.accepted_quantity - Proposal.quantity_returned).label("accepted")
        )
        .where(Proposal.status == "accepted")
        .group_by(Proposal.need_line_id)
        .subquery()
    )


def _unprojected_by_lot() -> Any:
    """Accepted quantity whose reservation event has not reached lot_view yet."""
    return (
        select(Proposal.lot_id, func.sum(Proposal.accepted_quantity).label("pending"))
        .where(Proposal.status == "accepted", Proposal.reservation_projected.is_(False))
        .group_by(Proposal.lot_id)
        .subquery()
    )


class ProjectionRepository(RepositoryBase[NeedLineView]):
    model = NeedLineView

    async def open_lines(
        self,
        *,
        region_code: str | None = None,
        item_codes: Sequence[str] | None = None,
        line_ids: Sequence[uuid.UUID] | None = None,
    ) -> list[dict[str, Any]]:
        """Open need lines with remaining demand, with the fill ratios of their site and county."""
        accepted = _accepted_by_line()
        matched = func.coalesce(accepted.c.accepted, 0)
        v = NeedLineView
        # Fill ratios over every active line of the site / county, not only those in scope.
        totals = (
            select(
                v.line_id,
                (
                    func.sum(matched).over(partition_by=v.site_id)
                    / func.nullif(func.sum(v.quantity).over(partition_by=v.site_id), 0)
                ).label("site_fill"),
                (
                    func.sum(matched).over(partition_by=v.region_code)
                    / func.nullif(func.sum(v.quantity).over(partition_by=v.region_code), 0)
                ).label("county_fill"),
            )
            .select_from(v)
            .outerjoin(accepted, accepted.c.need_line_id == v.line_id)
            .where(v.need_status.in_(ACTIVE_NEED))
            .subquery()
        )
        conditions: list[ColumnElement[bool]] = [
            v.need_status.in_(ACTIVE_NEED),
            v.verification != "rejected",
            v.quantity - matched > 0,
        ]
        if region_code:
            conditions.append(v.region_code.startswith(region_code, autoescape=True))
        if item_codes:
            conditions.append(v.item_code.in_(list(item_codes)))
        if line_ids is not None:
            conditions.append(v.line_id.in_(list(line_ids)))
        stmt = (
            select(v, matched.label("matched"), totals.c.site_fill, totals.c.county_fill)
            .outerjoin(accepted, accepted.c.need_line_id == v.line_id)
            .join(totals, totals.c.line_id == v.line_id)
            .where(and_(*conditions))
        )
        out = []
        for line, done, site_fill, county_fill in (await self.session.execute(stmt)).all():
            out.append(
                {
                    "id": str(line.line_id),
                    "need_id": line.need_id,
                    "item_code": line.item_code,
                    "remaining": line.quantity - int(done),
                    "urgency": line.urgency,
                    "needed_by": line.needed_by,
                    "lat": line.lat,
                    "lon": line.lon,
                    "region_code": line.region_code,
                    "site_kind": line.site_kind,
                    "verified": line.verification == "verified",
                    "site_fill": float(site_fill or 0),
                    "county_fill": float(county_fill or 0),
                }
            )
        return out

    async def available_lots(self, item_codes: set[str]) -> list[dict[str, Any]]:
        pending = _unprojected_by_lot()
        available = LotView.quantity - LotView.quantity_reserved - func.coalesce(pending.c.pending, 0)
        stmt = (
            select(LotView, available.label("available"))
            .outerjoin(pending, pending.c.lot_id == LotView.lot_id)
            .where(
                LotView.item_code.in_(sorted(item_codes)),
                LotView.offer_status == "open",
                LotView.verification.in_(AVAILABLE_LOT),
                available > 0,
            )
        )
        return [
            {
                "id": str(lot.lot_id),
                "offer_id": lot.offer_id,
                "item_code": lot.item_code,
                "available": int(avail),
                "lat": lot.lat,
                "lon": lot.lon,
                "available_from": lot.available_from,
                "expires_at": lot.expires_at,
                "restrictions": lot.restrictions or {},
            }
            for lot, avail in (await self.session.execute(stmt)).all()
        ]

    async def refresh_lot(self, lot_id: uuid.UUID, lot_version: int, **values: Any) -> None:
        if "verification" in values:
            values["verification_version"] = lot_version
        await self.session.execute(
            update(LotView)
            .where(LotView.lot_id == lot_id, LotView.lot_version < lot_version)
            .values(lot_version=lot_version, **values)
        )

    async def line(self, line_id: uuid.UUID) -> NeedLineView | None:
        return await self.session.get(NeedLineView, line_id)

    async def mark_first_matched(self, line_id: uuid.UUID, at: datetime) -> None:
        await self.session.execute(
            update(NeedLineView)
            .where(NeedLineView.line_id == line_id, NeedLineView.first_matched_at.is_(None))
            .values(first_matched_at=at)
        )

    async def take_dirty(self, older_than: datetime) -> set[str]:
        rows = await self.session.execute(
            delete(DirtyScope).where(DirtyScope.since <= older_than).returning(DirtyScope.item_code)
        )
        return set(rows.scalars())

    async def kpis(self, level: int, region_code: str | None) -> list[tuple[Any, ...]]:
        accepted = _accepted_by_line()
        v = NeedLineView
        region = func.substr(v.region_code, 1, level).label("region")
        waited = func.extract("epoch", v.first_matched_at - v.first_seen_at)
        stmt = (
            select(
                region,
                func.count(),
                func.sum(v.quantity),
                func.sum(func.coalesce(accepted.c.accepted, 0)),
                func.count(v.first_matched_at),
                func.percentile_cont(0.5).within_group(waited),
                func.percentile_cont(0.9).within_group(waited),
            )
            .outerjoin(accepted, accepted.c.need_line_id == v.line_id)
            .group_by(region)
            .order_by(region)
        )
        if region_code:
            stmt = stmt.where(v.region_code.startswith(region_code, autoescape=True))
        return [tuple(r) for r in (await self.session.execute(stmt)).all()]


class PolicyRepository(RepositoryBase[PolicyVersion]):
    model = PolicyVersion

    async def latest(self) -> PolicyVersion | None:
        stmt = select(PolicyVersion).order_by(PolicyVersion.version.desc()).limit(1)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def insert_version(self, version: int, body: dict[str, Any], actor: str) -> PolicyVersion | None:
        """A new version, unless a concurrent writer took that number (then None)."""
        stmt = (
            insert(PolicyVersion)
            .values(version=version, body=body, created_by=actor)
            .on_conflict_do_nothing()
            .returning(PolicyVersion)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()


class ProposalRepository(RepositoryBase[Proposal]):
    model = Proposal

    async def open_for_lines(self, line_ids: Sequence[uuid.UUID]) -> list[Proposal]:
        if not line_ids:
            return []
        stmt = (
            select(Proposal)
            .where(Proposal.need_line_id.in_(list(line_ids)), Proposal.status == "proposed")
            .order_by(Proposal.id)  # every run locks in one order, so two runs never deadlock each other
            .with_for_update()
        )
        return list((await self.session.execute(stmt)).scalars())

    async def supersede(self, proposals: list[Proposal], run_id: uuid.UUID, now: datetime) -> list[Proposal]:
        for p in proposals:
            p.status, p.reason = "cancelled", f"superseded by run {run_id}"
            p.decided_at, p.decided_by = now, "matching"
            p.version += 1
            self.session.add(
                Decision(proposal_id=p.id, action="cancel", quantity=p.quantity, reason=p.reason, actor="matching")
            )
        await self.session.flush()
        return proposals

    async def for_run(self, run_id: uuid.UUID) -> list[Proposal]:
        stmt = select(Proposal).where(Proposal.run_id == run_id).order_by(Proposal.score.desc(), Proposal.id)
        return list((await self.session.execute(stmt)).scalars())

    async def search(self, params: PageParams, **filters: Any) -> tuple[list[Proposal], str | None]:
        stmt = select(Proposal)
        for key in ("status", "need_id", "offer_id", "need_line_id", "lot_id", "run_id"):
            if filters.get(key):
                stmt = stmt.where(getattr(Proposal, key) == filters[key])
        if filters.get("region_code"):
            stmt = stmt.where(Proposal.region_code.startswith(filters["region_code"], autoescape=True))
        return await paginate(self.session, stmt, Proposal.created_at, Proposal.id, params)

    async def due_to_expire(self, now: datetime, limit: int) -> list[Proposal]:
        stmt = (
            select(Proposal)
            .where(Proposal.status == "proposed", Proposal.expires_at < now)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def auto_acceptable(self, run_id: uuid.UUID, threshold: float) -> list[uuid.UUID]:
        stmt = (
            select(Proposal.id)
            .where(Proposal.run_id == run_id, Proposal.status == "proposed", Proposal.score >= threshold)
            .order_by(Proposal.score.desc())
        )
        return list((await self.session.execute(stmt)).scalars())

    async def mark_projected(self, reference: uuid.UUID) -> None:
        await self.session.execute(
            update(Proposal)
            .where(Proposal.id == reference, or_(Proposal.reservation_projected.is_(False)))
            .values(reservation_projected=True)
        )

    async def decisions(self, proposal_id: uuid.UUID) -> list[Decision]:
        stmt = select(Decision).where(Decision.proposal_id == proposal_id).order_by(Decision.created_at, Decision.id)
        return list((await self.session.execute(stmt)).scalars())

    def record(self, decision: Decision) -> None:
        self.session.add(decision)


class RunRepository(RepositoryBase[AllocationRun]):
    model = AllocationRun

    async def search(self, params: PageParams) -> tuple[list[AllocationRun], str | None]:
        return await paginate(self.session, select(AllocationRun), AllocationRun.created_at, AllocationRun.id, params)
