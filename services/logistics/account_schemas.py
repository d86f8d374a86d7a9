"""What the donor statement and the public accounts answer: a donor's gifts and where each yuan and unit went;
a relief effort's funds, goods, sites, people served and the donors who chose to be named."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from services.logistics.models import ProcurementStatus
from services.logistics.schemas import GiftKind, GiftStatus, Localized, ReportLevel, TrackItem, TrackSite
from shared.vocabulary import ShipmentStatus


class FundAccount(BaseModel):
    """A special fund's figures, in fen of its currency: sums of the ledger's postings."""

    id: uuid.UUID
    name: str
    raised: int
    received: int
    spent: int
    overhead: int
    balance: int
    currency: str


# --- the donor statement --------------------------------------------------------------------------------------


class StatementPurchase(BaseModel):
    """A purchase the gift paid (part of): its share of the fen and of the goods."""

    procurement_id: uuid.UUID
    status: ProcurementStatus
    supplier: str | None
    currency: str
    order_total: int = Field(description="The whole order, in fen.")
    amount: int = Field(description="What this gift paid of it, in fen.")
    items: list[TrackItem] = Field(description="This gift's share of the goods, in proportion to what it paid.")
    ordered_at: datetime | None
    received_at: datetime | None
    cancelled_at: datetime | None


class StatementLine(BaseModel):
    item: TrackItem
    quantity_received: int | None = Field(description="What the site confirmed on receipt (none before it).")


class StatementShipment(BaseModel):
    """A shipment carrying the gift's goods (its own lots, or the goods its purchases bought): only its lines of
    this gift's goods."""

    shipment_id: uuid.UUID
    status: ShipmentStatus
    site: TrackSite | None
    lines: list[StatementLine]
    picked_up_at: datetime | None
    delivered_at: datetime | None
    received_at: datetime | None


class StatementReceipt(BaseModel):
    """The site's receipt of a shipment: what arrived and what came short."""

    shipment_id: uuid.UUID
    at: datetime
    status: ShipmentStatus
    site: TrackSite | None
    quantity_received: int
    quantity_short: int


class StatementFeedback(BaseModel):
    shipment_id: uuid.UUID
    at: datetime
    site: TrackSite | None
    rating: int
    comment: str | None
    beneficiaries_served: int | None
    served_by_group: dict[str, int]


class StatementGift(BaseModel):
    offer_id: uuid.UUID
    kind: GiftKind
    status: GiftStatus
    created_at: datetime
    fund_id: uuid.UUID | None
    fund: FundAccount | None = Field(description="A pledge's special fund and its figures, which pay for purchases.")
    currency: str | None
    amount_pledged: int | None = Field(description="A cash pledge's amount, in fen.")
    amount_received: int | None = Field(description="Money received against the pledge so far, in fen.")
    amount_spent: int | None = Field(description="What purchases took from the pledge, in fen.")
    items: list[TrackItem] = Field(description="An in-kind gift's goods as offered.")
    purchases: list[StatementPurchase]
    shipments: list[StatementShipment]
    receipts: list[StatementReceipt]
    feedback: list[StatementFeedback]
    quantity_shipped: int
    quantity_received: int
    sites: int = Field(description="Sites that confirmed receiving some of it.")


class MoneyTotal(BaseModel):
    currency: str
    pledged: int
    received: int
    spent: int


class DonorStatement(BaseModel):
    donor_id: uuid.UUID
    org: str
    public_name: str | None
    generated_at: datetime
    money: list[MoneyTotal] = Field(description="Cash gifts summed per currency, in fen.")
    gifts: list[StatementGift]


# --- the public accounts --------------------------------------------------------------------------------------


class GoodsFigures(BaseModel):
    offered: int = Field(description="Units offered in kind (donated, or bought with donations).")
    delivered: int = Field(description="Units carried to sites (delivered, or received and not returned).")
    received: int = Field(description="Units the sites confirmed on receipt.")


class GoodsByCategory(GoodsFigures):
    category: str
    name: Localized


class GoodsByRegion(GoodsFigures):
    level: ReportLevel
    region_code: str


class Goods(BaseModel):
    by_category: list[GoodsByCategory]
    by_region: list[GoodsByRegion] = Field(description="Every province, city and county with any goods.")


class PublicDonor(BaseModel):
    name: str = Field(description="The public name the donor chose; donors without one are never named.")
    gifts: int


class PublicAccounts(BaseModel):
    operation_id: uuid.UUID | None
    generated_at: datetime
    funds: list[FundAccount]
    goods: Goods
    sites_supported: int = Field(description="Sites that confirmed receiving goods.")
    people_served: dict[str, int] = Field(description="People served per beneficiary group, from feedback.")
    donors: list[PublicDonor]
