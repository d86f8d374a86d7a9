"""Shipments: planned from accepted proposals (automatically per route, or by hand), edited while they move, and
moved along their status machine. Proof of delivery and feedback are in `receipts`."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.logistics import events, schemas
from services.logistics.errors import (
    AcceptedProposalNotFound,
    AlreadyPickedUp,
    IllegalTransition,
    ProposalNotShippable,
    ShipmentNotFound,
)
from services.logistics.models import AcceptedProposal, Feedback, Shipment, ShipmentLine, ShipmentUpdate
from services.logistics.repository import ProjectionRepository, ShipmentRepository
from shared.auth import Principal, Role, require_in_region
from shared.db import utcnow
from shared.errors import Forbidden, InvalidRequest
from shared.etag import IfMatch, check_version
from shared.events import EventType, publish
from shared.pagination import PageParams
from shared.vocabulary import ON_THE_WAY_SHIPMENT_STATUSES, ShipmentStatus

# Where each status may go by `POST …/status`; receipt (with the PIN) settles picked-up, moving or delivered
# shipments as received, received_with_problem or not_received.
TRANSITIONS: dict[ShipmentStatus, frozenset[ShipmentStatus]] = {
    ShipmentStatus.planned: frozenset({ShipmentStatus.picked_up, ShipmentStatus.cancelled}),
    ShipmentStatus.picked_up: frozenset(
        {ShipmentStatus.in_transit, ShipmentStatus.delivered, ShipmentStatus.not_received}
    ),
    ShipmentStatus.in_transit: frozenset(
        {ShipmentStatus.in_transit, ShipmentStatus.delivered, ShipmentStatus.not_received}
    ),
    ShipmentStatus.delivered: frozenset({ShipmentStatus.not_received}),
}
RECEIVABLE = ON_THE_WAY_SHIPMENT_STATUSES
SETTLED = frozenset({ShipmentStatus.received, ShipmentStatus.received_with_problem, ShipmentStatus.not_received})
EDITABLE = frozenset({ShipmentStatus.planned, ShipmentStatus.picked_up, ShipmentStatus.in_transit})


def new_pin() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def is_recipient(principal: Principal, shipment: Shipment) -> bool:
    """The receiving site's frontline: its organisation's other tokens (a donor, a driver) are not the site."""
    return principal.has(Role.frontline) and principal.owns(shipment.destination_org)


def is_carrier(principal: Principal, shipment: Shipment) -> bool:
    return principal.has(Role.logistics) and principal.owns(shipment.carrier_org)


def may_record_receipt(principal: Principal, shipment: Shipment) -> bool:
    """Who may try the handover PIN: the site, its assigned carrier at the handover, and coordinators taking the
    site's word (a hotline). Anyone else is refused before the PIN is compared, so cannot lock the receipt."""
    return principal.is_staff or is_recipient(principal, shipment) or is_carrier(principal, shipment)


def _check_carrier_assignment(principal: Principal, current: str | None, carrier_org: str | None) -> None:
    # The carrier organisation names who may try the PIN: a carrier must not be able to assign itself.
    if carrier_org != current and not principal.is_staff:
        raise Forbidden("Coordinators assign a shipment's carrier organisation (`carrier_org`).")


def origin_key(origin: dict[str, Any], offer_org: str | None) -> str:
    """Lines picked up at the same place of the same donor organisation share a route."""
    if origin.get("lat") is not None and origin.get("lon") is not None:
        where = f"{float(origin['lat']):.3f},{float(origin['lon']):.3f}"
    else:
        where = str(origin.get("region_code") or "-")
    return f"{offer_org or '-'}@{where}"[:200]


def _line_event(line: ShipmentLine, status: ShipmentStatus) -> events.ShipmentLineData:
    data = events.ShipmentLineData.model_validate(line, from_attributes=True)
    # Picked up, moving or handed over and not yet confirmed: on its way (RECEIVABLE are exactly those).
    data.quantity_in_transit = line.quantity if status in RECEIVABLE else 0
    data.quantity_delivered = line.quantity_received or 0
    if line.line_quantity is not None:
        data.line_quantity_in_transit = line.line_quantity if status in RECEIVABLE else 0
        data.line_quantity_delivered = line.credited(data.quantity_delivered)
        returned = line.quantity_returned is not None
        data.line_quantity_returned = line.line_quantity - data.line_quantity_delivered if returned else None
    return data


def shipment_event(shipment: Shipment, location: str | None = None, note: str | None = None) -> events.ShipmentData:
    return events.ShipmentData(
        id=shipment.id,
        status=shipment.status,
        origin=shipment.origin,
        destination_site_id=shipment.destination_site_id,
        destination_org=shipment.destination_org,
        region_code=shipment.region_code,
        carrier=shipment.carrier,
        lines=[_line_event(line, shipment.status) for line in shipment.lines],
        version=shipment.version,
        created_at=shipment.created_at,
        location=location,
        note=note,
        origin_org=shipment.origin_org,
        claim_id=shipment.claim_id,
    )


async def emit_shipment(
    session: AsyncSession, type_: EventType, shipment: Shipment, location: str | None = None, note: str | None = None
) -> None:
    shipment.updated_at = utcnow()  # set here, not by the column's onupdate, so the response can read it
    await session.flush()
    await publish(session, type_, shipment_event(shipment, location, note), subject=str(shipment.id))


def record_update(
    shipment: Shipment,
    status: ShipmentStatus,
    actor: str,
    at: datetime,
    *,
    location: str | None = None,
    note: str | None = None,
    leg: int | None = None,
) -> None:
    """One step of the shipment's status history."""
    shipment.history.append(
        ShipmentUpdate(id=uuid.uuid4(), status=status, actor=actor, at=at, location=location, note=note, leg=leg)
    )


async def get_shipment(session: AsyncSession, shipment_id: uuid.UUID, *, for_update: bool = False) -> Shipment:
    shipment = await ShipmentRepository(session).get_full(shipment_id, for_update=for_update)
    if shipment is None:
        raise ShipmentNotFound(f"No shipment {shipment_id}.")
    return shipment


async def list_shipments(
    session: AsyncSession,
    params: PageParams,
    *,
    status: ShipmentStatus | None = None,
    destination_site_id: uuid.UUID | None = None,
    need_id: uuid.UUID | None = None,
    offer_id: uuid.UUID | None = None,
    proposal_id: uuid.UUID | None = None,
    region_code: str | None = None,
) -> tuple[list[Shipment], str | None]:
    return await ShipmentRepository(session).search(
        params,
        status=status,
        destination_site_id=destination_site_id,
        need_id=need_id,
        offer_id=offer_id,
        proposal_id=proposal_id,
        region_code=region_code,
    )


async def feedback_of(session: AsyncSession, shipments: list[Shipment]) -> dict[uuid.UUID, Feedback]:
    return await ShipmentRepository(session).feedback_for([s.id for s in shipments])


def _line_from(proposal: AcceptedProposal, quantity: int, position: int) -> ShipmentLine:
    """A shipment line for `quantity` (line units) of a proposal, the next after what is planned already: of
    the lot's item, in the lot units that carry it."""
    lot_units = proposal.lot_units(proposal.quantity_planned + quantity) - proposal.lot_units(proposal.quantity_planned)
    converted = proposal.lot_quantity is not None and proposal.lot_quantity != proposal.quantity
    return ShipmentLine(
        id=uuid.uuid4(),
        position=position,
        proposal_id=proposal.proposal_id,
        need_id=proposal.need_id,
        need_line_id=proposal.need_line_id,
        lot_id=proposal.lot_id,
        offer_id=proposal.offer_id,
        item_code=proposal.item_code,
        quantity=lot_units,
        line_quantity=quantity if converted else None,
    )


def _new_shipment(
    proposal: AcceptedProposal, origin: dict[str, Any], actor: str, now: datetime, *, auto: bool
) -> Shipment:
    return Shipment(
        id=uuid.uuid4(),
        origin=origin,
        origin_key=origin_key(origin, proposal.offer_org),
        origin_org=proposal.offer_org,
        destination_site_id=proposal.site_id,
        destination_org=proposal.destination_org,
        region_code=proposal.region_code,
        legs=[],
        status=ShipmentStatus.planned,
        auto=auto,
        handover_pin=new_pin(),
        pin_failures=0,
        created_by=actor,
        version=1,
        created_at=now,
        updated_at=now,
        lines=[],
        history=[],
    )


async def plan_accepted(session: AsyncSession, proposal: AcceptedProposal, actor: str) -> Shipment:
    """Put an accepted proposal on the planned automatic shipment of its route, opening one if none is open."""
    repo = ShipmentRepository(session)
    key = origin_key(proposal.origin, proposal.offer_org)
    await repo.lock_route(key, proposal.site_id)
    now = utcnow()
    shipment = await repo.open_auto(key, proposal.site_id)
    created = shipment is None
    if shipment is None:
        shipment = _new_shipment(proposal, proposal.origin, actor, now, auto=True)
        record_update(shipment, ShipmentStatus.planned, actor, now, note="from accepted proposals")
        repo.add(shipment)
    else:
        shipment.version += 1
    shipment.lines.append(_line_from(proposal, proposal.quantity - proposal.quantity_planned, len(shipment.lines)))
    proposal.quantity_planned = proposal.quantity
    await emit_shipment(session, events.SHIPMENT_CREATED if created else events.SHIPMENT_UPDATED, shipment)
    return shipment


async def create_shipment(session: AsyncSession, principal: Principal, data: schemas.ShipmentCreate) -> Shipment:
    """Plan a shipment by hand from accepted proposals that are not (fully) planned yet."""
    _check_carrier_assignment(principal, None, data.carrier_org)
    ids = [line.proposal_id for line in data.lines]
    if len(set(ids)) != len(ids):
        raise InvalidRequest("Name each proposal once.", errors=[{"loc": ["body", "lines"], "msg": "repeated"}])
    proposals = await ProjectionRepository(session).accepted(ids)
    missing = [i for i, pid in enumerate(ids) if pid not in proposals]
    if missing:
        raise ProposalNotShippable(
            "Not an accepted proposal known to logistics (yet): "
            + ", ".join(str(ids[i]) for i in missing)
            + ". Accepted proposals arrive within moments; retry.",
            errors=[{"loc": ["body", "lines", i, "proposal_id"], "msg": "not accepted"} for i in missing],
        )
    first = proposals[ids[0]]
    if any(proposals[pid].site_id != first.site_id for pid in ids):
        raise InvalidRequest(
            "Every line of a shipment goes to one site.",
            errors=[{"loc": ["body", "lines"], "msg": "proposals for different sites"}],
        )
    require_in_region(principal, first.region_code, what="The shipment's destination")
    now = utcnow()
    origin = data.origin.model_dump(exclude_none=True) if data.origin else first.origin
    shipment = _new_shipment(first, origin, principal.sub, now, auto=False)
    shipment.carrier, shipment.carrier_org, shipment.note = data.carrier, data.carrier_org, data.note
    shipment.legs = [leg.model_dump(mode="json") for leg in data.legs]
    for i, line in enumerate(data.lines):
        proposal = proposals[line.proposal_id]
        open_quantity = proposal.quantity - proposal.quantity_planned
        quantity = line.quantity or open_quantity
        if quantity <= 0 or quantity > open_quantity:
            raise ProposalNotShippable(
                f"Proposal {proposal.proposal_id} has {open_quantity} of {proposal.quantity} left to plan.",
                errors=[{"loc": ["body", "lines", i, "quantity"], "msg": f"at most {open_quantity}"}],
            )
        shipment.lines.append(_line_from(proposal, quantity, i))
        proposal.quantity_planned += quantity
    record_update(shipment, ShipmentStatus.planned, principal.sub, now, note=data.note)
    ShipmentRepository(session).add(shipment)
    await emit_shipment(session, events.SHIPMENT_CREATED, shipment)
    return shipment


async def update_shipment(
    session: AsyncSession,
    principal: Principal,
    shipment_id: uuid.UUID,
    data: schemas.ShipmentUpdateRequest,
    expected: IfMatch,
) -> Shipment:
    shipment = await get_shipment(session, shipment_id, for_update=True)
    require_in_region(principal, shipment.region_code, what="The shipment's destination")
    if "carrier_org" in data.model_fields_set:
        _check_carrier_assignment(principal, shipment.carrier_org, data.carrier_org)
    check_version(expected, shipment.version)
    if shipment.status not in EDITABLE:
        raise IllegalTransition(f"A {shipment.status} shipment can no longer be changed.")
    changes = data.model_dump(exclude_unset=True, mode="json")
    if "carrier" in changes:
        shipment.carrier = changes["carrier"]
    if "carrier_org" in changes:
        shipment.carrier_org = changes["carrier_org"]
    if "legs" in changes:
        shipment.legs = changes["legs"] or []
    if "note" in changes:
        shipment.note = changes["note"]
    shipment.version += 1
    await emit_shipment(session, events.SHIPMENT_UPDATED, shipment)
    return shipment


async def change_status(
    session: AsyncSession, principal: Principal, shipment_id: uuid.UUID, data: schemas.StatusRequest
) -> Shipment:
    """Move a shipment along its status machine; anything else is a 409 that changes nothing."""
    shipment = await get_shipment(session, shipment_id, for_update=True)
    require_in_region(principal, shipment.region_code, what="The shipment's destination")
    target = ShipmentStatus(data.status.value)
    shipper = principal.is_staff or principal.has(Role.logistics)
    # The receiving site may only report that nothing arrived.
    if not shipper and not (is_recipient(principal, shipment) and target == ShipmentStatus.not_received):
        raise Forbidden("Carriers, the logistics group and coordinators move shipments along.")
    if target not in TRANSITIONS.get(shipment.status, frozenset()):
        allowed = sorted(TRANSITIONS.get(shipment.status, frozenset()))
        raise IllegalTransition(
            f"A {shipment.status} shipment cannot become {target}"
            + (f"; it may become {', '.join(allowed)}." if allowed else "; it is settled."),
            extra={"status": shipment.status, "allowed": allowed},
        )
    if data.leg is not None and data.leg >= max(len(shipment.legs), 1):
        raise InvalidRequest(
            f"The shipment has {len(shipment.legs)} legs.", errors=[{"loc": ["body", "leg"], "msg": "no such leg"}]
        )
    now = utcnow()
    shipment.status = target
    if target == ShipmentStatus.picked_up:
        shipment.picked_up_at = now
    elif target == ShipmentStatus.delivered:
        shipment.delivered_at = now
    elif target in (ShipmentStatus.not_received, ShipmentStatus.cancelled):
        for line in shipment.lines:
            line.quantity_received, line.quantity_returned = 0, line.quantity
    record_update(shipment, target, principal.sub, now, location=data.location, note=data.note, leg=data.leg)
    shipment.version += 1
    await emit_shipment(session, events.SHIPMENT_STATUS_EVENTS[target], shipment, data.location, data.note)
    return shipment


async def withdraw_proposal(
    session: AsyncSession, principal: Principal, proposal_id: uuid.UUID, reason: str
) -> schemas.Withdrawal:
    """Take a declined proposal's goods off the shipments planned for them, before pick-up: its lines leave
    planned shipments (one left without lines is cancelled) and nothing more of it may be planned. Its lot's
    reservation is released by matching, not by these lines, so they leave instead of returning their goods.
    Repeating it changes nothing; once any of its goods were picked up it is a 409 that changes nothing."""
    proposal = (await ProjectionRepository(session).accepted([proposal_id])).get(proposal_id)
    if proposal is None:
        raise AcceptedProposalNotFound(f"Logistics has not heard of an accepted proposal {proposal_id} (yet).")
    found = await ShipmentRepository(session).with_proposal(proposal_id)
    moving = [s for s in found if s.status not in (ShipmentStatus.planned, ShipmentStatus.cancelled)]
    if moving:
        raise AlreadyPickedUp(
            f"Goods of proposal {proposal_id} are on shipment {moving[0].id}, which is {moving[0].status}.",
            extra={"shipments": [{"id": str(s.id), "status": s.status.value} for s in moving]},
        )
    now, note = utcnow(), f"proposal {proposal_id} withdrawn: {reason}"[:2000]
    out = schemas.Withdrawal(proposal_id=proposal_id, shipments_updated=[], shipments_cancelled=[])
    for shipment in found:
        if shipment.status != ShipmentStatus.planned:
            continue
        shipment.lines[:] = [line for line in shipment.lines if line.proposal_id != proposal_id]
        shipment.version += 1
        if shipment.lines:
            record_update(shipment, ShipmentStatus.planned, principal.sub, now, note=note)
            await emit_shipment(session, events.SHIPMENT_UPDATED, shipment, note=note)
            out.shipments_updated.append(shipment.id)
        else:
            shipment.status = ShipmentStatus.cancelled
            record_update(shipment, ShipmentStatus.cancelled, principal.sub, now, note=note)
            await emit_shipment(session, events.SHIPMENT_CANCELLED, shipment, note=note)
            out.shipments_cancelled.append(shipment.id)
    proposal.quantity_planned = proposal.quantity  # never planned again, by hand or automatically
    return out
