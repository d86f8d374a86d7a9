"""Events of the logistics service: the types it publishes (shipments, feedback, procurement) and the handlers
it runs for the other services' streams — sites and needs (for destinations, tracking and reports), offers and
pledges (for tracking, procurement and the ledger), and accepted proposals (which become shipments)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.logistics import accounts, ledger, shipments
from services.logistics.accounts_repository import DonorRepository
from services.logistics.models import catalog
from services.logistics.repository import ProjectionRepository
from shared.catalog.follow import CATALOG_TYPES, catalog_handler
from shared.events import CloudEvent, EventType, register_event_type
from shared.runtime import runtime_of_session
from shared.service import Subscription
from shared.vocabulary import NeedStatus, OfferStatus, ShipmentStatus


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
    # Of quantity_returned, what a receipt wrote off (damaged, expired, lost): back to the need, not to the
    # lot (added later; absent in older events, which wrote nothing off).
    quantity_written_off: int | None = None
    discrepancy_code: str | None = None
    # The line's state after the change (added later; absent in older events): what is on its way now, and
    # what arrived. With `quantity_returned` each line can be read alone, whatever the event's type.
    quantity_in_transit: int | None = None
    quantity_delivered: int | None = None
    # The quantities above are of the lot's item, in its unit (what physically moves). These are the same
    # in the need line's unit, as credited to it (added later; absent in older events and null when no line
    # is served: then the lot's quantities count for the line too). They differ for a converted substitute:
    # received lot units × the proposal's factor, rounded down, never more than proposed.
    line_quantity: int | None = None
    line_quantity_in_transit: int | None = None
    line_quantity_delivered: int | None = None
    line_quantity_returned: int | None = None


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
    claim_id: uuid.UUID | None = None  # a partner's claim it carries out (added later)


class FeedbackData(BaseModel):
    shipment_id: uuid.UUID
    destination_site_id: uuid.UUID
    destination_org: str | None = None  # added later, with origin_org: whose shipment it is
    origin_org: str | None = None
    region_code: str
    rating: int
    comment: str | None
    beneficiaries_served: int | None
    served_by_group: dict[str, int] = {}
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


class OperationData(BaseModel):
    """A relief operation's whole state after the change, with its `version`."""

    id: uuid.UUID
    name: str
    region_code: str
    starts_at: datetime
    ends_at: datetime | None
    status: str
    version: int
    created_at: datetime


class FundData(BaseModel):
    """A special fund's whole state after the change, with its `version` (no figures: those are the ledger's)."""

    id: uuid.UUID
    name: str
    operation_id: uuid.UUID | None
    managed_by: str
    currency: str
    restrictions: dict[str, Any]
    overhead_share: float
    spend_pledged: bool
    public: bool
    version: int
    created_at: datetime


OPERATION_CREATED = register_event_type(
    "reliefhub.logistics.operation.created", "A relief operation (专项行动) was set up.", OperationData
)
OPERATION_UPDATED = register_event_type(
    "reliefhub.logistics.operation.updated",
    "A relief operation's name, scope or dates changed, or it was closed.",
    OperationData,
)
FUND_CREATED = register_event_type(
    "reliefhub.logistics.fund.created", "A special fund (专项基金) was set up; pledges may go into it.", FundData
)
FUND_UPDATED = register_event_type(
    "reliefhub.logistics.fund.updated",
    "A special fund's name, restrictions, overhead share or flags changed.",
    FundData,
)
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

SHIPMENT_STATUS_EVENTS: dict[ShipmentStatus, EventType] = {
    ShipmentStatus.picked_up: SHIPMENT_PICKED_UP,
    ShipmentStatus.in_transit: SHIPMENT_IN_TRANSIT,
    ShipmentStatus.delivered: SHIPMENT_DELIVERED,
    ShipmentStatus.received: SHIPMENT_RECEIVED,
    ShipmentStatus.received_with_problem: SHIPMENT_RECEIVED,
    ShipmentStatus.not_received: SHIPMENT_NOT_RECEIVED,
    ShipmentStatus.cancelled: SHIPMENT_CANCELLED,
}


# --- handlers of the other services' events -------------------------------------------------------------------

SYSTEM = "system:logistics"


class NotProjectedYet(Exception):
    """An event that refers to something this service has not heard of yet: retried after redelivery."""


def _ts(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


async def on_need_event(session: AsyncSession, event: CloudEvent) -> None:
    """needs.events → site_view and need_view, each guarded by its version."""
    d, repo = event.data, ProjectionRepository(session)
    if event.type.startswith("reliefhub.needs.site."):
        await repo.upsert_site(
            {
                "site_id": uuid.UUID(d["id"]),
                "org": d["org"],
                "name": d["name"],
                "kind": d["kind"],
                "region_code": d["region_code"],
                "version": int(d["version"]),
            }
        )
    elif event.type.startswith("reliefhub.needs.need."):
        await repo.upsert_need(
            {
                "need_id": uuid.UUID(d["id"]),
                "site_id": uuid.UUID(d["site_id"]),
                "org": d["org"],
                "region_code": d["region_code"],
                "title": d["title"],
                "status": NeedStatus(d["status"]),
                "beneficiaries": d.get("beneficiaries"),
                "beneficiary_groups": d.get("beneficiary_groups") or {},
                "lines": [
                    {
                        "id": line["id"],
                        "item_code": line["item_code"],
                        "quantity": int(line["quantity"]),
                        "quantity_delivered": int(line.get("quantity_delivered") or 0),
                    }
                    for line in d["lines"]
                ],
                "operation_id": uuid.UUID(d["operation_id"]) if d.get("operation_id") else None,
                "version": int(d["version"]),
                "need_created_at": _ts(d["created_at"]),
            }
        )
        await repo.derive_need_times(uuid.UUID(d["id"]))


async def _project_offer(repo: ProjectionRepository, offer_id: uuid.UUID, d: dict[str, Any]) -> None:
    lots = [
        {
            "id": lot["id"],
            "item_code": lot["item_code"],
            "quantity": int(lot["quantity"]),
            "unit": lot["unit"],
            "region_code": lot.get("region_code"),
            "verification": lot["verification"],
        }
        for lot in d["lots"]
    ]
    await repo.upsert_offer(
        {
            "offer_id": offer_id,
            "donor_id": uuid.UUID(d["donor_id"]),
            "org": d["org"],
            "kind": d["kind"],
            "status": OfferStatus(d["status"]),
            "amount": d.get("amount"),
            "currency": d.get("currency"),
            "tracking_ref": d["tracking_ref"],
            "procurement_id": uuid.UUID(d["procurement_id"]) if d.get("procurement_id") else None,
            "restrictions": d.get("restrictions") or {},
            "operation_id": uuid.UUID(d["operation_id"]) if d.get("operation_id") else None,
            "fund_id": uuid.UUID(d["fund_id"]) if d.get("fund_id") else None,
            "lots": lots,
            "version": int(d["version"]),
            "offer_created_at": _ts(d["created_at"]),
        }
    )


async def _still_owed(session: AsyncSession, offer_id: uuid.UUID) -> int:
    """What a withdrawn pledge no longer owes: what it has not paid, less what was spent of it beyond what it paid
    (a fund that may spend pledges spent it; the donor still owes that part). Money already received stays."""
    books = (await accounts.pledge_figures(session, [offer_id]))[offer_id]
    owed = books.pledged - books.received
    return max(0, min(owed, owed + books.balance))


async def _book_offer(session: AsyncSession, event: CloudEvent, offer_id: uuid.UUID) -> None:
    """Pledges in, in-kind value offered, and what a withdrawn pledge still held."""
    d = event.data
    if event.type == "reliefhub.supply.offer.created":
        created_at = _ts(d["created_at"]) or event.time
        fund_id = uuid.UUID(d["fund_id"]) if d.get("fund_id") else None
        if d["kind"] == "cash":
            await ledger.book_pledged(session, offer_id, int(d["amount"]), d["currency"], created_at, fund_id)
        elif d.get("procurement_id"):  # bought goods: their money was booked as spent already
            await ledger.book_goods_purchased(session, offer_id, uuid.UUID(d["procurement_id"]), d["lots"])
        else:
            await ledger.book_in_kind_offered(session, offer_id, d["lots"], created_at)
    elif event.type == "reliefhub.supply.offer.withdrawn" and d["kind"] == "cash":
        pledge = await ProjectionRepository(session).offer(offer_id)
        fund = pledge.fund_id if pledge else None
        await ledger.book_pledge_withdrawn(session, offer_id, await _still_owed(session, offer_id), d["currency"], fund)


async def _track_offer(repo: ProjectionRepository, event: CloudEvent, offer_id: uuid.UUID) -> None:
    if event.type not in ("reliefhub.supply.offer.created", "reliefhub.supply.offer.withdrawn"):
        return
    d = event.data
    kind = "offered" if event.type.endswith("created") else "withdrawn"
    await repo.add_track(
        {
            "event_id": event.id,
            "offer_id": offer_id,
            "at": _ts(d["created_at"]) if kind == "offered" else event.time,
            "kind": kind,
            "data": {"procurement_id": d.get("procurement_id")},
        }
    )


async def _track_verified(repo: ProjectionRepository, event: CloudEvent) -> None:
    d = event.data
    await repo.add_track(
        {
            "event_id": event.id,
            "offer_id": uuid.UUID(d["offer_id"]),
            "at": event.time,
            "kind": "verified",
            "data": {
                "group": d["group"],
                "verdict": d["verdict"],
                "items": [{"item_code": lot["item_code"], "quantity": lot["quantity"]} for lot in d["lots"]],
            },
        }
    )


async def on_supply_event(session: AsyncSession, event: CloudEvent) -> None:
    """supply.events → donor_view, offer_view, the offer's public timeline and the ledger (pledges in, in-kind
    value)."""
    repo = ProjectionRepository(session)
    if event.type == "reliefhub.supply.donor.created":
        d = event.data
        await DonorRepository(session).upsert_donor(
            {
                "donor_id": uuid.UUID(d["id"]),
                "org": d["org"],
                "kind": d["kind"],
                "public_name": d.get("public_name"),
                "version": int(d.get("version") or 1),
            }
        )
    elif event.type.startswith("reliefhub.supply.offer."):
        offer_id = uuid.UUID(event.data["id"])
        await _project_offer(repo, offer_id, event.data)
        await _book_offer(session, event, offer_id)
        await _track_offer(repo, event, offer_id)
    elif event.type == "reliefhub.supply.lot.verified":
        await _track_verified(repo, event)
    elif event.type == "reliefhub.supply.payment.recorded":
        await _book_payment(session, event)


async def _book_payment(session: AsyncSession, event: CloudEvent) -> None:
    """Money received against a pledge, into its fund (the event's, else the pledge's as logistics knows it)."""
    d = event.data
    offer_id = uuid.UUID(d["offer_id"])
    fund_id = d.get("fund_id")
    if fund_id is None:
        pledge = await ProjectionRepository(session).offer(offer_id)
        if pledge is None:
            raise NotProjectedYet(f"pledge {offer_id} not projected yet")
        fund_id = pledge.fund_id
    await ledger.book_payment(
        session,
        uuid.UUID(d["id"]),
        offer_id,
        int(d["amount"]),
        d["currency"],
        fund_id=uuid.UUID(str(fund_id)) if fund_id else None,
        reference=d.get("reference"),
        at=_ts(d.get("received_at")) or event.time,
    )


async def on_matching_event(session: AsyncSession, event: CloudEvent) -> None:
    """matching.events → accepted proposals, which join a planned shipment of their route (unless automatic
    shipments are switched off), and the donor's timeline."""
    if event.type != "reliefhub.matching.proposal.accepted" or event.data.get("lot_id") is None:
        return  # a partner's capacity (a service) ships nothing
    d, repo = event.data, ProjectionRepository(session)
    need_id = uuid.UUID(d["need_id"])
    site_id, need_org = d.get("site_id"), d.get("need_org")
    if site_id is None or need_org is None:  # events from before these fields existed
        need = await repo.need(need_id)
        if need is None:
            raise NotProjectedYet(f"need {need_id} not projected yet")
        site_id, need_org = str(need.site_id), need.org
    decided_at = _ts(d.get("decided_at")) or event.time
    proposal = await repo.add_accepted(
        {
            "proposal_id": uuid.UUID(d["id"]),
            "need_id": need_id,
            "need_line_id": uuid.UUID(d["need_line_id"]),
            "lot_id": uuid.UUID(d["lot_id"]),
            "offer_id": uuid.UUID(d["offer_id"]),
            "item_code": d["lot_item_code"],
            "site_id": uuid.UUID(site_id),
            "destination_org": need_org,
            "offer_org": d.get("offer_org"),
            "region_code": d["region_code"],
            "origin": d.get("origin") or {},
            "quantity": int(d["quantity"]),
            "lot_quantity": int(d["lot_quantity"]) if d.get("lot_quantity") is not None else None,
            "quantity_planned": 0,
            "accepted_at": decided_at,
        }
    )
    if proposal is None:
        return  # seen before
    await repo.add_track(
        {
            "event_id": event.id,
            "offer_id": proposal.offer_id,
            "at": decided_at,
            "kind": "allocated",
            "data": {
                "site_id": site_id,
                "need_id": str(need_id),
                "item_code": proposal.item_code,
                "quantity": proposal.lot_units(proposal.quantity),
            },
        }
    )
    await repo.mark_need_times([need_id], "first_matched_at", decided_at or event.time)
    if runtime_of_session(session).settings.logistics_auto_shipments:
        await shipments.plan_accepted(session, proposal, SYSTEM)


async def on_partners_event(session: AsyncSession, event: CloudEvent) -> None:
    """partners.events → what partners reported delivering on assignments (newest assignment version kept)."""
    if event.type != "reliefhub.partners.assignment.reported":
        return
    d = event.data
    await ProjectionRepository(session).upsert_service_delivery(
        {
            "assignment_id": uuid.UUID(d["id"]),
            "org": d["org"],
            "service_code": d["service_code"],
            "region_code": d["region_code"],
            "units_delivered": int(d["units_delivered"] or 0),
            "people_served": int(d["people_served"] or 0),
            "reported_at": _ts(d.get("reported_at")) or event.time,
            "version": int(d["version"]),
        }
    )


SUBSCRIPTIONS = [
    Subscription(
        stream="needs.events", group="logistics-catalog", handler=catalog_handler(catalog), types=CATALOG_TYPES
    ),
    Subscription(stream="needs.events", group="logistics-projection", handler=on_need_event),
    Subscription(
        stream="supply.events",
        group="logistics-projection",
        handler=on_supply_event,
        types=(
            "reliefhub.supply.donor.created",
            "reliefhub.supply.offer.",
            "reliefhub.supply.lot.verified",
            "reliefhub.supply.payment.recorded",
        ),
    ),
    Subscription(
        stream="matching.events",
        group="logistics-shipments",
        handler=on_matching_event,
        types=("reliefhub.matching.proposal.accepted",),
    ),
    Subscription(
        stream="partners.events",
        group="logistics-services",
        handler=on_partners_event,
        types=("reliefhub.partners.assignment.reported",),
    ),
]
