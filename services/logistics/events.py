"""Event types the logistics service publishes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from shared.events import register_event_type


class ShipmentLineData(BaseModel):
    id: uuid.UUID
    proposal_id: uuid.UUID | None
    need_id: uuid.UUID | None
    need_line_id: uuid.UUID | None
    lot_id: uuid.UUID | None
    offer_id: uuid.UUID | None
    item_code: str
    quantity: int
    quantity_received: int | None
    quantity_returned: int | None  # what goes back to the need and the lot (short, not received, cancelled)
    discrepancy_reason: str | None
    # The line's state after the change (added later; absent in older events): what is on its way now, and
    # what arrived. With `quantity_returned` each line can be read alone, whatever the event's type.
    quantity_in_transit: int | None = None
    quantity_delivered: int | None = None


class ShipmentData(BaseModel):
    """A shipment's whole state after the change, with its `version` (one more on every change). Each line
    says what is in transit, delivered (`quantity_received`) and given back to its need and lot
    (`quantity_returned`: short, not received, cancelled) now, so a consumer keeps per line the state of the
    newest version it has seen instead of applying the event type as a step: events may arrive late or twice."""

    id: uuid.UUID
    status: str
    origin: dict[str, Any]
    destination_site_id: uuid.UUID
    destination_org: str
    region_code: str
    carrier: str | None
    lines: list[ShipmentLineData]
    version: int
    created_at: datetime
    location: str | None = None
    note: str | None = None
    origin_org: str | None = None  # the donor organisation of the goods (added later)


class FeedbackData(BaseModel):
    shipment_id: uuid.UUID
    destination_site_id: uuid.UUID
    destination_org: str | None = None  # added later, with origin_org: whose shipment it is
    origin_org: str | None = None
    region_code: str
    rating: int
    comment: str | None
    beneficiaries_served: int | None
    photo_urls: list[str]


class ProcurementData(BaseModel):
    id: uuid.UUID
    org: str
    status: str
    supplier: dict[str, Any]
    region_code: str | None
    currency: str
    total: int
    lines: list[dict[str, Any]]
    funding: list[dict[str, Any]]
    goods_offer_id: uuid.UUID | None
    version: int


SHIPMENT_CREATED = register_event_type(
    "reliefhub.logistics.shipment.created",
    "A shipment was planned (from accepted proposals, or by hand).",
    ShipmentData,
)
SHIPMENT_UPDATED = register_event_type(
    "reliefhub.logistics.shipment.updated",
    "A planned shipment took more lines, or its carrier, legs or note changed.",
    ShipmentData,
)
SHIPMENT_PICKED_UP = register_event_type(
    "reliefhub.logistics.shipment.picked_up", "The carrier picked the goods up; they are in transit.", ShipmentData
)
SHIPMENT_IN_TRANSIT = register_event_type(
    "reliefhub.logistics.shipment.in_transit",
    "A shipment moved on (location and note on the update, e.g. through a regional sub-center).",
    ShipmentData,
)
SHIPMENT_DELIVERED = register_event_type(
    "reliefhub.logistics.shipment.delivered", "The carrier reports the goods handed over at the site.", ShipmentData
)
SHIPMENT_RECEIVED = register_event_type(
    "reliefhub.logistics.shipment.received",
    "The site confirmed receipt with the handover PIN (status received, or received_with_problem when a line "
    "came short; the shortfall goes back to its need and lot).",
    ShipmentData,
)
SHIPMENT_NOT_RECEIVED = register_event_type(
    "reliefhub.logistics.shipment.not_received",
    "Nothing arrived; every line goes back to its need and lot.",
    ShipmentData,
)
SHIPMENT_CANCELLED = register_event_type(
    "reliefhub.logistics.shipment.cancelled",
    "A shipment was cancelled before pick-up; its lines go back to their needs and lots.",
    ShipmentData,
)
FEEDBACK_RECEIVED = register_event_type(
    "reliefhub.logistics.feedback.received",
    "The receiving site gave feedback on a shipment (rating, comment, beneficiaries served).",
    FeedbackData,
)
PROCUREMENT_CREATED = register_event_type(
    "reliefhub.logistics.procurement.created", "A procurement order was drafted against cash pledges.", ProcurementData
)
PROCUREMENT_ORDERED = register_event_type(
    "reliefhub.logistics.procurement.ordered",
    "A procurement order was placed; its amounts are spent from the pledges.",
    ProcurementData,
)
PROCUREMENT_RECEIVED = register_event_type(
    "reliefhub.logistics.procurement.received",
    "The supplier delivered; the goods were registered as an in-kind offer that ships like any lot.",
    ProcurementData,
)
PROCUREMENT_CANCELLED = register_event_type(
    "reliefhub.logistics.procurement.cancelled",
    "A procurement order was cancelled; an ordered one gives its amounts back to the pledges.",
    ProcurementData,
)

SHIPMENT_STATUS_EVENTS = {
    "picked_up": SHIPMENT_PICKED_UP,
    "in_transit": SHIPMENT_IN_TRANSIT,
    "delivered": SHIPMENT_DELIVERED,
    "received": SHIPMENT_RECEIVED,
    "received_with_problem": SHIPMENT_RECEIVED,
    "not_received": SHIPMENT_NOT_RECEIVED,
    "cancelled": SHIPMENT_CANCELLED,
}
