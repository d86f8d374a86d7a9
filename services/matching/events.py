"""Event types the matching service publishes, the event of a decision, and its projection of the needs,
supply and logistics streams."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.matching import bulk
from services.matching.models import Proposal, catalog
from services.matching.repository import CapacityRepository, ProjectionRepository, ProposalRepository
from shared.catalog import get_catalog
from shared.catalog.follow import CATALOG_TYPES, catalog_handler
from shared.events import CloudEvent, EventType, publish, register_event_type
from shared.events.consumer import in_sequence
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
    # Goods come from a lot of an offer; a service from a partner's capacity (then lot_id and offer_id are none,
    # nothing is reserved in supply and logistics plans no shipment).
    lot_id: uuid.UUID | None
    offer_id: uuid.UUID | None
    capacity_id: uuid.UUID | None = None
    capacity_org: str | None = None
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
    # What physically moves (added later; absent in older events, where it equals `quantity`): `quantity` of
    # the line's item in `unit` is filled by `lot_quantity` of the lot's item in `lot_unit` (a converted
    # substitute: 2 barrels of 18.9 L by 8 bottles of 5 L).
    lot_quantity: int | None = None
    unit: str | None = None
    lot_unit: str | None = None
    # Of the accepted quantity, what shipments gave back before the decision (added later; absent in older
    # events): a declined proposal's event releases `quantity`, the rest came back through its shipments.
    quantity_returned: int | None = None


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
PROPOSAL_DECLINED = register_event_type(
    "reliefhub.matching.proposal.declined",
    "The need's site declined an accepted proposal before pick-up (reason given): its reservation was released, "
    "its lines left their planned shipments, and the line is matched again without that lot. (Declining an open "
    "proposal is published as rejected.)",
    ProposalData,
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


def lot_units(proposal: Proposal, amount: int) -> int:
    """Lot base units to reserve for `amount` credited to the line: the proposed lot quantity, or its share
    (rounded up, so that the line is never given less than it is credited)."""
    given = proposal.lot_quantity if proposal.lot_quantity is not None else proposal.quantity
    if amount == proposal.quantity or proposal.quantity == 0:
        return given if amount == proposal.quantity else amount
    return -(-amount * given // proposal.quantity)


def _base_unit(code: str) -> str | None:
    item = get_catalog().get(code)
    return item.base_unit if item else None


# The actor of what matching decides by itself (auto-accept, expiry, superseding, continuous runs).
SYSTEM = "matching"


async def publish_decision(session: AsyncSession, type_: EventType, p: Proposal, quantity: int) -> None:
    """A decision on a proposal, with where the goods go and come from, so that logistics can plan a shipment
    without asking anyone."""
    views = ProjectionRepository(session)
    line = await views.line(p.need_line_id)
    lot = await views.lot(p.lot_id) if p.lot_id is not None else None
    capacity = await CapacityRepository(session).get(p.capacity_id) if p.capacity_id is not None else None
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
            capacity_id=p.capacity_id,
            capacity_org=capacity.org if capacity else None,
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
            lot_quantity=lot_units(p, quantity),
            unit=_base_unit(p.item_code),
            lot_unit=_base_unit(p.lot_item_code),
            quantity_returned=p.quantity_returned,
        ),
        subject=str(p.id),
    )


# --- projection ------------------------------------------------------------------------------------------


def _ts(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _asked_of_matching(line: dict[str, Any]) -> int:
    """What of a need line matching may cover: not what partners' confirmed claims cover, nor what arrived
    outside matching (a partner's claim, once delivered, counts as delivered and no longer as claimed). What
    matching's own accepted proposals cover (matched, and delivered up to that) it subtracts itself."""
    delivered, matched = int(line.get("quantity_delivered") or 0), int(line.get("quantity_matched") or 0)
    outside = max(delivered - matched, 0)
    return max(int(line["quantity"]) - int(line.get("quantity_claimed") or 0) - outside, 0)


def _need_lines(d: dict[str, Any]) -> list[dict[str, Any]]:
    """The need_line_view rows of one need version."""
    return [
        {
            "line_id": uuid.UUID(line["id"]),
            "need_id": uuid.UUID(d["id"]),
            "need_version": int(d["version"]),
            "site_id": uuid.UUID(d["site_id"]),
            "org": d["org"],
            "site_kind": d["site_kind"],
            "region_code": d["region_code"],
            "lat": d.get("lat"),
            "lon": d.get("lon"),
            "item_code": line["item_code"],
            "quantity": _asked_of_matching(line),
            "quantity_delivered": int(line.get("quantity_delivered") or 0),
            "urgency": d["urgency"],
            "needed_by": _ts(d.get("needed_by")),
            "deadline": line.get("deadline") or "hard",
            "need_status": d["status"],
            "verification": d["verification"],
            "substitution_override": bool(line.get("substitution_override")),
            # Added later to need events (absent in older ones: the need names no group).
            "beneficiary_groups": dict(d.get("beneficiary_groups") or {}),
        }
        for line in d["lines"]
        # A line waiting for its item to enter the catalog is not matched (it has no item code yet), nor one
        # cancelled because that item was refused.
        if line.get("status", "open") == "open"
    ]


async def on_need_event(session: AsyncSession, event: CloudEvent) -> None:
    """needs.events → need_line_view. Each line row keeps the need version it came from, so a stale or
    replayed event never overwrites a newer one."""
    if not event.type.startswith("reliefhub.needs.need."):
        return
    d = event.data
    need_id, version = uuid.UUID(d["id"]), int(d["version"])
    repo = ProjectionRepository(session)
    # Two versions of one need handled at once (two consumers of the group) take turns: otherwise the older
    # could re-insert a line the newer one is deleting.
    await repo.lock_need(need_id)
    # A stale event (redelivered after a newer one) would re-insert lines the newer version dropped.
    newest = await repo.newest_need_version(need_id)
    if newest is not None and newest > version:
        return
    rows = _need_lines(d)
    await repo.upsert_lines(rows)
    # Lines the need no longer has (replaced by an update) leave the projection.
    await repo.drop_older_lines(need_id, version, keep=[r["line_id"] for r in rows])
    await repo.mark_changed(lines=[(r["item_code"], r["line_id"]) for r in rows])


async def on_need_events(session: AsyncSession, events: list[CloudEvent]) -> None:
    """The batch form of `on_need_event`, with the same end state: per need only its newest version in the
    batch is applied (an older one's lines would be replaced or dropped by it), with one lock statement (in
    need order, so two consumers never wait on each other in a cycle), one upsert and one delete for all."""
    newest: dict[uuid.UUID, dict[str, Any]] = {}
    items: dict[uuid.UUID, set[str]] = {}
    for event in events:
        if not event.type.startswith("reliefhub.needs.need."):
            continue
        d = event.data
        need_id = uuid.UUID(d["id"])
        items.setdefault(need_id, set()).update(line["item_code"] for line in d["lines"] if line.get("item_code"))
        if need_id not in newest or int(d["version"]) >= int(newest[need_id]["version"]):
            newest[need_id] = d
    if not newest:
        return
    repo = ProjectionRepository(session)
    await bulk.lock_needs(session, sorted(newest))
    stored = await bulk.newest_need_versions(session, list(newest))
    fresh = [d for need_id, d in newest.items() if stored.get(need_id, 0) <= int(d["version"])]
    rows = [row for d in fresh for row in _need_lines(d)]
    await repo.upsert_lines(rows)
    await bulk.drop_older_lines_of(
        session, {uuid.UUID(d["id"]): int(d["version"]) for d in fresh}, [r["line_id"] for r in rows]
    )
    await repo.mark_changed(lines=[(r["item_code"], r["line_id"]) for r in rows])
    # Items the batch's lines had in versions not projected: no line of theirs to name, their groups re-run.
    await repo.mark_dirty({code for d in fresh for code in items[uuid.UUID(d["id"])]} - {r["item_code"] for r in rows})


class LotNotProjectedYet(Exception):
    """An event about a lot whose offer has not been seen yet: retried after redelivery."""


def _offer_lots(d: dict[str, Any]) -> list[dict[str, Any]]:
    """The lot_view rows of one offer version."""
    return [
        {
            "lot_id": uuid.UUID(lot["id"]),
            "offer_id": uuid.UUID(d["id"]),
            "lot_version": int(lot["version"]),
            "offer_version": int(d["version"]),
            "org": d["org"],
            "item_code": lot["item_code"],
            # What may ever be given: units a receipt wrote off (damaged, expired, lost) are gone for good.
            "quantity": int(lot["quantity"]) - int(lot.get("quantity_written_off") or 0),
            "quantity_reserved": int(lot["quantity_reserved"]),
            "lat": lot.get("lat"),
            "lon": lot.get("lon"),
            "region_code": lot.get("region_code"),
            "available_from": _ts(lot.get("available_from")),
            "expires_at": _ts(lot.get("expires_at")),
            "verification": lot["verification"],
            "offer_status": d["status"],
            "restrictions": d.get("restrictions") or {},
        }
        for lot in d["lots"]
    ]


async def on_supply_event(session: AsyncSession, event: CloudEvent) -> None:
    """supply.events → lot_view, guarded by the offer's and the lot's versions."""
    d = event.data
    repo = ProjectionRepository(session)
    if event.type.startswith("reliefhub.supply.offer."):
        lots = _offer_lots(d)
        for row in lots:
            await repo.upsert_lot(row)
        await repo.mark_changed(lots=[(row["item_code"], row["lot_id"]) for row in lots])
    elif event.type == "reliefhub.supply.lot.verified":
        before: set[str] = set()
        for lot in d["lots"]:
            before |= await _update_lot(
                repo,
                uuid.UUID(lot["id"]),
                int(lot["version"]),
                int(lot["quantity_reserved"]),
                lot["verification"],
                item_code=lot["item_code"],
            )
        await repo.mark_changed(lots=[(lot["item_code"], uuid.UUID(lot["id"])) for lot in d["lots"]])
        await repo.mark_dirty(before)  # re-classified: the lines of the item it was are to be re-matched
    elif event.type.startswith("reliefhub.supply.reservation."):
        if event.type == "reliefhub.supply.reservation.created" and not await _mark_projected(session, d["reference"]):
            # Someone reserved outside matching: open proposals on that lot may no longer fit.
            await repo.mark_changed(lots=[(d["item_code"], uuid.UUID(d["lot_id"]))])
        if d.get("lot_version") is None:
            return
        await _update_lot(repo, uuid.UUID(d["lot_id"]), int(d["lot_version"]), int(d["lot_quantity_reserved"]))
        if event.type != "reliefhub.supply.reservation.created":
            await repo.mark_changed(lots=[(d["item_code"], uuid.UUID(d["lot_id"]))])


async def _mark_projected(session: AsyncSession, reference: str) -> bool:
    """A reservation made for one of our proposals is now counted in lot_view. False when it is not ours."""
    try:
        proposal_id = uuid.UUID(reference)
    except ValueError:
        return False
    return await ProposalRepository(session).mark_projected(proposal_id)


async def _update_lot(
    repo: ProjectionRepository,
    lot_id: uuid.UUID,
    lot_version: int,
    quantity_reserved: int,
    verification: str | None = None,
    *,
    item_code: str | None = None,
) -> set[str]:
    """Each field from the newest lot version that carries it; a verdict may reclassify the lot as another
    item. Returns the item code it had, when that changed (its open lines are to be re-matched too)."""
    exists = await repo.lot(lot_id)
    if exists is None:
        raise LotNotProjectedYet(f"lot {lot_id} not projected yet")
    was: set[str] = set()
    if exists.lot_version < lot_version:
        exists.lot_version, exists.quantity_reserved = lot_version, quantity_reserved
    if verification is not None and exists.verification_version < lot_version:
        exists.verification, exists.verification_version = verification, lot_version
        if item_code is not None and item_code != exists.item_code:
            was, exists.item_code = {exists.item_code}, item_code
    await repo.flush()
    return was


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
            # In the need line's unit (a converted substitute's shipment line counts the lot's units).
            "quantity_returned": int(
                line.get("line_quantity_returned" if line.get("line_quantity") is not None else "quantity_returned")
                or 0
            ),
            "version": int(d["version"]),
        }
        for line in d["lines"]
        if line.get("proposal_id")
    ]
    if not rows:
        return
    changed = await ProposalRepository(session).record_returns(rows)
    if changed:
        returned = await ProposalRepository(session).sum_returns(sorted(changed))
        # Only the component of the lines (and lots) given back re-runs; a capacity's service group as a whole.
        views = ProjectionRepository(session)
        await views.mark_changed(
            lines=[(item, line_id) for item, line_id, _, _ in returned],
            lots=[(lot_item, lot_id) for _, _, lot_item, lot_id in returned if lot_id is not None],
        )
        await views.mark_dirty({lot_item for _, _, lot_item, lot_id in returned if lot_id is None})


async def on_partners_event(session: AsyncSession, event: CloudEvent) -> None:
    """partners.events → capacity_view, guarded by the capacity's version; its service's lines are re-matched."""
    if not event.type.startswith("reliefhub.partners.capacity."):
        return
    d = event.data
    await CapacityRepository(session).upsert(
        {
            "capacity_id": uuid.UUID(d["id"]),
            "org": d["org"],
            "service_code": d["service_code"],
            "units_per_day": int(d["units_per_day"]),
            "starts_on": date.fromisoformat(d["starts_on"]),
            "ends_on": date.fromisoformat(d["ends_on"]),
            "region_codes": list(d.get("region_codes") or []),
            "status": d["status"],
            "version": int(d["version"]),
        },
    )
    await ProjectionRepository(session).mark_dirty({d["service_code"]})


SUBSCRIPTIONS = [
    Subscription(
        stream="needs.events", group="matching-catalog", handler=catalog_handler(catalog), types=CATALOG_TYPES
    ),
    Subscription(
        stream="needs.events", group="matching-projection", handler=on_need_event, batch_handler=on_need_events
    ),
    Subscription(
        stream="supply.events",
        group="matching-projection",
        handler=on_supply_event,
        batch_handler=in_sequence(on_supply_event),
        types=("reliefhub.supply.offer.", "reliefhub.supply.lot.verified", "reliefhub.supply.reservation."),
    ),
    Subscription(
        stream="logistics.events",
        group="matching-returns",
        handler=on_logistics_event,
        batch_handler=in_sequence(on_logistics_event),
        types=("reliefhub.logistics.shipment.",),
    ),
    Subscription(
        stream="partners.events",
        group="matching-capacities",
        handler=on_partners_event,
        types=("reliefhub.partners.capacity.",),
    ),
]
