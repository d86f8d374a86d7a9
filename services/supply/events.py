"""Event types the supply service publishes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from shared.events import register_event_type


class DonorData(BaseModel):
    """A donor without contact details."""

    id: uuid.UUID
    org: str
    name: str
    kind: str


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
