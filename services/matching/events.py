"""Event types the matching service publishes, and its projection of the needs and supply streams."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Table, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.matching.models import DirtyScope, LotView, NeedLineView, Proposal, ShipmentReturn
from services.matching.repository import ProjectionRepository
from shared.events import CloudEvent, EventType, publish, register_event_type
from shared.service import Subscription


class RunData(BaseModel):
    id: uuid.UUID
    trigger: str
    scope: dict[str, Any]
    policy_version: int
    objective: float
    counts: dict[str, int]


class ProposalData(BaseModel):
    """A proposal after a decision; `quantity` is what the decision moved (accepted or released)."""

    id: uuid.UUID
    run_id: uuid.UUID
    need_id: uuid.UUID
    need_line_id: uuid.UUID
    lot_id: uuid.UUID
    offer_id: uuid.UUID
    item_code: str
    lot_item_code: str
    region_code: str
    quantity: int
    score: float
    status: str
    reservation_id: uuid.UUID | None
    reason: str | None
    decided_by: str | None
    auto: bool
    # Added for logistics (absent in older events): the destination site, the owners and the lot's location.
    site_id: uuid.UUID | None = None
    need_org: str | None = None
    offer_org: str | None = None
    origin: dict[str, Any] | None = None
    decided_at: datetime | None = None
    # The proposal's version after the decision (added later; absent in older events): orders its events.
    version: int | None = None


class PolicyData(BaseModel):
    version: int
    body: dict[str, Any]


RUN_COMPLETED = register_event_type(
    "reliefhub.matching.run.completed", "An allocation run finished and stored its proposals.", RunData
)
PROPOSAL_ACCEPTED = register_event_type(
    "reliefhub.matching.proposal.accepted",
    "A proposal was accepted (by a coordinator or the auto-accept policy) and its quantity reserved in supply.",
    ProposalData,
)
PROPOSAL_REJECTED = register_event_type(
    "reliefhub.matching.proposal.rejected", "A coordinator rejected a proposal (reason given).", ProposalData
)
PROPOSAL_EXPIRED = register_event_type(
    "reliefhub.matching.proposal.expired", "A proposal was not decided in time.", ProposalData
)
PROPOSAL_CANCELLED = register_event_type(
    "reliefhub.matching.proposal.cancelled",
    "A proposal was withdrawn: superseded by a newer run, or its lot was taken meanwhile.",
    ProposalData,
)
POLICY_UPDATED = register_event_type(
    "reliefhub.matching.policy.updated", "The scoring policy got a new version.", PolicyData
)

# The actor of what matching decides by itself (auto-accept, expiry, superseding, continuous runs).
SYSTEM = "matching"


async def publish_decision(session: AsyncSession, type_: EventType, p: Proposal, quantity: int) -> None:
    """A decision on a proposal, with where the goods go and come from, so that logistics can plan a shipment
    without asking anyone."""
    views = ProjectionRepository(session)
    line, lot = await views.line(p.need_line_id), await views.lot(p.lot_id)
    await publish(
        session,
        type_,
        ProposalData(
            id=p.id,
            run_id=p.run_id,
            need_id=p.need_id,
            need_line_id=p.need_line_id,
            lot_id=p.lot_id,
            offer_id=p.offer_id,
            item_code=p.item_code,
            lot_item_code=p.lot_item_code,
            region_code=p.region_code,
            quantity=quantity,
            score=p.score,
            status=p.status,
            reservation_id=p.reservation_id,
            reason=p.reason,
            decided_by=p.decided_by,
            auto=p.auto,
            site_id=line.site_id if line else None,
            need_org=line.org if line else None,
            offer_org=lot.org if lot else None,
            origin=(
                {"region_code": lot.region_code, "lat": lot.lat, "lon": lot.lon}
                if lot and (lot.region_code or lot.lat is not None)
                else None
            ),
            decided_at=p.decided_at,
            version=p.version,
        ),
        subject=str(p.id),
    )


# --- projection ------------------------------------------------------------------------------------------

ACTIVE_NEED = ("open", "matched", "in_transit")


async def mark_dirty(session: AsyncSession, item_codes: set[str]) -> None:
    """Queue the items for a debounced continuous run."""
    if item_codes:
        stmt = insert(DirtyScope).values([{"item_code": c} for c in sorted(item_codes)]).on_conflict_do_nothing()
        await session.execute(stmt)


def _ts(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


async def on_need_event(session: AsyncSession, event: CloudEvent) -> None:
    """needs.events → need_line_view. Each line row keeps the need version it came from, so a stale or
    replayed event never overwrites a newer one."""
    if not event.type.startswith("reliefhub.needs.need."):
        return
    d = event.data
    version = int(d["version"])
    # Two versions of one need handled at once (two consumers of the group) take turns: otherwise the older
    # could re-insert a line the newer one is deleting.
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(f"need-lines:{d['id']}", 0))))
    # A stale event (redelivered after a newer one) would re-insert lines the newer version dropped.
    newest = await session.scalar(
        select(func.max(NeedLineView.need_version)).where(NeedLineView.need_id == uuid.UUID(d["id"]))
    )
    if newest is not None and newest > version:
        return
    t = NeedLineView.__table__
    assert isinstance(t, Table)
    rows = [
        {
            "line_id": uuid.UUID(line["id"]),
            "need_id": uuid.UUID(d["id"]),
            "need_version": version,
            "site_id": uuid.UUID(d["site_id"]),
            "org": d["org"],
            "site_kind": d["site_kind"],
            "region_code": d["region_code"],
            "lat": d.get("lat"),
            "lon": d.get("lon"),
            "item_code": line["item_code"],
            "quantity": int(line["quantity"]),
            "quantity_delivered": int(line.get("quantity_delivered") or 0),
            "urgency": d["urgency"],
            "needed_by": _ts(d.get("needed_by")),
            "need_status": d["status"],
            "verification": d["verification"],
        }
        for line in d["lines"]
    ]
    if rows:
        stmt = insert(t).values(rows)
        updatable = [c for c in rows[0] if c not in ("line_id",)]
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[t.c.line_id],
                set_={**{c: stmt.excluded[c] for c in updatable}, "updated_at": text("now()")},
                where=t.c.need_version < stmt.excluded.need_version,
            )
        )
    # Lines the need no longer has (replaced by an update) leave the projection.
    await session.execute(
        delete(NeedLineView).where(
            NeedLineView.need_id == uuid.UUID(d["id"]),
            NeedLineView.need_version < version,
            NeedLineView.line_id.notin_([r["line_id"] for r in rows]),
        )
    )
    await mark_dirty(session, {r["item_code"] for r in rows})


_LOT_UPSERT = text(
    """
    INSERT INTO matching.lot_view AS v (lot_id, offer_id, lot_version, offer_version, org, item_code, quantity,
        quantity_reserved, lat, lon, region_code, available_from, expires_at, verification, verification_version,
        offer_status, restrictions, updated_at)
    VALUES (:lot_id, :offer_id, :lot_version, :offer_version, :org, :item_code, :quantity, :quantity_reserved,
        :lat, :lon, :region_code, :available_from, :expires_at, :verification, :lot_version, :offer_status,
        CAST(:restrictions AS jsonb), now())
    ON CONFLICT (lot_id) DO UPDATE SET
        offer_status = CASE WHEN excluded.offer_version > v.offer_version THEN excluded.offer_status
                            ELSE v.offer_status END,
        restrictions = CASE WHEN excluded.offer_version > v.offer_version THEN excluded.restrictions
                            ELSE v.restrictions END,
        offer_version = GREATEST(v.offer_version, excluded.offer_version),
        verification = CASE WHEN excluded.lot_version > v.verification_version THEN excluded.verification
                            ELSE v.verification END,
        verification_version = GREATEST(v.verification_version, excluded.lot_version),
        quantity_reserved = CASE WHEN excluded.lot_version > v.lot_version THEN excluded.quantity_reserved
                                 ELSE v.quantity_reserved END,
        lot_version = GREATEST(v.lot_version, excluded.lot_version),
        updated_at = now()
    """
)


class LotNotProjectedYet(Exception):
    """An event about a lot whose offer has not been seen yet: retried after redelivery."""


async def on_supply_event(session: AsyncSession, event: CloudEvent) -> None:
    """supply.events → lot_view, guarded by the offer's and the lot's versions."""
    d = event.data
    if event.type.startswith("reliefhub.supply.offer."):
        for lot in d["lots"]:
            await session.execute(
                _LOT_UPSERT,
                {
                    "lot_id": uuid.UUID(lot["id"]),
                    "offer_id": uuid.UUID(d["id"]),
                    "lot_version": int(lot["version"]),
                    "offer_version": int(d["version"]),
                    "org": d["org"],
                    "item_code": lot["item_code"],
                    "quantity": int(lot["quantity"]),
                    "quantity_reserved": int(lot["quantity_reserved"]),
                    "lat": lot.get("lat"),
                    "lon": lot.get("lon"),
                    "region_code": lot.get("region_code"),
                    "available_from": _ts(lot.get("available_from")),
                    "expires_at": _ts(lot.get("expires_at")),
                    "verification": lot["verification"],
                    "offer_status": d["status"],
                    "restrictions": json.dumps(d.get("restrictions") or {}),
                },
            )
        await mark_dirty(session, {lot["item_code"] for lot in d["lots"]})
    elif event.type == "reliefhub.supply.lot.verified":
        for lot in d["lots"]:
            await _update_lot(
                session, uuid.UUID(lot["id"]), int(lot["version"]), int(lot["quantity_reserved"]), lot["verification"]
            )
        await mark_dirty(session, {lot["item_code"] for lot in d["lots"]})
    elif event.type.startswith("reliefhub.supply.reservation."):
        if event.type == "reliefhub.supply.reservation.created" and not await _mark_projected(session, d["reference"]):
            # Someone reserved outside matching: open proposals on that lot may no longer fit.
            await mark_dirty(session, {d["item_code"]})
        if d.get("lot_version") is None:
            return
        await _update_lot(session, uuid.UUID(d["lot_id"]), int(d["lot_version"]), int(d["lot_quantity_reserved"]))
        if event.type != "reliefhub.supply.reservation.created":
            await mark_dirty(session, {d["item_code"]})


async def _mark_projected(session: AsyncSession, reference: str) -> bool:
    """A reservation made for one of our proposals is now counted in lot_view. False when it is not ours."""
    try:
        proposal_id = uuid.UUID(reference)
    except ValueError:
        return False
    result = await session.execute(
        update(Proposal).where(Proposal.id == proposal_id).values(reservation_projected=True).returning(Proposal.id)
    )
    return result.first() is not None


async def _update_lot(
    session: AsyncSession, lot_id: uuid.UUID, lot_version: int, quantity_reserved: int, verification: str | None = None
) -> None:
    """Each field from the newest lot version that carries it."""
    exists = await session.get(LotView, lot_id)
    if exists is None:
        raise LotNotProjectedYet(f"lot {lot_id} not projected yet")
    if exists.lot_version < lot_version:
        exists.lot_version, exists.quantity_reserved = lot_version, quantity_reserved
    if verification is not None and exists.verification_version < lot_version:
        exists.verification, exists.verification_version = verification, lot_version
    await session.flush()


async def on_logistics_event(session: AsyncSession, event: CloudEvent) -> None:
    """logistics.events → what a shipment gave back (short, not received, cancelled) leaves its proposal's
    accepted quantity, so the need line is open for it again and the next run sees it. The newest version seen
    of each shipment line is kept, and a proposal's quantity_returned is the sum over its lines."""
    if not event.type.startswith("reliefhub.logistics.shipment."):
        return
    d = event.data
    rows = [
        {
            "shipment_line_id": uuid.UUID(line["id"]),
            "proposal_id": uuid.UUID(line["proposal_id"]),
            "quantity_returned": int(line.get("quantity_returned") or 0),
            "version": int(d["version"]),
        }
        for line in d["lines"]
        if line.get("proposal_id")
    ]
    if not rows:
        return
    t = ShipmentReturn.__table__
    assert isinstance(t, Table)
    stmt = insert(t).values(rows)
    changed = set(
        (
            await session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[t.c.shipment_line_id],
                    set_={c: stmt.excluded[c] for c in ("proposal_id", "quantity_returned", "version")},
                    where=t.c.version < stmt.excluded.version,
                ).returning(t.c.proposal_id)
            )
        ).scalars()
    )
    if not changed:
        return
    ids = sorted(changed)
    # Locked first, summed after, in statements of their own: a concurrent handler's lines are then counted.
    await session.execute(select(Proposal.id).where(Proposal.id.in_(ids)).order_by(Proposal.id).with_for_update())
    returned = func.least(
        select(func.coalesce(func.sum(t.c.quantity_returned), 0))
        .where(t.c.proposal_id == Proposal.id)
        .scalar_subquery(),
        func.coalesce(Proposal.accepted_quantity, 0),
    )
    result = await session.execute(
        update(Proposal)
        .where(Proposal.id.in_(ids), Proposal.status == "accepted", Proposal.quantity_returned != returned)
        .values(quantity_returned=returned)
        .returning(Proposal.item_code)
    )
    await mark_dirty(session, set(result.scalars()))


SUBSCRIPTIONS = [
    Subscription(stream="needs.events", group="matching-projection", handler=on_need_event),
    Subscription(stream="supply.events", group="matching-projection", handler=on_supply_event),
    Subscription(stream="logistics.events", group="matching-returns", handler=on_logistics_event),
]
