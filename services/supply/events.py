"""Event types the supply service publishes, and the handler it runs for the logistics stream (shipped,
delivered and returned quantities of its lots)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.supply.models import Lot, LotShipment, Offer, Reservation
from services.supply.repository import LotShipmentRepository, OfferRepository
from shared.db import utcnow
from shared.events import CloudEvent, publish, register_event_type
from shared.vocabulary import ReservationStatus


class DonorData(BaseModel):
    """A donor without contact details."""

    id: uuid.UUID
    org: str
    name: str
    kind: str
    version: int = 1  # added later; absent in older events
    public_name: str | None = None  # the name public accounts may show (added later; absent in older events)


class LotData(BaseModel):
    id: uuid.UUID
    offer_id: uuid.UUID
    item_code: str
    quantity: int
    unit: str
    lat: float | None
    lon: float | None
    region_code: str | None
    available_from: datetime | None
    expires_at: datetime | None
    condition: str
    quantity_reserved: int
    quantity_shipped: int
    quantity_delivered: int = 0
    quantity_written_off: int = 0  # never available again (added later; absent in older events)
    check_by: str | None
    verification: str
    version: int


class OfferData(BaseModel):
    """An offer's full state after the change. `tracking_ref` is the SHA-256 of the donor's tracking code."""

    id: uuid.UUID
    donor_id: uuid.UUID
    org: str
    kind: str
    amount: int | None
    currency: str | None
    restrictions: dict[str, Any]
    status: str
    tracking_ref: str
    procurement_id: uuid.UUID | None = None
    origin_country: str | None = None
    note: str | None = None
    customs: dict[str, Any] | None = None
    lots: list[LotData]
    version: int
    created_at: datetime
    reason: str | None = None
    operation_id: uuid.UUID | None = None  # the relief operation (added later; absent in older events)
    fund_id: uuid.UUID | None = None  # a cash pledge's special fund (added later; absent in older events)


class PaymentData(BaseModel):
    """Money received against a cash pledge: `amount` in fen of the pledge's `currency`; `reference` is the
    bank or receipt reference, unique per pledge. `amount_received` is the pledge's total received so far
    (this payment included), `pledged` what the pledge promised."""

    id: uuid.UUID
    offer_id: uuid.UUID
    amount: int
    currency: str
    received_at: datetime
    reference: str
    fund_id: uuid.UUID | None
    operation_id: uuid.UUID | None = None
    donor_id: uuid.UUID | None = None
    pledged: int | None = None
    amount_received: int | None = None


class LotVerifiedData(BaseModel):
    offer_id: uuid.UUID
    group: str
    verdict: str
    notes: str | None
    lots: list[LotData]


class ReservationData(BaseModel):
    id: uuid.UUID
    lot_id: uuid.UUID
    offer_id: uuid.UUID
    item_code: str
    quantity: int
    reference: str
    status: str
    expires_at: datetime | None
    lot_quantity: int
    lot_quantity_reserved: int
    lot_version: int | None = None  # orders a lot's reservation events (added later; absent in older events)


DONOR_CREATED = register_event_type("reliefhub.supply.donor.created", "A donor was registered.", DonorData)
OFFER_CREATED = register_event_type(
    "reliefhub.supply.offer.created", "An offer (in-kind lots or a cash pledge) was registered.", OfferData
)
OFFER_UPDATED = register_event_type(
    "reliefhub.supply.offer.updated", "An offer's restrictions or note changed.", OfferData
)
OFFER_WITHDRAWN = register_event_type(
    "reliefhub.supply.offer.withdrawn", "The donor withdrew an offer; its lots take no new reservations.", OfferData
)
OFFER_CUSTOMS_DECIDED = register_event_type(
    "reliefhub.supply.offer.customs_decided",
    "The customs group decided on an offer from abroad (see customs): cleared lots await their check or become "
    "available, refused ones are rejected.",
    OfferData,
)
LOTS_VERIFIED = register_event_type(
    "reliefhub.supply.lot.verified",
    "A working group gave its verdict on lots it must check; verified lots become available.",
    LotVerifiedData,
)
OFFER_PROGRESSED = register_event_type(
    "reliefhub.supply.offer.progressed",
    "Shipped or delivered quantities of an offer's lots changed; what came back from a shipment is available again.",
    OfferData,
)
PAYMENT_RECORDED = register_event_type(
    "reliefhub.supply.payment.recorded",
    "Money was received against a cash pledge (coordinators or the fundraising group recorded it).",
    PaymentData,
)
RESERVATION_CREATED = register_event_type(
    "reliefhub.supply.reservation.created", "Quantity of a lot was reserved.", ReservationData
)
RESERVATION_RELEASED = register_event_type(
    "reliefhub.supply.reservation.released",
    "A reservation was released; its quantity is available again.",
    ReservationData,
)
RESERVATION_EXPIRED = register_event_type(
    "reliefhub.supply.reservation.expired",
    "A reservation's hold ran out and its quantity was released.",
    ReservationData,
)


# --- payloads ---------------------------------------------------------------------------------------------


def offer_data(offer: Offer, reason: str | None = None) -> OfferData:
    return OfferData(
        id=offer.id,
        donor_id=offer.donor_id,
        org=offer.org,
        kind=offer.kind,
        amount=offer.amount,
        currency=offer.currency,
        restrictions=offer.restrictions,
        status=offer.status,
        tracking_ref=offer.tracking_ref,
        procurement_id=offer.procurement_id,
        origin_country=offer.origin_country,
        note=offer.note,
        customs=offer.customs,
        version=offer.version,
        created_at=offer.created_at,
        reason=reason,
        operation_id=offer.operation_id,
        fund_id=offer.fund_id,
        lots=[LotData.model_validate(lot, from_attributes=True) for lot in offer.lots],
    )


def reservation_data(res: Reservation, lot: Lot) -> ReservationData:
    return ReservationData(
        id=res.id,
        lot_id=lot.id,
        offer_id=lot.offer_id,
        item_code=lot.item_code,
        quantity=res.quantity,
        reference=res.reference,
        status=res.status,
        expires_at=res.expires_at,
        lot_quantity=lot.quantity,
        lot_quantity_reserved=lot.quantity_reserved,
        lot_version=lot.version,
    )


# --- shipments (logistics.events) ----------------------------------------------------------------------------


# Picked up, moving, or handed over and not yet confirmed: what older shipment events leave implicit.
_ON_THE_WAY = frozenset({"picked_up", "in_transit", "delivered"})


async def on_logistics_event(session: AsyncSession, event: CloudEvent) -> None:
    """logistics.events → shipped and delivered quantities per lot. The newest version seen of each shipment
    line is kept; a lot's quantities are sums over its lines, so the order events arrive in does not matter.
    What a shipment returns (came short, not received, cancelled before pick-up) leaves its reservation and
    the lot, and is available again: each line gives back what it returned beyond what it gave back before.
    What a receipt wrote off (damaged, expired, lost) leaves the reservation too but is counted as written
    off, never available again: the first units a line gives back are its written-off ones."""
    if not event.type.startswith("reliefhub.logistics.shipment."):
        return
    progress = LotShipmentRepository(session)
    changed = await progress.record(_shipment_lines(event.data))
    if not changed:
        return  # late or repeated: nothing newer than what was seen
    # Lock order as in reserve and release: reservations, then lots.
    given = await _give_back_returns(progress, changed)
    await session.flush()  # what each line gave back counts in the lots' written-off totals
    offers = await _sum_up_lots(progress, sorted({row.lot_id for row in changed}), given)
    await session.flush()
    for offer_id in sorted(offers):
        offer = await OfferRepository(session).get_with_lots(offer_id)
        assert offer is not None  # the lot's offer: a foreign key
        await publish(session, OFFER_PROGRESSED, offer_data(offer), subject=str(offer.id))


def _shipment_lines(d: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of lot_shipment a shipment event carries: one per line shipped from a lot."""
    status, version = d["status"], int(d["version"])
    rows = []
    for line in d["lines"]:
        if not line.get("lot_id"):
            continue
        in_transit, delivered = line.get("quantity_in_transit"), line.get("quantity_delivered")
        if in_transit is None:  # an event from before these fields existed
            in_transit = line["quantity"] if status in _ON_THE_WAY else 0
            delivered = line.get("quantity_received") or 0
        rows.append(
            {
                "shipment_line_id": uuid.UUID(line["id"]),
                "shipment_id": uuid.UUID(d["id"]),
                "lot_id": uuid.UUID(line["lot_id"]),
                "reference": str(line["proposal_id"]) if line.get("proposal_id") else None,
                "quantity_in_transit": int(in_transit),
                "quantity_delivered": int(delivered or 0),
                "quantity_returned": int(line.get("quantity_returned") or 0),
                "quantity_written_off": int(line.get("quantity_written_off") or 0),
                "version": version,
            }
        )
    return rows


async def _give_back_returns(progress: LotShipmentRepository, changed: list[LotShipment]) -> dict[uuid.UUID, int]:
    """Shrink the reservations of lines that returned more than they gave back so far; returns what each lot
    gets back."""
    owed = [row for row in changed if row.reference and row.quantity_returned > row.quantity_given_back]
    reservations = await progress.lock_reservations(sorted({str(row.reference) for row in owed}))
    given: dict[uuid.UUID, int] = {}
    for row in owed:
        taken = _give_back(reservations.get(str(row.reference)), row.quantity_returned - row.quantity_given_back)
        row.quantity_given_back += taken
        given[row.lot_id] = given.get(row.lot_id, 0) + taken
    return given


async def _sum_up_lots(
    progress: LotShipmentRepository, lot_ids: list[uuid.UUID], given: dict[uuid.UUID, int]
) -> set[uuid.UUID]:
    """Set each lot's shipped, delivered and written-off quantities to the sums over its shipment lines and
    take what came back off its reserved quantity; returns the offers whose lots changed."""
    lots = await progress.lock_lots(lot_ids)
    totals = await progress.totals(lot_ids)
    offers: set[uuid.UUID] = set()
    for lot in lots:
        shipped, delivered, written_off = totals.get(lot.id, (0, 0, 0))
        reserved = max(0, lot.quantity_reserved - given.get(lot.id, 0))
        new = (
            min(lot.quantity, shipped),
            min(lot.quantity, delivered),
            reserved,
            min(lot.quantity - reserved, written_off),
        )
        if (lot.quantity_shipped, lot.quantity_delivered, lot.quantity_reserved, lot.quantity_written_off) == new:
            continue
        lot.quantity_shipped, lot.quantity_delivered, lot.quantity_reserved, lot.quantity_written_off = new
        lot.version += 1
        offers.add(lot.offer_id)
    return offers


def _give_back(reservation: Reservation | None, quantity: int) -> int:
    """Shrink a shipment line's reservation by `quantity` (releasing it when nothing is left); returns how much
    it gave back to the lot."""
    if reservation is None or reservation.status != ReservationStatus.active:
        return 0
    taken = min(quantity, reservation.quantity)
    if taken >= reservation.quantity:
        reservation.status, reservation.released_at = ReservationStatus.released, utcnow()
    else:
        reservation.quantity -= taken
    return taken
