"""Business rules of the logistics service: shipments from accepted proposals, their status machine, proof of
delivery with a handover PIN, feedback, procurement against cash pledges and the ledger."""

from __future__ import annotations

import hmac
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.logistics import events, schemas
from services.logistics.errors import (
    FeedbackExists,
    IllegalTransition,
    InvalidReceipt,
    NotReceivedYet,
    NotTheRecipient,
    PinLocked,
    PledgeInsufficient,
    PledgeUnavailable,
    ProcurementNotFound,
    ProcurementNotInState,
    ProposalNotShippable,
    ShipmentNotFound,
    SupplyUnavailable,
    WrongPin,
)
from services.logistics.models import (
    AcceptedProposal,
    Feedback,
    Procurement,
    ProcurementFunding,
    Shipment,
    ShipmentLine,
    ShipmentUpdate,
)
from services.logistics.repository import (
    LedgerRepository,
    ProcurementRepository,
    ProjectionRepository,
    ShipmentRepository,
)
from shared.auth import Principal, Role, require_in_region
from shared.catalog import get_catalog, require_known
from shared.db import utcnow
from shared.errors import Forbidden, InvalidRequest
from shared.etag import IfMatch, check_version
from shared.events import EventType, publish
from shared.pagination import PageParams
from shared.runtime import runtime_of_session
from shared.settings import Settings

# Where each status may go by `POST …/status`; receipt (with the PIN) settles picked-up, moving or delivered
# shipments as received, received_with_problem or not_received.
TRANSITIONS: dict[str, frozenset[str]] = {
    "planned": frozenset({"picked_up", "cancelled"}),
    "picked_up": frozenset({"in_transit", "delivered", "not_received"}),
    "in_transit": frozenset({"in_transit", "delivered", "not_received"}),
    "delivered": frozenset({"not_received"}),
}
RECEIVABLE = frozenset({"picked_up", "in_transit", "delivered"})
SETTLED = frozenset({"received", "received_with_problem", "not_received"})
EDITABLE = frozenset({"planned", "picked_up", "in_transit"})


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


def _line_event(line: ShipmentLine, status: str) -> events.ShipmentLineData:
    data = events.ShipmentLineData.model_validate(line, from_attributes=True)
    # Picked up, moving or handed over and not yet confirmed: on its way (RECEIVABLE are exactly those).
    data.quantity_in_transit = line.quantity if status in RECEIVABLE else 0
    data.quantity_delivered = line.quantity_received or 0
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
    )


async def _emit(
    session: AsyncSession, type_: EventType, shipment: Shipment, location: str | None = None, note: str | None = None
) -> None:
    shipment.updated_at = utcnow()  # set here, not by the column's onupdate, so the response can read it
    await session.flush()
    await publish(session, type_, shipment_event(shipment, location, note), subject=str(shipment.id))


def _record(shipment: Shipment, status: str, actor: str, at: datetime, **details: Any) -> None:
    shipment.history.append(ShipmentUpdate(id=uuid.uuid4(), status=status, actor=actor, at=at, **details))


# --- shipments ----------------------------------------------------------------------------------------------


async def get_shipment(session: AsyncSession, shipment_id: uuid.UUID, *, for_update: bool = False) -> Shipment:
    shipment = await ShipmentRepository(session).get_full(shipment_id, for_update=for_update)
    if shipment is None:
        raise ShipmentNotFound(f"No shipment {shipment_id}.")
    return shipment


async def list_shipments(
    session: AsyncSession, params: PageParams, **filters: Any
) -> tuple[list[Shipment], str | None]:
    return await ShipmentRepository(session).search(params, **filters)


async def feedback_of(session: AsyncSession, shipments: list[Shipment]) -> dict[uuid.UUID, Feedback]:
    return await ShipmentRepository(session).feedback_for([s.id for s in shipments])


def _line_from(proposal: AcceptedProposal, quantity: int, position: int) -> ShipmentLine:
    return ShipmentLine(
        id=uuid.uuid4(),
        position=position,
        proposal_id=proposal.proposal_id,
        need_id=proposal.need_id,
        need_line_id=proposal.need_line_id,
        lot_id=proposal.lot_id,
        offer_id=proposal.offer_id,
        item_code=proposal.item_code,
        quantity=quantity,
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
        status="planned",
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
        _record(shipment, "planned", actor, now, note="from accepted proposals")
        repo.add(shipment)
    else:
        shipment.version += 1
    shipment.lines.append(_line_from(proposal, proposal.quantity, len(shipment.lines)))
    proposal.quantity_planned = proposal.quantity
    await _emit(session, events.SHIPMENT_CREATED if created else events.SHIPMENT_UPDATED, shipment)
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
        proposal.quantity_planned += quantity
        shipment.lines.append(_line_from(proposal, quantity, i))
    _record(shipment, "planned", principal.sub, now, note=data.note)
    ShipmentRepository(session).add(shipment)
    await _emit(session, events.SHIPMENT_CREATED, shipment)
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
    await _emit(session, events.SHIPMENT_UPDATED, shipment)
    return shipment


async def change_status(
    session: AsyncSession, principal: Principal, shipment_id: uuid.UUID, data: schemas.StatusRequest
) -> Shipment:
    """Move a shipment along its status machine; anything else is a 409 that changes nothing."""
    shipment = await get_shipment(session, shipment_id, for_update=True)
    require_in_region(principal, shipment.region_code, what="The shipment's destination")
    target = data.status.value
    shipper = principal.is_staff or principal.has(Role.logistics)
    # The receiving site may only report that nothing arrived.
    if not shipper and not (is_recipient(principal, shipment) and target == "not_received"):
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
    if target == "picked_up":
        shipment.picked_up_at = now
    elif target == "delivered":
        shipment.delivered_at = now
    elif target in ("not_received", "cancelled"):
        for line in shipment.lines:
            line.quantity_received, line.quantity_returned = 0, line.quantity
    _record(shipment, target, principal.sub, now, location=data.location, note=data.note, leg=data.leg)
    shipment.version += 1
    await _emit(session, events.SHIPMENT_STATUS_EVENTS[target], shipment, data.location, data.note)
    return shipment


def _apportion(shipment: Shipment, receipt: schemas.ReceiptRequest) -> dict[uuid.UUID, tuple[int, str | None]]:
    """What arrived per shipment line. A receipt names lines by id or by item; an item's quantity fills its
    lines in order. Every line must be accounted for, and a short line needs a reason."""
    by_id = {line.id: line for line in shipment.lines}
    errors: list[dict[str, Any]] = []
    got: dict[uuid.UUID, tuple[int, str | None]] = {}
    named: set[uuid.UUID] = set()
    for i, entry in enumerate(receipt.lines):
        if entry.line_id is not None:
            targets = [by_id[entry.line_id]] if entry.line_id in by_id else []
        else:
            targets = [line for line in shipment.lines if line.item_code == entry.item_code]
        if not targets:
            errors.append({"loc": ["body", "lines", i], "msg": "no such line or item on this shipment"})
            continue
        if any(t.id in named for t in targets):
            errors.append({"loc": ["body", "lines", i], "msg": "this line is named twice"})
            continue
        named.update(t.id for t in targets)
        capacity = sum(t.quantity for t in targets)
        if entry.quantity_received > capacity:
            errors.append({"loc": ["body", "lines", i, "quantity_received"], "msg": f"at most {capacity} were sent"})
            continue
        if entry.quantity_received < capacity and not entry.discrepancy_reason:
            errors.append({"loc": ["body", "lines", i, "discrepancy_reason"], "msg": "say why it came short"})
            continue
        left = entry.quantity_received
        for t in targets:
            take = min(left, t.quantity)
            left -= take
            got[t.id] = (take, entry.discrepancy_reason if take < t.quantity else None)
    errors.extend(
        {"loc": ["body", "lines"], "msg": f"line {line.id} ({line.item_code}) is missing"}
        for line in shipment.lines
        if line.id not in named
    )
    if errors:
        raise InvalidReceipt("The receipt does not account for the shipment's lines.", errors=errors)
    return got


async def record_receipt(
    session: AsyncSession,
    principal: Principal,
    shipment_id: uuid.UUID,
    data: schemas.ReceiptRequest,
    settings: Settings,
) -> Shipment:
    """Proof of delivery: the handover PIN, what arrived per line, and why anything came short."""
    shipment = await get_shipment(session, shipment_id, for_update=True)
    if not may_record_receipt(principal, shipment):
        raise NotTheRecipient(
            "The receipt is recorded by the receiving site's frontline, the shipment's assigned carrier or a "
            "coordinator."
        )
    require_in_region(principal, shipment.region_code, what="The shipment's destination")
    if shipment.status not in RECEIVABLE:
        raise IllegalTransition(
            f"A {shipment.status} shipment cannot be received.", extra={"status": shipment.status, "allowed": []}
        )
    now = utcnow()
    if shipment.pin_locked_until is not None and shipment.pin_locked_until > now:
        wait = int((shipment.pin_locked_until - now).total_seconds()) + 1
        raise PinLocked(
            f"Receipt is locked for {wait} s after repeated wrong PINs.", headers={"Retry-After": str(wait)}
        )
    if not hmac.compare_digest(data.pin.encode(), shipment.handover_pin.encode()):
        shipment.pin_failures += 1
        left = settings.pin_max_failures - shipment.pin_failures
        if left <= 0:
            shipment.pin_failures = 0
            shipment.pin_locked_until = now + timedelta(seconds=settings.pin_lock_seconds)
            await session.flush()
            raise PinLocked(
                f"Too many wrong PINs; receipt is locked for {settings.pin_lock_seconds} s.",
                headers={"Retry-After": str(settings.pin_lock_seconds)},
            )
        await session.flush()
        raise WrongPin(f"Wrong PIN; {left} attempts left before receipt is locked.", extra={"attempts_left": left})
    got = _apportion(shipment, data)
    for line in shipment.lines:
        received, reason = got[line.id]
        line.quantity_received, line.quantity_returned, line.discrepancy_reason = (
            received,
            line.quantity - received,
            reason,
        )
    total = sum(line.quantity_received or 0 for line in shipment.lines)
    if total == 0:
        shipment.status = "not_received"
    elif all(line.quantity_returned == 0 for line in shipment.lines):
        shipment.status = "received"
    else:
        shipment.status = "received_with_problem"
    shipment.pin_failures, shipment.pin_locked_until = 0, None
    shipment.received_at = now
    shipment.delivered_at = shipment.delivered_at or now
    _record(shipment, shipment.status, principal.sub, now, note="; ".join(r for _, r in got.values() if r) or None)
    shipment.version += 1
    await _book_delivered(session, shipment)
    await ProjectionRepository(session).mark_need_times(
        sorted({line.need_id for line in shipment.lines if line.need_id and line.quantity_received}),
        "first_delivered_at",
        now,
    )
    event = events.SHIPMENT_NOT_RECEIVED if shipment.status == "not_received" else events.SHIPMENT_RECEIVED
    await _emit(session, event, shipment)
    return shipment


async def _book_delivered(session: AsyncSession, shipment: Shipment) -> None:
    catalog = get_catalog()
    ledger = LedgerRepository(session)
    for line in shipment.lines:
        item = catalog.get(line.item_code)
        if not line.quantity_received or item is None:
            continue
        await ledger.book(
            {
                "ref": f"in_kind_delivered:{line.id}",
                "kind": "in_kind_delivered",
                "amount": line.quantity_received * item.unit_value_fen,
                "currency": "CNY",
                "offer_id": line.offer_id,
                "shipment_id": shipment.id,
                "region_code": shipment.region_code,
                "item_code": line.item_code,
                "quantity": line.quantity_received,
            }
        )


async def give_feedback(
    session: AsyncSession, principal: Principal, shipment_id: uuid.UUID, data: schemas.FeedbackCreate
) -> tuple[Shipment, Feedback]:
    shipment = await get_shipment(session, shipment_id, for_update=True)
    if not (principal.is_staff or is_recipient(principal, shipment)):
        raise NotTheRecipient("Feedback comes from the receiving site's organisation (or a coordinator).")
    require_in_region(principal, shipment.region_code, what="The shipment's destination")
    if shipment.status not in SETTLED:
        raise NotReceivedYet(f"The shipment is {shipment.status}; give feedback once it is received.")
    repo = ShipmentRepository(session)
    if await repo.feedback(shipment.id) is not None:
        raise FeedbackExists()
    feedback = Feedback(
        shipment_id=shipment.id,
        rating=data.rating,
        comment=data.comment,
        beneficiaries_served=data.beneficiaries_served,
        photo_urls=[str(u) for u in data.photo_urls],
        created_by=principal.sub,
        created_at=utcnow(),
    )
    session.add(feedback)
    await session.flush()
    await publish(
        session,
        events.FEEDBACK_RECEIVED,
        events.FeedbackData(
            shipment_id=shipment.id,
            destination_site_id=shipment.destination_site_id,
            region_code=shipment.region_code,
            rating=feedback.rating,
            comment=feedback.comment,
            beneficiaries_served=feedback.beneficiaries_served,
            photo_urls=feedback.photo_urls,
        ),
        subject=str(shipment.id),
    )
    return shipment, feedback


# --- procurement ----------------------------------------------------------------------------------------------


def procurement_event(p: Procurement) -> events.ProcurementData:
    return events.ProcurementData(
        id=p.id,
        org=p.org,
        status=p.status,
        supplier=p.supplier,
        region_code=p.region_code,
        currency=p.currency,
        total=p.total,
        lines=p.lines,
        funding=[{"offer_id": str(f.offer_id), "amount": f.amount} for f in p.funding],
        goods_offer_id=p.goods_offer_id,
        version=p.version,
    )


async def _emit_procurement(session: AsyncSession, type_: EventType, p: Procurement) -> None:
    p.updated_at = utcnow()
    await session.flush()
    await publish(session, type_, procurement_event(p), subject=str(p.id))


async def get_procurement(session: AsyncSession, procurement_id: uuid.UUID, *, for_update: bool = False) -> Procurement:
    found = await ProcurementRepository(session).get_full(procurement_id, for_update=for_update)
    if found is None:
        raise ProcurementNotFound(f"No procurement order {procurement_id}.")
    return found


async def list_procurements(
    session: AsyncSession, params: PageParams, **filters: Any
) -> tuple[list[Procurement], str | None]:
    return await ProcurementRepository(session).search(params, **filters)


async def _check_pledges(session: AsyncSession, currency: str, funding: list[schemas.FundingCreate]) -> None:
    projection = ProjectionRepository(session)
    for i, f in enumerate(funding):
        loc = ["body", "funding", i, "offer_id"]
        pledge = await projection.offer(f.offer_id)
        if pledge is None:
            raise PledgeUnavailable(
                f"Pledge {f.offer_id} is not known to logistics (yet); a new pledge arrives within moments.",
                errors=[{"loc": loc, "msg": "unknown pledge"}],
                headers={"Retry-After": "1"},
            )
        if pledge.kind != "cash" or pledge.status != "open":
            raise PledgeUnavailable(
                f"Offer {f.offer_id} is {'not a cash pledge' if pledge.kind != 'cash' else pledge.status}.",
                errors=[{"loc": loc, "msg": "not an open cash pledge"}],
            )
        if pledge.currency != currency:
            raise PledgeUnavailable(
                f"Pledge {f.offer_id} is in {pledge.currency}, the order in {currency}.",
                errors=[{"loc": loc, "msg": "currency differs"}],
            )
        left = (pledge.amount or 0) - pledge.amount_spent
        if f.amount > left:
            raise PledgeInsufficient(
                f"Pledge {f.offer_id} holds {left} {currency} unspent; {f.amount} were asked for.",
                errors=[{"loc": ["body", "funding", i, "amount"], "msg": f"at most {left}"}],
                extra={"offer_id": str(f.offer_id), "available": left},
            )


async def create_procurement(
    session: AsyncSession, principal: Principal, data: schemas.ProcurementCreate
) -> Procurement:
    """Draft a purchase paid from cash pledges; the pledges must hold the amounts now (they are spent when
    the order is placed)."""
    require_known((["body", "lines", i, "item_code"], line.item_code) for i, line in enumerate(data.lines))
    require_in_region(principal, data.region_code, what="The procurement's destination")
    await _check_pledges(session, data.currency, data.funding)
    now = utcnow()
    p = Procurement(
        id=uuid.uuid4(),
        org=principal.org,
        supplier=data.supplier.model_dump(exclude_none=True),
        region_code=data.region_code,
        need_id=data.need_id,
        currency=data.currency,
        total=sum(line.quantity * line.unit_price for line in data.lines),
        lines=[
            {
                "item_code": line.item_code,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "amount": line.quantity * line.unit_price,
            }
            for line in data.lines
        ],
        status="draft",
        note=data.note,
        created_by=principal.sub,
        version=1,
        created_at=now,
        updated_at=now,
        funding=[
            ProcurementFunding(offer_id=f.offer_id, position=i, amount=f.amount) for i, f in enumerate(data.funding)
        ],
    )
    ProcurementRepository(session).add(p)
    await _emit_procurement(session, events.PROCUREMENT_CREATED, p)
    return p


def _require_state(p: Procurement, *allowed: str) -> None:
    if p.status not in allowed:
        raise ProcurementNotInState(f"The order is {p.status}; this needs it {' or '.join(allowed)}.")


async def order_procurement(session: AsyncSession, principal: Principal, procurement_id: uuid.UUID) -> Procurement:
    """Place the order: spend each pledge's share, all or nothing — never beyond what a pledge holds."""
    p = await get_procurement(session, procurement_id, for_update=True)
    require_in_region(principal, p.region_code, what="The procurement's destination")
    _require_state(p, "draft")
    projection, ledger = ProjectionRepository(session), LedgerRepository(session)
    for f in sorted(p.funding, key=lambda f: f.offer_id):  # one lock order across concurrent orders
        if not await projection.spend(f.offer_id, f.amount):
            pledge = await projection.offer(f.offer_id)
            left = (pledge.amount or 0) - pledge.amount_spent if pledge else 0
            raise PledgeInsufficient(
                f"Pledge {f.offer_id} holds {left} {p.currency} unspent"
                + (f" and is {pledge.status}" if pledge and pledge.status != "open" else "")
                + f"; the order needs {f.amount}.",
                extra={"offer_id": str(f.offer_id), "available": left},
            )
        await ledger.book(
            {
                "ref": f"spent:{p.id}:{f.offer_id}",
                "kind": "spent",
                "amount": f.amount,
                "currency": p.currency,
                "offer_id": f.offer_id,
                "procurement_id": p.id,
                "region_code": p.region_code,
                "memo": str(p.supplier.get("name", ""))[:200],
            }
        )
    p.status, p.ordered_at = "ordered", utcnow()
    p.version += 1
    await _emit_procurement(session, events.PROCUREMENT_ORDERED, p)
    return p


async def receive_procurement(session: AsyncSession, principal: Principal, procurement_id: uuid.UUID) -> Procurement:
    """The supplier delivered: register the goods in supply as an in-kind offer of the (largest) paying
    pledge's donor, so they are matched and shipped like any lot."""
    p = await get_procurement(session, procurement_id, for_update=True)
    require_in_region(principal, p.region_code, what="The procurement's destination")
    _require_state(p, "ordered")
    main = max(p.funding, key=lambda f: (f.amount, -f.position))
    pledge = await ProjectionRepository(session).offer(main.offer_id)
    if pledge is None:
        raise PledgeUnavailable(f"Pledge {main.offer_id} is no longer known.")
    supplier = p.supplier
    body = {
        "donor_id": str(pledge.donor_id),
        "kind": "in_kind",
        "procurement_id": str(p.id),
        "note": f"采购 / purchased from {supplier.get('name', '')} (procurement {p.id})"[:2000],
        "lots": [
            {
                "item_code": line["item_code"],
                "quantity": line["quantity"],
                **{k: supplier[k] for k in ("lat", "lon", "region_code") if supplier.get(k) is not None},
            }
            for line in p.lines
        ],
        "restrictions": {"region_codes": [p.region_code]} if p.region_code else {},
    }
    client = runtime_of_session(session).client("supply")
    try:
        response = await client.request("POST", "/v1/offers", json=body, idempotency_key=f"procurement-goods-{p.id}")
    except Exception as exc:  # timeouts and connection errors after the client's retries
        raise SupplyUnavailable(f"Registering the goods failed: {exc.__class__.__name__}.") from exc
    if response.status_code != 201:
        raise SupplyUnavailable(f"Supply answered {response.status_code} when registering the goods.")
    p.goods_offer_id = uuid.UUID(response.json()["id"])
    p.status, p.received_at = "received", utcnow()
    p.version += 1
    await _emit_procurement(session, events.PROCUREMENT_RECEIVED, p)
    return p


async def cancel_procurement(
    session: AsyncSession, principal: Principal, procurement_id: uuid.UUID, reason: str | None
) -> Procurement:
    """Cancel a draft, or an order not yet received (its amounts go back to the pledges)."""
    p = await get_procurement(session, procurement_id, for_update=True)
    require_in_region(principal, p.region_code, what="The procurement's destination")
    _require_state(p, "draft", "ordered")
    if p.status == "ordered":
        projection, ledger = ProjectionRepository(session), LedgerRepository(session)
        for f in sorted(p.funding, key=lambda f: f.offer_id):
            await projection.refund(f.offer_id, f.amount)
            await ledger.book(
                {
                    "ref": f"refunded:{p.id}:{f.offer_id}",
                    "kind": "refunded",
                    "amount": f.amount,
                    "currency": p.currency,
                    "offer_id": f.offer_id,
                    "procurement_id": p.id,
                    "region_code": p.region_code,
                    "memo": reason,
                }
            )
    p.status, p.cancelled_at = "cancelled", utcnow()
    if reason:
        p.note = f"{p.note}\n{reason}" if p.note else reason
    p.version += 1
    await _emit_procurement(session, events.PROCUREMENT_CANCELLED, p)
    return p


async def list_ledger(session: AsyncSession, params: PageParams, **filters: Any) -> tuple[list[Any], str | None]:
    return await LedgerRepository(session).search(params, **filters)
