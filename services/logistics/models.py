"""Tables of the logistics service (schema `logistics`): shipments with their lines, legs, status history,
proof of delivery and feedback; procurement orders and the ledger; and its projections of sites, needs,
offers and accepted proposals from the other services' streams."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.catalog.follow import catalog_table
from shared.changes import ChangeTracked
from shared.db import TimestampedMixin, VersionedMixin, enum_type, make_kit_tables, new_id, service_metadata
from shared.vocabulary import NeedStatus, OfferStatus, OperationStatus, ShipmentStatus

SCHEMA = "logistics"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


kit = make_kit_tables(Base.metadata)
# Its copy of the living catalog's changes, from the needs service's events (shared.catalog.follow).
catalog = catalog_table(Base.metadata)


class ProcurementStatus(StrEnum):
    draft = "draft"
    ordered = "ordered"
    received = "received"
    cancelled = "cancelled"


class LedgerKind(StrEnum):
    pledged = "pledged"
    pledge_withdrawn = "pledge_withdrawn"
    spent = "spent"
    refunded = "refunded"
    in_kind_offered = "in_kind_offered"
    in_kind_delivered = "in_kind_delivered"
    written_off = "written_off"
    payment_received = "payment_received"
    goods_received = "goods_received"


class DiscrepancyCode(StrEnum):
    """Why a receipt line came short. Damaged, expired and lost units are written off the lot; short,
    refused and other units go back to it. The need line gets every missing unit back either way."""

    short = "short"
    damaged = "damaged"
    expired = "expired"
    lost = "lost"
    refused = "refused"
    other = "other"


WRITTEN_OFF = frozenset({DiscrepancyCode.damaged, DiscrepancyCode.expired, DiscrepancyCode.lost})


# --- projections of other services' events -----------------------------------------------------------------


class SiteView(Base):
    """A recipient site as needs.events describe it (never its contact details)."""

    __tablename__ = "site_view"

    site_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    org: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(30))
    region_code: Mapped[str] = mapped_column(String(6))
    version: Mapped[int] = mapped_column(Integer)


class NeedView(Base):
    """A need as needs.events describe it, with when it was first matched and first delivered."""

    __tablename__ = "need_view"

    need_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    site_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    org: Mapped[str] = mapped_column(String(100))
    region_code: Mapped[str] = mapped_column(String(6), index=True)
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[NeedStatus] = mapped_column(enum_type(NeedStatus, length=20))
    beneficiaries: Mapped[int | None] = mapped_column(Integer)
    beneficiary_groups: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict, server_default="{}")
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    operation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    version: Mapped[int] = mapped_column(Integer)
    need_created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    first_matched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OfferView(Base):
    """An offer as supply.events describe it; for cash pledges also what procurement has spent of it."""

    __tablename__ = "offer_view"

    offer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    donor_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    org: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[OfferStatus] = mapped_column(enum_type(OfferStatus, length=20))
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    amount_spent: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    fund_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    operation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    restrictions: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    tracking_ref: Mapped[str] = mapped_column(String(64), unique=True)
    procurement_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    lots: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(Integer)
    offer_created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (CheckConstraint("amount_spent >= 0 AND amount_spent <= COALESCE(amount, 0)", name="spend"),)


class DonorView(Base):
    """A donor as supply.events describe it: whose it is and the name it chose to be shown publicly under (its
    own name and contact details are never copied here)."""

    __tablename__ = "donor_view"

    donor_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    org: Mapped[str] = mapped_column(String(100), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    public_name: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)


class TrackEntry(Base):
    """One step of an offer's public timeline learned from another service's event (keyed by the event id)."""

    __tablename__ = "track_entry"

    event_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    offer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(30))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)


class AcceptedProposal(Base):
    """An accepted proposal (matching.events): what may be shipped, and how much of it is planned already."""

    __tablename__ = "accepted_proposal"

    proposal_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    need_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    need_line_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    lot_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    offer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    item_code: Mapped[str] = mapped_column(String(100))
    site_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    destination_org: Mapped[str] = mapped_column(String(100))
    offer_org: Mapped[str | None] = mapped_column(String(100))
    region_code: Mapped[str] = mapped_column(String(6))
    origin: Mapped[dict[str, Any]] = mapped_column(JSONB)
    quantity: Mapped[int] = mapped_column(Integer)  # in the need line's unit
    # What physically moves, of the lot's item (`item_code`) in its unit: differs from `quantity` for a converted
    # substitute (2 barrels of 18.9 L are 8 bottles of 5 L). None: the same as `quantity`.
    lot_quantity: Mapped[int | None] = mapped_column(Integer)
    quantity_planned: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # the line's unit
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (CheckConstraint("quantity_planned >= 0 AND quantity_planned <= quantity", name="planned"),)

    def lot_units(self, planned: int) -> int:
        """Lot units that carry the first `planned` line units: the whole lot quantity for the whole proposal,
        else its share rounded up (as matching reserved them), so the chunks of a proposal add up exactly."""
        if self.lot_quantity is None or self.quantity == 0:
            return planned
        if planned >= self.quantity:
            return self.lot_quantity
        return -(-planned * self.lot_quantity // self.quantity)


# --- shipments ---------------------------------------------------------------------------------------------


class Shipment(ChangeTracked, TimestampedMixin, VersionedMixin, Base):
    __tablename__ = "shipment"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    origin: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # Accepted lines from one origin to one site join a planned automatic shipment with the same key.
    origin_key: Mapped[str] = mapped_column(String(200))
    origin_org: Mapped[str | None] = mapped_column(String(100), index=True)
    destination_site_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    destination_org: Mapped[str] = mapped_column(String(100), index=True)
    region_code: Mapped[str] = mapped_column(String(6), index=True)
    carrier: Mapped[str | None] = mapped_column(String(200))
    # The organisation of the carrier assigned to it: its logistics tokens may record the receipt.
    carrier_org: Mapped[str | None] = mapped_column(String(100))
    # A partner's confirmed claim (needs) this shipment carries out: the partner's own goods, no supply lot.
    claim_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), unique=True)
    legs: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    status: Mapped[ShipmentStatus] = mapped_column(enum_type(ShipmentStatus, length=30), index=True)
    auto: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)
    handover_pin: Mapped[str] = mapped_column(String(12))
    pin_failures: Mapped[int] = mapped_column(Integer, default=0)
    pin_locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))
    picked_up_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)

    lines: Mapped[list[ShipmentLine]] = relationship(
        back_populates="shipment", lazy="raise", order_by="ShipmentLine.position", cascade="all, delete-orphan"
    )
    history: Mapped[list[ShipmentUpdate]] = relationship(
        lazy="raise", order_by="ShipmentUpdate.at", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index(None, "created_at", "id"),
        Index(None, "origin_key", "destination_site_id", postgresql_where="status = 'planned' AND auto"),
    )


class ShipmentLine(Base):
    __tablename__ = "shipment_line"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    shipment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("shipment.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    proposal_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    need_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    need_line_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    lot_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    offer_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    # The lot's item and units: what physically moves (quantity, received, returned and written off alike).
    item_code: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[int] = mapped_column(Integer)
    # What the line credits its need line, in the line's unit, when that differs (a converted substitute).
    line_quantity: Mapped[int | None] = mapped_column(Integer)
    quantity_received: Mapped[int | None] = mapped_column(Integer)
    quantity_returned: Mapped[int | None] = mapped_column(Integer)
    discrepancy_reason: Mapped[str | None] = mapped_column(Text)
    discrepancy_code: Mapped[DiscrepancyCode | None] = mapped_column(enum_type(DiscrepancyCode, length=20))
    # Of quantity_returned, what is written off the lot (damaged, expired, lost) instead of going back to it.
    quantity_written_off: Mapped[int | None] = mapped_column(Integer)

    shipment: Mapped[Shipment] = relationship(back_populates="lines", lazy="raise")

    @property
    def line_quantity_received(self) -> int | None:
        """What the need line is credited for the units received, in its own unit (None before a receipt)."""
        return None if self.quantity_received is None else self.credited(self.quantity_received)

    def credited(self, lot_units: int) -> int:
        """Line units that `lot_units` of this line count for: lot units × the factor (line_quantity over
        quantity), rounded down and never more than the line's quantity."""
        if self.line_quantity is None:
            return lot_units
        return min(self.line_quantity, lot_units * self.line_quantity // self.quantity)

    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint(
            "quantity_received IS NULL OR (quantity_received >= 0 AND quantity_received <= quantity)",
            name="received_within",
        ),
    )


class ShipmentUpdate(Base):
    """One status change of a shipment, with where it was and what the carrier or site noted."""

    __tablename__ = "shipment_update"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    shipment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("shipment.id", ondelete="CASCADE"), index=True)
    status: Mapped[ShipmentStatus] = mapped_column(enum_type(ShipmentStatus, length=30))
    location: Mapped[str | None] = mapped_column(String(300))
    note: Mapped[str | None] = mapped_column(Text)
    leg: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Feedback(Base):
    __tablename__ = "feedback"

    shipment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("shipment.id", ondelete="CASCADE"), primary_key=True)
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    beneficiaries_served: Mapped[int | None] = mapped_column(Integer)
    served_by_group: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict, server_default="{}")
    photo_urls: Mapped[list[str]] = mapped_column(JSONB, default=list)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),)


# --- procurement and the ledger ------------------------------------------------------------------------------


class Procurement(TimestampedMixin, VersionedMixin, Base):
    __tablename__ = "procurement"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    org: Mapped[str] = mapped_column(String(100), index=True)
    supplier: Mapped[dict[str, Any]] = mapped_column(JSONB)
    region_code: Mapped[str | None] = mapped_column(String(6), index=True)
    need_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    status: Mapped[ProcurementStatus] = mapped_column(enum_type(ProcurementStatus, length=20), index=True)
    note: Mapped[str | None] = mapped_column(Text)
    goods_offer_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    destination: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_by: Mapped[str] = mapped_column(String(200))
    ordered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    funding: Mapped[list[ProcurementFunding]] = relationship(
        lazy="raise", order_by="ProcurementFunding.position", cascade="all, delete-orphan"
    )

    __table_args__ = (Index(None, "created_at", "id"), CheckConstraint("total > 0", name="total_positive"))


class ProcurementFunding(Base):
    """How much of one source pays for a procurement order: a cash pledge (`offer_id`, with its fund when it is
    in one) or a fund's money as a whole (`fund_id` alone). `overhead` is what the fund takes on top of it."""

    __tablename__ = "procurement_funding"

    procurement_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("procurement.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    offer_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    fund_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    overhead: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("offer_id IS NOT NULL OR fund_id IS NOT NULL", name="one_source"),
    )

    @property
    def source(self) -> str:
        """The source in a ledger ref: the pledge's id, or `fund:<id>`."""
        return str(self.offer_id) if self.offer_id is not None else f"fund:{self.fund_id}"


class LedgerEntry(Base):
    """Money in (pledged), money out (spent, refunded) and in-kind value (offered, delivered), in fen.

    `ref` names the fact an entry records, so replaying an event never books it twice."""

    __tablename__ = "ledger_entry"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    ref: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[LedgerKind] = mapped_column(enum_type(LedgerKind, length=30), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    offer_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    procurement_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    shipment_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    region_code: Mapped[str | None] = mapped_column(String(6), index=True)
    item_code: Mapped[str | None] = mapped_column(String(100))
    quantity: Mapped[int | None] = mapped_column(Integer)
    memo: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)

    __table_args__ = (Index(None, "created_at", "id"),)


class LedgerPosting(Base):
    """One leg of a double-entry transaction (the `ledger_entry` it belongs to): an amount of money (fen,
    debit positive) and optionally a quantity of an item, on a named account. Every transaction's postings sum
    to zero per currency and per item; every balance is a sum of postings."""

    __tablename__ = "ledger_posting"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    entry_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_entry.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    account: Mapped[str] = mapped_column(String(120), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    item_code: Mapped[str | None] = mapped_column(String(100))
    quantity: Mapped[int | None] = mapped_column(BigInteger)
    offer_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    fund_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)


# --- relief operations and special funds ----------------------------------------------------------------------


class Operation(TimestampedMixin, VersionedMixin, Base):
    """A relief operation (专项行动): a name, a region scope and dates."""

    __tablename__ = "operation"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    region_code: Mapped[str] = mapped_column(String(6))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[OperationStatus] = mapped_column(enum_type(OperationStatus, length=20))
    created_by: Mapped[str] = mapped_column(String(200))


class Fund(TimestampedMixin, VersionedMixin, Base):
    """A special fund (专项基金): pledges go into it; its restrictions add to theirs; it books `overhead_share`
    of every purchase it pays as overhead. Its figures are sums of ledger postings, never stored here."""

    __tablename__ = "fund"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    operation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("operation.id"), index=True)
    managed_by: Mapped[str] = mapped_column(String(100))
    currency: Mapped[str] = mapped_column(String(3))
    restrictions: Mapped[dict[str, Any]] = mapped_column(JSONB)
    overhead_share: Mapped[Decimal] = mapped_column(Numeric(5, 4))
    spend_pledged: Mapped[bool] = mapped_column(Boolean)
    public: Mapped[bool] = mapped_column(Boolean)
    created_by: Mapped[str] = mapped_column(String(200))

    __table_args__ = (CheckConstraint("overhead_share >= 0 AND overhead_share <= 1", name="overhead_share_range"),)


class ServiceDelivery(Base):
    """What a partner reported delivering on an assignment (projection of partners.events): services carry no
    shipment, so the impact report counts them from here."""

    __tablename__ = "service_delivery"

    assignment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    org: Mapped[str] = mapped_column(String(100), index=True)
    service_code: Mapped[str] = mapped_column(String(100))
    region_code: Mapped[str] = mapped_column(String(6), index=True)
    units_delivered: Mapped[int] = mapped_column(Integer)
    people_served: Mapped[int] = mapped_column(Integer)
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer)
