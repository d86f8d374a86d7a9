"""Tables of the supply service (schema `supply`): donors, offers, lots, reservations and payments, and its
copies of logistics' relief operations and special funds."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    exists,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.catalog.follow import catalog_table
from shared.changes import ChangeTracked
from shared.db import TimestampedMixin, VersionedMixin, enum_type, make_kit_tables, new_id, service_metadata
from shared.operations import OperationViewColumns
from shared.vocabulary import LotVerification, OfferStatus, ReservationStatus

SCHEMA = "supply"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


kit = make_kit_tables(Base.metadata)
# Its copy of the living catalog's changes, from the needs service's events (shared.catalog.follow).
catalog = catalog_table(Base.metadata)


class Donor(TimestampedMixin, VersionedMixin, Base):
    __tablename__ = "donor"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    org: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    public_name: Mapped[str | None] = mapped_column(String(200))
    contact: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class Offer(ChangeTracked, TimestampedMixin, VersionedMixin, Base):
    __tablename__ = "offer"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    donor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("donor.id"), index=True)
    org: Mapped[str] = mapped_column(String(100), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    restrictions: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[OfferStatus] = mapped_column(enum_type(OfferStatus, length=20), default=OfferStatus.open, index=True)
    withdraw_reason: Mapped[str | None] = mapped_column(Text)
    tracking_ref: Mapped[str] = mapped_column(String(64), unique=True)
    # Goods bought with cash pledges: the logistics procurement order they came from.
    procurement_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), unique=True)
    # In-kind goods from abroad (ISO 3166-1 alpha-2 other than CN) wait for customs; `customs` is its decision.
    origin_country: Mapped[str | None] = mapped_column(String(2))
    customs: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # A relief operation and (cash pledges) a special fund of logistics the offer belongs to.
    operation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    fund_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    created_by: Mapped[str] = mapped_column(String(200))

    lots: Mapped[list[Lot]] = relationship(
        back_populates="offer", lazy="raise", order_by="Lot.position", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index(None, "created_at", "id"),
        CheckConstraint("amount IS NULL OR amount > 0", name="amount_positive"),
    )

    @classmethod
    def changed_between(cls, since: int, until: int) -> ColumnElement[bool]:
        """The offer row or one of its lots (reservations and shipments change lots only)."""
        lot_changed = exists().where(Lot.offer_id == cls.id, Lot.changed_between(since, until))
        return super().changed_between(since, until) | lot_changed


class Lot(ChangeTracked, VersionedMixin, Base):
    """Its change_seq comes from the offer's sequence: an offer has changed when it or one of its lots has."""

    __tablename__ = "lot"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    offer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("offer.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    item_code: Mapped[str] = mapped_column(String(100), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit: Mapped[str] = mapped_column(String(20))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    region_code: Mapped[str | None] = mapped_column(String(6))
    available_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    condition: Mapped[str] = mapped_column(String(20), default="new")
    quantity_reserved: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    quantity_shipped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    quantity_delivered: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Units a receipt wrote off (damaged, expired, lost): out of the lot for good, never available again.
    quantity_written_off: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    check_by: Mapped[str | None] = mapped_column(String(50))
    verification: Mapped[LotVerification] = mapped_column(enum_type(LotVerification, length=20))
    verification_notes: Mapped[str | None] = mapped_column(Text)
    verified_by: Mapped[str | None] = mapped_column(String(200))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    offer: Mapped[Offer] = relationship(back_populates="lots", lazy="raise")

    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("quantity_reserved >= 0 AND quantity_reserved <= quantity", name="reserved_within"),
        CheckConstraint("quantity_shipped >= 0 AND quantity_shipped <= quantity", name="shipped_within"),
        CheckConstraint("quantity_delivered >= 0 AND quantity_delivered <= quantity", name="delivered_within"),
        CheckConstraint(
            "quantity_written_off >= 0 AND quantity_reserved + quantity_written_off <= quantity",
            name="written_off_within",
        ),
    )


class Reservation(Base):
    __tablename__ = "reservation"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    lot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("lot.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    reference: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[ReservationStatus] = mapped_column(
        enum_type(ReservationStatus, length=20), default=ReservationStatus.active
    )
    # Whoever made it is (created_by_org, created_by); rows from before the organisation was recorded have
    # none, and only staff may release those.
    created_by: Mapped[str] = mapped_column(String(200))
    created_by_org: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index(None, "expires_at", postgresql_where="status = 'active' AND expires_at IS NOT NULL"),
    )


class LotShipment(Base):
    """A shipment line from a lot (logistics.events) as of the newest shipment version seen: what of it is in
    transit, delivered and given back, and how much of that its reservation has shrunk by already."""

    __tablename__ = "lot_shipment"

    shipment_line_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    shipment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    lot_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    # The reservation's reference: the proposal the line ships.
    reference: Mapped[str | None] = mapped_column(String(200))
    quantity_in_transit: Mapped[int] = mapped_column(Integer)
    quantity_delivered: Mapped[int] = mapped_column(Integer)
    quantity_returned: Mapped[int] = mapped_column(Integer)
    # Of quantity_returned, what the receipt wrote off: it leaves the reservation but not back to the lot.
    quantity_written_off: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    quantity_given_back: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    version: Mapped[int] = mapped_column(Integer)


class Payment(Base):
    """Money received against a cash pledge (amount in fen, when, the bank or receipt reference). The reference
    is unique per pledge, so recording the same payment again records nothing."""

    __tablename__ = "payment"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    offer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("offer.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reference: Mapped[str] = mapped_column(String(200))
    recorded_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint("offer_id", "reference"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )


class OperationView(OperationViewColumns, Base):
    """Logistics' relief operations, newest version seen (shared.operations): what offers may name."""


class FundView(Base):
    """Logistics' special funds (`reliefhub.logistics.fund.*`), newest version seen: what cash pledges may go
    into, and in which currency."""

    __tablename__ = "fund_view"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3))
    operation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    restrictions: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    version: Mapped[int] = mapped_column(Integer)
