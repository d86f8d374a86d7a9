"""Schemas of the logistics service: shipments, proof of delivery, feedback, procurement, tracking, reports."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StringConstraints, model_validator

from services.logistics.models import DiscrepancyCode, ProcurementStatus
from shared.vocabulary import (
    BeneficiaryCounts,
    ItemCode,
    Quantity,
    RegionCode,
    RegionPrefix,
    ShipmentStatus,
    SiteKind,
    Timestamp,
)

Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Note = Annotated[str, StringConstraints(max_length=2000)]


class StatusChange(StrEnum):
    """What `POST /v1/shipments/{id}/status` may set; receipt goes through `…/receipt` with the PIN."""

    picked_up = "picked_up"
    in_transit = "in_transit"
    delivered = "delivered"
    not_received = "not_received"
    cancelled = "cancelled"


class Place(BaseModel):
    """Where goods are picked up: a label (warehouse, sub-center), region code and coordinates."""

    model_config = ConfigDict(extra="forbid")

    label: Annotated[str, StringConstraints(max_length=200)] | None = None
    region_code: RegionCode | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None


class Leg(BaseModel):
    """One hop of a shipment, e.g. donor's warehouse → a regional sub-center → the site."""

    model_config = ConfigDict(extra="forbid")

    origin: Text200
    destination: Text200
    carrier: Annotated[str, StringConstraints(max_length=200)] | None = None
    eta: Timestamp | None = None


class ShipmentLineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    proposal_id: uuid.UUID = Field(description="An accepted proposal; its need line and lot are shipped.")
    quantity: Quantity | None = Field(None, description="Defaults to what of the proposal is not planned yet.")


CarrierOrg = Annotated[
    Annotated[str, StringConstraints(min_length=1, max_length=100)] | None,
    Field(
        description="The organisation of the assigned carrier (its tokens' `org`): its logistics tokens may "
        "record the receipt with the PIN the site gives them. Assigned by coordinators."
    ),
]


class ShipmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: Annotated[list[ShipmentLineCreate], Field(min_length=1, max_length=200)]
    origin: Place | None = Field(None, description="Defaults to the first lot's location.")
    carrier: Annotated[str, StringConstraints(max_length=200)] | None = None
    carrier_org: CarrierOrg = None
    legs: Annotated[list[Leg], Field(max_length=20)] = []
    note: Note | None = None


class ShipmentUpdateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    carrier: Annotated[str, StringConstraints(max_length=200)] | None = None
    carrier_org: CarrierOrg = None
    legs: Annotated[list[Leg], Field(max_length=20)] | None = None
    note: Note | None = None


class StatusRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: StatusChange
    location: Annotated[str, StringConstraints(max_length=300)] | None = None
    note: Note | None = None
    leg: Annotated[int, Field(ge=0, lt=20)] | None = Field(None, description="Index of the leg this update is on.")


class Discrepancy(BaseModel):
    """Why a line came short. Damaged, expired and lost units are written off the lot; short, refused and
    other units go back to it. The need line gets every missing unit back either way."""

    model_config = ConfigDict(extra="forbid")

    code: DiscrepancyCode
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] | None = None


class ReceiptLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_code: ItemCode | None = None
    line_id: uuid.UUID | None = Field(None, description="A shipment line; or name the item_code.")
    quantity_received: Annotated[int, Field(ge=0, le=1_000_000_000)]
    discrepancy: Discrepancy | None = None
    discrepancy_reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] | None = Field(
        None, description="Older form of a discrepancy: a reason alone, taken as code `other` with it as the note."
    )

    @model_validator(mode="after")
    def _named(self) -> Self:
        if (self.item_code is None) == (self.line_id is None):
            raise ValueError("name the line by item_code or by line_id (one of them)")
        if self.discrepancy is not None and self.discrepancy_reason is not None:
            raise ValueError("give discrepancy or discrepancy_reason, not both")
        if self.discrepancy is None and self.discrepancy_reason:
            self.discrepancy = Discrepancy(code=DiscrepancyCode.other, note=self.discrepancy_reason)
        return self


class ReceiptRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pin: Annotated[str, StringConstraints(pattern=r"^\d{6}$")]
    lines: Annotated[list[ReceiptLine], Field(min_length=1, max_length=200)]


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Annotated[int, Field(ge=1, le=5)]
    comment: Note | None = None
    beneficiaries_served: Annotated[int, Field(ge=0, le=100_000_000)] | None = None
    served_by_group: BeneficiaryCounts = Field(
        default_factory=dict, description='People served per beneficiary group, e.g. {"elderly": 120}.'
    )
    photo_urls: Annotated[list[HttpUrl], Field(max_length=20)] = []


class Feedback(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    rating: int
    comment: str | None
    beneficiaries_served: int | None
    served_by_group: dict[str, int] = Field(default_factory=dict)
    photo_urls: list[str]
    created_at: datetime


class ShipmentLine(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    proposal_id: uuid.UUID | None
    need_id: uuid.UUID | None
    need_line_id: uuid.UUID | None
    lot_id: uuid.UUID | None
    offer_id: uuid.UUID | None
    item_code: str = Field(description="The lot's item: what physically moves.")
    quantity: int = Field(description="In the lot's unit.")
    line_quantity: int | None = Field(
        None,
        description="What the line credits its need line, in the line's unit, when that differs from `quantity` "
        "(a converted substitute: 8 bottles of 5 L for 2 barrels of 18.9 L); null when it is the same.",
    )
    quantity_received: int | None
    line_quantity_received: int | None = Field(
        None,
        description="What the need line is credited for `quantity_received`, in the line's unit (for a converted "
        "substitute the lot units times the factor, rounded down); null before a receipt.",
    )
    quantity_returned: int | None = Field(
        description="What did not arrive and goes back to the need line (written-off units included)."
    )
    quantity_written_off: int | None = Field(
        description="Of quantity_returned, what is written off the lot (damaged, expired, lost)."
    )
    discrepancy_code: DiscrepancyCode | None
    discrepancy_reason: str | None = Field(description="The discrepancy's note.")


class HistoryEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    status: ShipmentStatus
    location: str | None
    note: str | None
    leg: int | None
    at: datetime


class Shipment(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: ShipmentStatus
    origin: Place
    destination_site_id: uuid.UUID
    destination_org: str
    region_code: str
    carrier: str | None
    carrier_org: str | None
    claim_id: uuid.UUID | None = Field(None, description="The partner's claim it carries out (its own goods).")
    legs: list[Leg]
    lines: list[ShipmentLine]
    auto: bool
    note: str | None
    handover_pin: str | None = Field(None, description="Shown only to the receiving site's frontline users.")
    pin_locked_until: datetime | None
    history: list[HistoryEntry] = []
    feedback: Feedback | None = None
    picked_up_at: datetime | None
    delivered_at: datetime | None
    received_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime


# --- procurement ------------------------------------------------------------------------------------------


class Supplier(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text200
    region_code: RegionCode | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None

    @model_validator(mode="after")
    def _both(self) -> Self:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give both lat and lon, or neither")
        return self


class ProcurementLineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_code: ItemCode
    quantity: Quantity
    unit_price: Annotated[int, Field(gt=0, le=10**10, description="Fen per unit.")]


class FundingCreate(BaseModel):
    """One source of a purchase's money: a cash pledge, or a special fund's money as a whole."""

    model_config = ConfigDict(extra="forbid")

    offer_id: uuid.UUID | None = Field(None, description="A cash pledge (an offer of kind cash).")
    fund_id: uuid.UUID | None = Field(None, description="A special fund; give offer_id or fund_id, not both.")
    amount: Annotated[int, Field(gt=0, le=10**15, description="Fen taken from this source.")]

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.offer_id is None) == (self.fund_id is None):
            raise ValueError("give offer_id or fund_id, not both or neither")
        return self


class ProcurementDestination(BaseModel):
    """Where the purchased goods go: the needs they answer, or a site."""

    model_config = ConfigDict(extra="forbid")

    need_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=50)] | None = None
    site_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.need_ids is None) == (self.site_id is None):
            raise ValueError("give need_ids or site_id, not both or neither")
        if self.need_ids is not None and len(set(self.need_ids)) != len(self.need_ids):
            raise ValueError("name each need once")
        return self


class ProcurementCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    supplier: Supplier
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "CNY"
    lines: Annotated[list[ProcurementLineCreate], Field(min_length=1, max_length=200)]
    funding: Annotated[list[FundingCreate], Field(min_length=1, max_length=50)]
    region_code: RegionPrefix | None = Field(
        None, description="The region the goods are for: they may only be matched to needs there."
    )
    need_id: uuid.UUID | None = Field(
        None, description="Older form of destination {need_ids: [need_id]}; give one of the two, not both."
    )
    destination: ProcurementDestination | None = Field(
        None, description="Where the goods go; every funding pledge's restrictions are checked against it."
    )
    note: Note | None = None

    @model_validator(mode="after")
    def _funded(self) -> Self:
        if self.need_id is not None and self.destination is not None:
            raise ValueError("give destination or need_id, not both")
        total = sum(line.quantity * line.unit_price for line in self.lines)
        funded = sum(f.amount for f in self.funding)
        if total > 10**15:
            raise ValueError("the order's total is too large")
        if funded != total:
            raise ValueError(f"the funding ({funded}) must equal the order's total ({total})")
        if len({(f.offer_id, f.fund_id) for f in self.funding}) != len(self.funding):
            raise ValueError("name each pledge and fund once in funding")
        return self


class ProcurementLine(BaseModel):
    item_code: str
    quantity: int
    unit_price: int
    amount: int


class Funding(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    offer_id: uuid.UUID | None
    fund_id: uuid.UUID | None = Field(None, description="The fund: the one paying, or the pledge's.")
    amount: int
    overhead: int = Field(0, description="The fund's overhead share booked on top of the amount (fen).")


class AttributedItem(BaseModel):
    item_code: str
    quantity: int


class Attribution(BaseModel):
    """One source's share of a purchase's goods, in proportion to the fen it paid."""

    offer_id: uuid.UUID | None
    fund_id: uuid.UUID | None = None
    amount: int
    items: list[AttributedItem]


class Procurement(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    org: str
    status: ProcurementStatus
    supplier: Supplier
    region_code: str | None
    need_id: uuid.UUID | None
    currency: str
    total: int
    lines: list[ProcurementLine]
    funding: list[Funding]
    destination: ProcurementDestination | None = None
    attribution: list[Attribution] = Field(
        default_factory=list, description="Each funding pledge's share of the goods (units and fen)."
    )
    note: str | None
    goods_offer_id: uuid.UUID | None = Field(None, description="The in-kind offer the received goods became.")
    ordered_at: datetime | None
    received_at: datetime | None
    cancelled_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Note | None = None


# --- tracking and reports -----------------------------------------------------------------------------------


class Localized(BaseModel):
    zh: str
    en: str


class TrackItem(BaseModel):
    item_code: str
    name: Localized
    quantity: int
    unit: str
    unit_name: Localized = Field(description="The unit in words, in English singular or plural as the quantity asks.")


class GiftKind(StrEnum):
    in_kind = "in_kind"
    cash = "cash"


class GiftStatus(StrEnum):
    """The offer's status, as supply gives it."""

    open = "open"
    withdrawn = "withdrawn"
    closed = "closed"


class TrackStepKind(StrEnum):
    """What a step of a gift's timeline records (the shipment's statuses among them)."""

    offered = "offered"
    verified = "verified"
    withdrawn = "withdrawn"
    allocated = "allocated"
    procurement_ordered = "procurement_ordered"
    procurement_received = "procurement_received"
    procurement_cancelled = "procurement_cancelled"
    planned = "planned"
    picked_up = "picked_up"
    in_transit = "in_transit"
    delivered = "delivered"
    received = "received"
    received_with_problem = "received_with_problem"
    not_received = "not_received"
    cancelled = "cancelled"
    feedback = "feedback"


class TrackSite(BaseModel):
    """A recipient as the public may see it: the institution's name, kind and region; no person, phone or
    coordinates."""

    name: str
    kind: SiteKind
    region_code: str


class TrackStep(BaseModel):
    at: datetime
    kind: TrackStepKind
    title: Localized
    items: list[TrackItem] = []
    site: TrackSite | None = None
    amount: int | None = None
    location: str | None = Field(None, description="Where the carrier said the goods were (shipment steps).")
    note: str | None = Field(None, description="What the carrier noted at this step (shipment steps).")
    detail: dict[str, Any] = {}


class TrackSummary(BaseModel):
    quantity_offered: int
    quantity_allocated: int
    quantity_shipped: int
    quantity_received: int
    sites: int
    amount_pledged: int | None
    amount_spent: int | None


class Tracking(BaseModel):
    kind: GiftKind
    status: GiftStatus
    created_at: datetime
    currency: str | None
    items: list[TrackItem]
    summary: TrackSummary
    timeline: list[TrackStep]
    time_zone: str = Field(description="IANA time zone of the recipient site (the page shows its times in it).")


class ReportLevel(StrEnum):
    province = "province"
    city = "city"
    county = "county"


LEVEL_DIGITS = {ReportLevel.province: 2, ReportLevel.city: 4, ReportLevel.county: 6}


class ImpactFigures(BaseModel):
    money_spent: int = Field(description="Fen paid to suppliers for this region's orders (net of refunds).")
    goods_value_delivered: int = Field(description="Catalog value (fen) of what sites confirmed receiving.")
    sites_supported: int = Field(description="Sites that confirmed receiving at least one shipment.")
    beneficiaries: int = Field(description="Beneficiaries served, as the sites reported in feedback.")
    needs: int
    quantity_needed: int
    quantity_delivered: int
    fill_rate: float = Field(description="Delivered over needed quantity, per line capped at what was needed.")
    time_to_match_seconds_p50: float | None = Field(description="From a need's posting to its first accepted proposal.")
    time_to_match_seconds_p90: float | None
    time_to_delivery_seconds_p50: float | None = Field(
        description="From a need's posting to the first receipt of any of it."
    )
    time_to_delivery_seconds_p90: float | None
    time_to_match_hours_p50: float | None = Field(description="The same in hours, rounded to 0.01 (kept for clients).")
    time_to_match_hours_p90: float | None
    time_to_delivery_hours_p50: float | None
    time_to_delivery_hours_p90: float | None


class RegionImpact(ImpactFigures):
    region_code: str


class ServiceImpact(BaseModel):
    """Services partners delivered on their assignments (psychological support, interpreting, drivers…)."""

    assignments_done: int
    units_delivered: int = Field(description="Units reported delivered (sessions, hours, runs…).")
    people_served: int


class Impact(BaseModel):
    region_code: str | None
    level: ReportLevel
    since: datetime | None
    until: datetime | None
    currency: str
    money_raised: int = Field(description="Cash pledged (fen), net of withdrawn unspent pledges.")
    goods_value_offered: int = Field(description="Catalog value (fen) of in-kind gifts offered.")
    totals: ImpactFigures
    people_served_by_group: dict[str, int] = Field(
        description="People served per beneficiary group, as the sites reported in feedback (in the window and region)."
    )
    regions: list[RegionImpact]
    services: ServiceImpact = Field(description="What partners reported delivering on service assignments.")
