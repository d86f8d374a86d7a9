"""Queries of the logistics service."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Select, and_, func, literal, or_, select, text, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import selectinload

from services.logistics.models import (
    AcceptedProposal,
    Feedback,
    LedgerEntry,
    LedgerKind,
    LedgerPosting,
    NeedView,
    OfferView,
    Procurement,
    ProcurementFunding,
    ProcurementStatus,
    ServiceDelivery,
    Shipment,
    ShipmentLine,
    SiteView,
    TrackEntry,
)
from shared.db import RepositoryBase
from shared.pagination import PageParams, paginate
from shared.vocabulary import NeedStatus, OfferStatus, ShipmentStatus


class ShipmentRepository(RepositoryBase[Shipment]):
    model = Shipment

    def _full(self) -> Select[Shipment]:
        return select(Shipment).options(selectinload(Shipment.lines), selectinload(Shipment.history))

    async def get_full(self, shipment_id: uuid.UUID, *, for_update: bool = False) -> Shipment | None:
        stmt = self._full().where(Shipment.id == shipment_id)
        if for_update:
            stmt = stmt.with_for_update(of=Shipment)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def open_auto(self, origin_key: str, site_id: uuid.UUID) -> Shipment | None:
        """The planned automatic shipment from this origin to this site that still takes lines."""
        stmt = (
            self._full()
            .where(
                Shipment.origin_key == origin_key,
                Shipment.destination_site_id == site_id,
                Shipment.status == ShipmentStatus.planned,
                Shipment.auto.is_(True),
            )
            .order_by(Shipment.created_at)
            .limit(1)
            .with_for_update(of=Shipment)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def lock_route(self, origin_key: str, site_id: uuid.UUID) -> None:
        """Serialise planners of one route, so two accepted lines never open two shipments for it."""
        await self.session.execute(
            select(func.pg_advisory_xact_lock(func.hashtextextended(f"shipment:{origin_key}:{site_id}", 0)))
        )

    async def search(
        self,
        params: PageParams,
        *,
        status: ShipmentStatus | None = None,
        destination_site_id: uuid.UUID | None = None,
        need_id: uuid.UUID | None = None,
        offer_id: uuid.UUID | None = None,
        proposal_id: uuid.UUID | None = None,
        region_code: str | None = None,
    ) -> tuple[list[Shipment], str | None]:
        """Shipments, newest first; `region_code` is a prefix of the destination's region, and a need, offer or
        proposal selects the shipments with a line of it."""
        stmt = self._full()
        if status is not None:
            stmt = stmt.where(Shipment.status == status)
        if destination_site_id is not None:
            stmt = stmt.where(Shipment.destination_site_id == destination_site_id)
        if region_code is not None:
            stmt = stmt.where(Shipment.region_code.startswith(region_code, autoescape=True))
        for column, value in (
            (ShipmentLine.need_id, need_id),
            (ShipmentLine.offer_id, offer_id),
            (ShipmentLine.proposal_id, proposal_id),
        ):
            if value is not None:
                stmt = stmt.where(
                    select(ShipmentLine.id).where(ShipmentLine.shipment_id == Shipment.id, column == value).exists()
                )
        return await paginate(self.session, stmt, Shipment.created_at, Shipment.id, params)

    async def feedback(self, shipment_id: uuid.UUID) -> Feedback | None:
        return await self.session.get(Feedback, shipment_id)

    def add_feedback(self, feedback: Feedback) -> None:
        self.session.add(feedback)

    async def feedback_for(self, shipment_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Feedback]:
        if not shipment_ids:
            return {}
        rows = await self.session.execute(select(Feedback).where(Feedback.shipment_id.in_(list(shipment_ids))))
        return {f.shipment_id: f for f in rows.scalars()}

    async def carrying(self, offer_ids: Sequence[uuid.UUID]) -> list[Shipment]:
        """Shipments with at least one line from these offers."""
        ids = select(ShipmentLine.shipment_id).where(ShipmentLine.offer_id.in_(list(offer_ids)))
        stmt = self._full().where(Shipment.id.in_(ids)).order_by(Shipment.created_at)
        return list((await self.session.execute(stmt)).scalars())

    async def claim_planned(self, claim_id: uuid.UUID) -> bool:
        """Whether the claim's shipment is planned already."""
        stmt = select(Shipment.id).where(Shipment.claim_id == claim_id)
        return (await self.session.execute(stmt)).first() is not None


class ProjectionRepository(RepositoryBase[SiteView]):
    model = SiteView

    async def upsert_site(self, values: dict[str, Any]) -> None:
        stmt = insert(SiteView).values(**values)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[SiteView.site_id],
                set_={k: stmt.excluded[k] for k in values if k != "site_id"},
                where=SiteView.version < stmt.excluded.version,
            )
        )

    async def upsert_need(self, values: dict[str, Any]) -> None:
        stmt = insert(NeedView).values(**values)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[NeedView.need_id],
                set_={k: stmt.excluded[k] for k in values if k != "need_id"},
                where=NeedView.version < stmt.excluded.version,
            )
        )

    async def upsert_offer(self, values: dict[str, Any]) -> None:
        # offer.progressed keeps the offer's version but carries newer lots: equal versions apply too.
        stmt = insert(OfferView).values(**values)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[OfferView.offer_id],
                set_={k: stmt.excluded[k] for k in values if k not in ("offer_id", "amount_spent")},
                where=OfferView.version <= stmt.excluded.version,
            )
        )

    async def sites(self, site_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, SiteView]:
        if not site_ids:
            return {}
        rows = await self.session.execute(select(SiteView).where(SiteView.site_id.in_(list(set(site_ids)))))
        return {s.site_id: s for s in rows.scalars()}

    async def need(self, need_id: uuid.UUID) -> NeedView | None:
        return await self.session.get(NeedView, need_id)

    async def mark_need_times(self, need_ids: Sequence[uuid.UUID], column: str, at: datetime) -> None:
        """The earliest time wins, whatever order the facts are learnt in."""
        if need_ids:
            col = getattr(NeedView, column)
            await self.session.execute(
                update(NeedView)
                .where(NeedView.need_id.in_(list(need_ids)), or_(col.is_(None), col > at))
                .values({column: at})
            )

    async def derive_need_times(self, need_id: uuid.UUID) -> None:
        """A need learnt after its proposals or receipts: its first matched and delivered times from them."""
        matched = (
            select(func.min(AcceptedProposal.accepted_at))
            .where(AcceptedProposal.need_id == NeedView.need_id)
            .scalar_subquery()
        )
        delivered = (
            select(func.min(Shipment.received_at))
            .join(ShipmentLine, ShipmentLine.shipment_id == Shipment.id)
            .where(ShipmentLine.need_id == NeedView.need_id, ShipmentLine.quantity_received > 0)
            .scalar_subquery()
        )
        first_matched = func.least(NeedView.first_matched_at, matched)
        first_delivered = func.least(NeedView.first_delivered_at, delivered)
        await self.session.execute(
            update(NeedView)
            .where(
                NeedView.need_id == need_id,
                or_(
                    NeedView.first_matched_at.is_distinct_from(first_matched),
                    NeedView.first_delivered_at.is_distinct_from(first_delivered),
                ),
            )
            .values(first_matched_at=first_matched, first_delivered_at=first_delivered)
        )

    async def offer(self, offer_id: uuid.UUID, *, for_update: bool = False) -> OfferView | None:
        if for_update:
            stmt = select(OfferView).where(OfferView.offer_id == offer_id).with_for_update()
            return (await self.session.execute(stmt)).scalar_one_or_none()
        return await self.session.get(OfferView, offer_id)

    async def largest_pledge_of_fund(self, fund_id: uuid.UUID) -> OfferView | None:
        stmt = (
            select(OfferView)
            .where(OfferView.fund_id == fund_id, OfferView.kind == "cash")
            .order_by(OfferView.amount.desc().nulls_last(), OfferView.offer_created_at)
            .limit(1)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def offer_by_ref(self, tracking_ref: str) -> OfferView | None:
        return (
            await self.session.execute(select(OfferView).where(OfferView.tracking_ref == tracking_ref))
        ).scalar_one_or_none()

    async def offers_of_procurements(self, procurement_ids: Sequence[uuid.UUID]) -> list[OfferView]:
        if not procurement_ids:
            return []
        stmt = select(OfferView).where(OfferView.procurement_id.in_(list(procurement_ids)))
        return list((await self.session.execute(stmt)).scalars())

    async def spend(self, offer_id: uuid.UUID, amount: int) -> bool:
        """Take `amount` from an open cash pledge, only if it still holds that much (one conditional UPDATE,
        so concurrent orders can never overspend it)."""
        result = await self.session.execute(
            update(OfferView)
            .where(
                OfferView.offer_id == offer_id,
                OfferView.kind == "cash",
                OfferView.status == OfferStatus.open,
                OfferView.amount - OfferView.amount_spent >= amount,
            )
            .values(amount_spent=OfferView.amount_spent + amount)
            .returning(OfferView.offer_id)
        )
        return result.first() is not None

    async def refund(self, offer_id: uuid.UUID, amount: int) -> None:
        await self.session.execute(
            update(OfferView)
            .where(OfferView.offer_id == offer_id)
            .values(amount_spent=func.greatest(OfferView.amount_spent - amount, 0))
        )

    async def add_track(self, values: dict[str, Any]) -> None:
        await self.session.execute(insert(TrackEntry).values(**values).on_conflict_do_nothing())

    async def track_entries(self, offer_ids: Sequence[uuid.UUID]) -> list[TrackEntry]:
        stmt = select(TrackEntry).where(TrackEntry.offer_id.in_(list(offer_ids))).order_by(TrackEntry.at)
        return list((await self.session.execute(stmt)).scalars())

    async def add_accepted(self, values: dict[str, Any]) -> AcceptedProposal | None:
        """Record an accepted proposal; None when it was recorded before (a replayed event)."""
        stmt = insert(AcceptedProposal).values(**values).on_conflict_do_nothing().returning(AcceptedProposal)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def accepted(self, proposal_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, AcceptedProposal]:
        stmt = (
            select(AcceptedProposal)
            .where(AcceptedProposal.proposal_id.in_(list(proposal_ids)))
            .order_by(AcceptedProposal.proposal_id)
            .with_for_update()
        )
        return {p.proposal_id: p for p in (await self.session.execute(stmt)).scalars()}

    async def upsert_service_delivery(self, values: dict[str, Any]) -> None:
        """What a partner reported on an assignment; an older assignment version never overwrites a newer one."""
        stmt = insert(ServiceDelivery).values(**values)
        fields = [k for k in values if k != "assignment_id"]
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[ServiceDelivery.assignment_id],
                set_={k: stmt.excluded[k] for k in fields},
                where=ServiceDelivery.version < stmt.excluded.version,
            )
        )


class ProcurementRepository(RepositoryBase[Procurement]):
    model = Procurement

    async def get_full(self, procurement_id: uuid.UUID, *, for_update: bool = False) -> Procurement | None:
        stmt = select(Procurement).options(selectinload(Procurement.funding)).where(Procurement.id == procurement_id)
        if for_update:
            stmt = stmt.with_for_update(of=Procurement)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def search(
        self, params: PageParams, *, status: ProcurementStatus | None = None, offer_id: uuid.UUID | None = None
    ) -> tuple[list[Procurement], str | None]:
        """Procurement orders, newest first; `offer_id` selects the orders paid (partly) from that pledge."""
        stmt = select(Procurement).options(selectinload(Procurement.funding))
        if status is not None:
            stmt = stmt.where(Procurement.status == status)
        if offer_id is not None:
            stmt = stmt.where(
                select(ProcurementFunding.offer_id)
                .where(ProcurementFunding.procurement_id == Procurement.id, ProcurementFunding.offer_id == offer_id)
                .exists()
            )
        return await paginate(self.session, stmt, Procurement.created_at, Procurement.id, params)

    async def funded_by(self, offer_ids: Sequence[uuid.UUID]) -> list[tuple[Procurement, int]]:
        """Procurement orders paid (partly) from these pledges (with all their funding), with the amount each
        pledge gave."""
        stmt = (
            select(Procurement, ProcurementFunding.amount)
            .join(ProcurementFunding, ProcurementFunding.procurement_id == Procurement.id)
            .options(selectinload(Procurement.funding))
            .where(ProcurementFunding.offer_id.in_(list(offer_ids)))
            .order_by(Procurement.created_at)
        )
        return [(p, int(a)) for p, a in (await self.session.execute(stmt)).all()]


class LedgerRepository(RepositoryBase[LedgerEntry]):
    model = LedgerEntry

    async def book(
        self,
        *,
        ref: str,
        kind: LedgerKind,
        amount: int,
        currency: str,
        offer_id: uuid.UUID | None = None,
        procurement_id: uuid.UUID | None = None,
        shipment_id: uuid.UUID | None = None,
        region_code: str | None = None,
        item_code: str | None = None,
        quantity: int | None = None,
        memo: str | None = None,
        created_at: datetime | None = None,
        postings: Sequence[dict[str, Any]] = (),
    ) -> bool:
        """Book an entry once, with its double-entry `postings` (account, amount, currency, item_code, quantity,
        offer_id, fund_id): its `ref` names the fact, so a replayed event books nothing (False). Without
        `created_at` the entry is dated now."""
        values: dict[str, Any] = {
            "id": uuid.uuid4(),
            "ref": ref,
            "kind": kind,
            "amount": amount,
            "currency": currency,
            "offer_id": offer_id,
            "procurement_id": procurement_id,
            "shipment_id": shipment_id,
            "region_code": region_code,
            "item_code": item_code,
            "quantity": quantity,
            "memo": memo,
        }
        if created_at is not None:
            values["created_at"] = created_at
        stmt = insert(LedgerEntry).values(values).on_conflict_do_nothing(index_elements=["ref"])
        booked = (await self.session.execute(stmt.returning(LedgerEntry.id))).first() is not None
        if booked and postings:
            rows = [{"id": uuid.uuid4(), "entry_id": values["id"], "position": i, **p} for i, p in enumerate(postings)]
            await self.session.execute(insert(LedgerPosting).values(rows))
        return booked

    async def postings_of(self, entry_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[LedgerPosting]]:
        """The postings of these entries, in their order."""
        out: dict[uuid.UUID, list[LedgerPosting]] = {e: [] for e in entry_ids}
        if entry_ids:
            stmt = (
                select(LedgerPosting)
                .where(LedgerPosting.entry_id.in_(list(entry_ids)))
                .order_by(LedgerPosting.entry_id, LedgerPosting.position)
            )
            for posting in (await self.session.execute(stmt)).scalars():
                out[posting.entry_id].append(posting)
        return out

    async def search(
        self,
        params: PageParams,
        *,
        kind: LedgerKind | None = None,
        offer_id: uuid.UUID | None = None,
        procurement_id: uuid.UUID | None = None,
        shipment_id: uuid.UUID | None = None,
        region_code: str | None = None,
        fund_id: uuid.UUID | None = None,
    ) -> tuple[list[LedgerEntry], str | None]:
        """Ledger entries, newest first; `region_code` is a region prefix, `fund_id` selects the transactions
        with a posting of that fund."""
        stmt = select(LedgerEntry)
        if fund_id is not None:
            stmt = stmt.where(
                select(LedgerPosting.id)
                .where(LedgerPosting.entry_id == LedgerEntry.id, LedgerPosting.fund_id == fund_id)
                .exists()
            )
        for column, value in (
            (LedgerEntry.kind, kind),
            (LedgerEntry.offer_id, offer_id),
            (LedgerEntry.procurement_id, procurement_id),
            (LedgerEntry.shipment_id, shipment_id),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        if region_code is not None:
            stmt = stmt.where(LedgerEntry.region_code.startswith(region_code, autoescape=True))
        return await paginate(self.session, stmt, LedgerEntry.created_at, LedgerEntry.id, params)


# --- the impact report --------------------------------------------------------------------------------------


def _window(column: Any, since: datetime | None, until: datetime | None) -> list[Any]:
    out = []
    if since is not None:
        out.append(column >= since)
    if until is not None:
        out.append(column < until)
    return out


class ReportRepository(RepositoryBase[LedgerEntry]):
    model = LedgerEntry

    async def ledger_totals(self, currency: str, since: datetime | None, until: datetime | None) -> dict[str, int]:
        stmt = (
            select(LedgerEntry.kind, func.sum(LedgerEntry.amount))
            .where(LedgerEntry.currency == currency, *_window(LedgerEntry.created_at, since, until))
            .group_by(LedgerEntry.kind)
        )
        return {k: int(v) for k, v in (await self.session.execute(stmt)).all()}

    async def ledger_by_region(
        self, digits: int, prefix: str | None, currency: str, since: datetime | None, until: datetime | None
    ) -> list[tuple[str, str, int]]:
        region = func.substr(LedgerEntry.region_code, 1, digits)
        conditions = [
            LedgerEntry.region_code.is_not(None),
            LedgerEntry.currency == currency,
            LedgerEntry.kind.in_((LedgerKind.spent, LedgerKind.refunded, LedgerKind.in_kind_delivered)),
            *_window(LedgerEntry.created_at, since, until),
        ]
        if prefix:
            conditions.append(LedgerEntry.region_code.startswith(prefix, autoescape=True))
        stmt = (
            select(region, LedgerEntry.kind, func.sum(LedgerEntry.amount))
            .where(and_(*conditions))
            .group_by(region, LedgerEntry.kind)
        )
        return [(r, k, int(v)) for r, k, v in (await self.session.execute(stmt)).all()]

    async def services_delivered(
        self, prefix: str | None, since: datetime | None, until: datetime | None
    ) -> dict[str, int]:
        """Assignments reported done in the window, the units they delivered and the people they served."""
        d = ServiceDelivery
        conditions = _window(d.reported_at, since, until)
        if prefix:
            conditions.append(d.region_code.startswith(prefix, autoescape=True))
        stmt = select(
            func.count(d.assignment_id),
            func.coalesce(func.sum(d.units_delivered), 0),
            func.coalesce(func.sum(d.people_served), 0),
        ).where(and_(true(), *conditions))
        done, units, people = (await self.session.execute(stmt)).one()
        return {
            "assignments_done": int(done or 0),
            "units_delivered": int(units or 0),
            "people_served": int(people or 0),
        }

    async def deliveries_by_region(
        self, digits: int, prefix: str | None, since: datetime | None, until: datetime | None
    ) -> list[tuple[str, int, int]]:
        """(region, sites that confirmed a receipt, beneficiaries they reported) for receipts in the window."""
        region = func.substr(Shipment.region_code, 1, digits)
        conditions = [
            Shipment.status.in_((ShipmentStatus.received, ShipmentStatus.received_with_problem)),
            *_window(Shipment.received_at, since, until),
        ]
        if prefix:
            conditions.append(Shipment.region_code.startswith(prefix, autoescape=True))
        stmt = (
            select(
                region,
                func.count(func.distinct(Shipment.destination_site_id)),
                func.coalesce(func.sum(Feedback.beneficiaries_served), 0),
            )
            .outerjoin(Feedback, Feedback.shipment_id == Shipment.id)
            .where(and_(*conditions))
            .group_by(region)
        )
        return [(r, int(s), int(b)) for r, s, b in (await self.session.execute(stmt)).all()]

    async def served_by_group(
        self, prefix: str | None, since: datetime | None, until: datetime | None
    ) -> dict[str, int]:
        """People served per beneficiary group, summed over the feedback on receipts in the window."""
        groups = func.jsonb_each_text(Feedback.served_by_group).table_valued("key", "value").render_derived()
        conditions = [
            Shipment.status.in_((ShipmentStatus.received, ShipmentStatus.received_with_problem)),
            *_window(Shipment.received_at, since, until),
        ]
        if prefix:
            conditions.append(Shipment.region_code.startswith(prefix, autoescape=True))
        stmt = (
            select(groups.c.key, func.sum(groups.c.value.cast(BigInteger)))
            .select_from(Feedback)
            .join(Shipment, Shipment.id == Feedback.shipment_id)
            .join(groups, literal(True))
            .where(and_(*conditions))
            .group_by(groups.c.key)
            .order_by(groups.c.key)
        )
        return {k: int(n) for k, n in (await self.session.execute(stmt)).all()}

    async def needs_by_region(
        self, digits: int | None, prefix: str | None, since: datetime | None, until: datetime | None
    ) -> list[dict[str, Any]]:
        """Needs posted in the window: count, needed and delivered quantity, time to match and to delivery
        (hours, p50 and p90), by region (or all together when `digits` is None)."""
        sql = f"""
            WITH n AS (
                SELECT {"substr(region_code, 1, :digits)" if digits else "''"} AS region, need_id, lines,
                       EXTRACT(EPOCH FROM first_matched_at - need_created_at) / 3600.0 AS ttm,
                       EXTRACT(EPOCH FROM first_delivered_at - need_created_at) / 3600.0 AS ttd
                  FROM logistics.need_view
                 WHERE status <> :cancelled
                   AND (CAST(:prefix AS text) IS NULL OR region_code LIKE :prefix || '%')
                   AND (CAST(:since AS timestamptz) IS NULL OR need_created_at >= :since)
                   AND (CAST(:until AS timestamptz) IS NULL OR need_created_at < :until)
            ), q AS (
                SELECT n.region,
                       sum((l->>'quantity')::bigint) AS needed,
                       sum(LEAST((l->>'quantity_delivered')::bigint, (l->>'quantity')::bigint)) AS delivered
                  FROM n, jsonb_array_elements(n.lines) AS l
                 GROUP BY n.region
            )
            SELECT n.region, count(*) AS needs, COALESCE(max(q.needed), 0), COALESCE(max(q.delivered), 0),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY n.ttm),
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY n.ttm),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY n.ttd),
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY n.ttd)
              FROM n LEFT JOIN q ON q.region = n.region
             GROUP BY n.region
        """
        params: dict[str, Any] = {
            "cancelled": NeedStatus.cancelled.value,
            "prefix": prefix,
            "since": since,
            "until": until,
        }
        if digits:
            params["digits"] = digits
        rows = (await self.session.execute(text(sql), params)).all()
        keys = ("region", "needs", "needed", "delivered", "ttm50", "ttm90", "ttd50", "ttd90")
        return [dict(zip(keys, row, strict=True)) for row in rows]
