"""The matching service's queries of policies, proposals, decisions and allocation runs (the projections' are
in `repository`, which re-exports these)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, case, cast, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert

from services.matching.models import (
    AllocationRun,
    Decision,
    LotView,
    NeedLineView,
    PolicyVersion,
    Proposal,
    ShipmentReturn,
)
from services.matching.repository import (
    ACTIVE_NEED,
    AVAILABLE_LOT,
    _codes,
    _ids,
    _lot_available,
    _open_proposals,
    accepted_by_line,
)
from services.matching.schemas import ProposalStatus
from shared.db import RepositoryBase
from shared.pagination import PageParams, paginate
from shared.restrictions import Restrictions
from shared.vocabulary import Verdict

# The restrictions a lot's offer may carry (shared.restrictions.Restrictions), and the empty list.
_RULES = tuple(Restrictions.model_fields)
_EMPTY_LIST = cast(literal("[]"), JSONB)


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

    async def held(self, line_ids: Sequence[uuid.UUID], now: datetime) -> list[Proposal]:
        """The open proposals of these lines, unlocked (read while a run computes, locked only to change)."""
        if not line_ids:
            return []
        stmt = select(Proposal).where(Proposal.need_line_id == _ids(line_ids), _open_proposals(now))
        return list((await self.session.execute(stmt)).scalars())

    async def lock_version(self, proposal_id: uuid.UUID, version: int) -> Proposal | None:
        """The proposal locked, if it is still at `version` (None, and nothing waited on but its writers' commit,
        when it changed)."""
        stmt = (
            select(Proposal)
            .where(Proposal.id == proposal_id, Proposal.version == version)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def current(self, proposal_id: uuid.UUID) -> Proposal | None:
        """The proposal as last committed (not locked)."""
        stmt = select(Proposal).where(Proposal.id == proposal_id).execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def lock_open(self, ids: Iterable[uuid.UUID], now: datetime) -> list[Proposal]:
        """These proposals locked, those still open (in one order: two runs never deadlock each other)."""
        wanted = sorted(set(ids))
        if not wanted:
            return []
        stmt = (
            select(Proposal)
            .where(Proposal.id == _ids(wanted))
            .order_by(Proposal.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return [
            p
            for p in (await self.session.execute(stmt)).scalars()
            if p.status == ProposalStatus.proposed and p.expires_at > now
        ]

    async def overheld(
        self, line_items: Iterable[str], lot_items: Iterable[str], now: datetime
    ) -> tuple[dict[uuid.UUID, int], dict[uuid.UUID, int]]:
        """Lines and lots whose open proposals hold more than they have now (the line's demand shrank or left,
        its item changed; the lot was taken, withdrawn, rejected or re-classified): their capacity, by id."""
        accepted = accepted_by_line()
        v = NeedLineView
        by_line = (
            select(Proposal.need_line_id, Proposal.item_code, func.sum(Proposal.quantity).label("held"))
            .where(_open_proposals(now), Proposal.item_code == _codes(sorted(set(line_items))))
            .group_by(Proposal.need_line_id, Proposal.item_code)
            .subquery()
        )
        line_cap = func.coalesce(
            case(
                (
                    and_(
                        v.need_status.in_(ACTIVE_NEED),
                        v.verification != Verdict.rejected,
                        v.item_code == by_line.c.item_code,
                    ),
                    v.quantity - func.coalesce(accepted.c.accepted, 0),
                ),
                else_=0,
            ),
            0,
        )
        lines = await self.session.execute(
            select(by_line.c.need_line_id, line_cap)
            .outerjoin(v, v.line_id == by_line.c.need_line_id)
            .outerjoin(accepted, accepted.c.need_line_id == by_line.c.need_line_id)
            .where(by_line.c.held > line_cap)
        )
        by_lot = (
            select(Proposal.lot_id, Proposal.lot_item_code, func.sum(Proposal.quantity).label("held"))
            .where(
                _open_proposals(now),
                Proposal.lot_id.is_not(None),
                Proposal.lot_item_code == _codes(sorted(set(lot_items))),
            )
            .group_by(Proposal.lot_id, Proposal.lot_item_code)
            .subquery()
        )
        pending, available = _lot_available()
        lot_cap = func.coalesce(
            case(
                (
                    and_(
                        LotView.offer_status == "open",
                        LotView.verification.in_(AVAILABLE_LOT),
                        LotView.item_code == by_lot.c.lot_item_code,
                    ),
                    available,
                ),
                else_=0,
            ),
            0,
        )
        lots = await self.session.execute(
            select(by_lot.c.lot_id, lot_cap)
            .outerjoin(LotView, LotView.lot_id == by_lot.c.lot_id)
            .outerjoin(pending, pending.c.lot_id == by_lot.c.lot_id)
            .where(by_lot.c.held > lot_cap)
        )
        return (
            {row[0]: max(0, int(row[1])) for row in lines.all()},
            {row[0]: max(0, int(row[1])) for row in lots.all()},
        )

    async def open_on(
        self, line_ids: Iterable[uuid.UUID], lot_ids: Iterable[uuid.UUID], now: datetime
    ) -> list[Proposal]:
        """Open proposals of these lines or lots, locked (in id order)."""
        lines, lots = list(line_ids), list(lot_ids)
        if not lines and not lots:
            return []
        stmt = (
            select(Proposal)
            .where(_open_proposals(now), (Proposal.need_line_id == _ids(lines)) | (Proposal.lot_id == _ids(lots)))
            .order_by(Proposal.id)
            .with_for_update()
        )
        return list((await self.session.execute(stmt)).scalars())

    async def open_on_restricted_lots(
        self, lot_items: Iterable[str], now: datetime
    ) -> list[tuple[Proposal, NeedLineView, dict[str, Any]]]:
        """Open proposals of lots of these items whose offers restrict where they go or what for, locked (in id
        order), with their line's view and the lot's restrictions."""
        rules = LotView.restrictions
        restricted = or_(*(func.jsonb_array_length(func.coalesce(rules[k], _EMPTY_LIST)) > 0 for k in _RULES))
        stmt = (
            select(Proposal, NeedLineView, rules)
            .join(LotView, LotView.lot_id == Proposal.lot_id)
            .join(NeedLineView, NeedLineView.line_id == Proposal.need_line_id)
            .where(_open_proposals(now), Proposal.lot_item_code == _codes(sorted(set(lot_items))), restricted)
            .order_by(Proposal.id)
            .with_for_update(of=Proposal)
        )
        return [(p, line, dict(r or {})) for p, line, r in (await self.session.execute(stmt)).all()]

    async def supersede(
        self, proposals: list[Proposal], run_id: uuid.UUID, now: datetime, *, reason: str | None = None
    ) -> list[Proposal]:
        for p in proposals:
            p.status, p.reason = ProposalStatus.cancelled, reason or f"superseded by run {run_id}"
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

    async def search(
        self,
        params: PageParams,
        *,
        status: ProposalStatus | None,
        need_id: uuid.UUID | None,
        offer_id: uuid.UUID | None,
        need_line_id: uuid.UUID | None,
        region_code: str | None,
        site_org: str | None = None,
    ) -> tuple[list[Proposal], str | None]:
        stmt = select(Proposal)
        if site_org is not None:  # proposals for the needs of this organisation's sites
            stmt = stmt.where(
                Proposal.need_line_id.in_(select(NeedLineView.line_id).where(NeedLineView.org == site_org))
            )
        if status:
            stmt = stmt.where(Proposal.status == status)
        if need_id:
            stmt = stmt.where(Proposal.need_id == need_id)
        if offer_id:
            stmt = stmt.where(Proposal.offer_id == offer_id)
        if need_line_id:
            stmt = stmt.where(Proposal.need_line_id == need_line_id)
        if region_code:
            stmt = stmt.where(Proposal.region_code.startswith(region_code, autoescape=True))
        return await paginate(self.session, stmt, Proposal.created_at, Proposal.id, params)

    async def due_to_expire(self, now: datetime, limit: int) -> list[Proposal]:
        stmt = (
            select(Proposal)
            .where(Proposal.status == ProposalStatus.proposed, Proposal.expires_at < now)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def auto_acceptable(self, run_id: uuid.UUID, threshold: float) -> list[uuid.UUID]:
        stmt = (
            select(Proposal.id)
            .where(Proposal.run_id == run_id, Proposal.status == ProposalStatus.proposed, Proposal.score >= threshold)
            .order_by(Proposal.score.desc())
        )
        return list((await self.session.execute(stmt)).scalars())

    async def mark_projected(self, proposal_id: uuid.UUID) -> bool:
        """The proposal's reservation is counted in lot_view now; False when there is no such proposal."""
        result = await self.session.execute(
            update(Proposal).where(Proposal.id == proposal_id).values(reservation_projected=True).returning(Proposal.id)
        )
        return result.first() is not None

    async def record_returns(self, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
        """Shipment lines' returned quantities, each kept from the newest shipment version seen; the proposals
        whose lines changed."""
        t = ShipmentReturn.__table__
        assert isinstance(t, Table)
        stmt = insert(t).values(rows)
        result = await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[t.c.shipment_line_id],
                set_={c: stmt.excluded[c] for c in ("proposal_id", "quantity_returned", "version")},
                where=t.c.version < stmt.excluded.version,
            ).returning(t.c.proposal_id)
        )
        return set(result.scalars())

    async def sum_returns(self, ids: list[uuid.UUID]) -> list[tuple[str, uuid.UUID, str, uuid.UUID | None]]:
        """Each accepted proposal's quantity_returned becomes the sum over its shipment lines (at most what was
        accepted); of those that changed, (item code, need line, lot item code, lot or None for a capacity). Locked
        first, summed after, in statements of their own: a concurrent handler's lines are then counted."""
        await self.session.execute(
            select(Proposal.id).where(Proposal.id.in_(ids)).order_by(Proposal.id).with_for_update()
        )
        t = ShipmentReturn.__table__
        returned = func.least(
            select(func.coalesce(func.sum(t.c.quantity_returned), 0))
            .where(t.c.proposal_id == Proposal.id)
            .scalar_subquery(),
            func.coalesce(Proposal.accepted_quantity, 0),
        )
        result = await self.session.execute(
            update(Proposal)
            .where(
                Proposal.id.in_(ids), Proposal.status == ProposalStatus.accepted, Proposal.quantity_returned != returned
            )
            .values(quantity_returned=returned)
            .returning(Proposal.item_code, Proposal.need_line_id, Proposal.lot_item_code, Proposal.lot_id)
        )
        return [(row[0], row[1], row[2], row[3]) for row in result.all()]

    async def decisions(self, proposal_id: uuid.UUID) -> list[Decision]:
        stmt = select(Decision).where(Decision.proposal_id == proposal_id).order_by(Decision.created_at, Decision.id)
        return list((await self.session.execute(stmt)).scalars())

    def record(self, decision: Decision) -> None:
        self.session.add(decision)


class RunRepository(RepositoryBase[AllocationRun]):
    model = AllocationRun

    async def search(self, params: PageParams) -> tuple[list[AllocationRun], str | None]:
        return await paginate(self.session, select(AllocationRun), AllocationRun.created_at, AllocationRun.id, params)
