"""Tables of the needs service (schema `needs`): recipient sites, needs and their lines."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, Float, ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from shared.catalog.follow import catalog_table
from shared.changes import ChangeTracked
from shared.db import TimestampedMixin, VersionedMixin, enum_type, make_kit_tables, new_id, service_metadata
from shared.operations import OperationViewColumns
from shared.vocabulary import (
    ClaimStatus,
    Deadline,
    ItemRequestStatus,
    NeedLineStatus,
    NeedStatus,
    SiteKind,
    Urgency,
    Verification,
)

SCHEMA = "needs"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


kit = make_kit_tables(Base.metadata)
# The living catalog: items added through the API to the seed of items.json (shared.catalog.follow).
catalog = catalog_table(Base.metadata)


class Site(TimestampedMixin, VersionedMixin, Base):
    __tablename__ = "site"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    org: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[SiteKind] = mapped_column(enum_type(SiteKind, length=30))
    region_code: Mapped[str] = mapped_column(String(6), index=True)
    address: Mapped[str | None] = mapped_column(String(500))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    contact_name: Mapped[str | None] = mapped_column(String(100))
    contact_phone: Mapped[str | None] = mapped_column(String(40))

    __table_args__ = (Index(None, "created_at", "id"),)


class Need(ChangeTracked, TimestampedMixin, VersionedMixin, Base):
    __tablename__ = "need"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    site_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("site.id"), index=True)
    org: Mapped[str] = mapped_column(String(100), index=True)
    region_code: Mapped[str] = mapped_column(String(6), index=True)
    title: Mapped[str] = mapped_column(String(300))
    urgency: Mapped[Urgency] = mapped_column(enum_type(Urgency, length=20))
    needed_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    beneficiaries: Mapped[int | None] = mapped_column(Integer)
    beneficiary_groups: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict, server_default="{}")
    status: Mapped[NeedStatus] = mapped_column(enum_type(NeedStatus, length=20), default=NeedStatus.open, index=True)
    verification: Mapped[Verification] = mapped_column(
        enum_type(Verification, length=20), default=Verification.unverified
    )
    verification_reason: Mapped[str | None] = mapped_column(Text)
    verified_by: Mapped[str | None] = mapped_column(String(200))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duplicate_of: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("need.id"))
    close_reason: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confirmed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    created_by: Mapped[str] = mapped_column(String(200))
    # The relief operation of logistics the need belongs to (checked against operation_view).
    operation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)

    lines: Mapped[list[NeedLine]] = relationship(
        back_populates="need", lazy="raise", order_by="NeedLine.position", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index(None, "created_at", "id"),
        CheckConstraint("beneficiaries IS NULL OR beneficiaries >= 0", name="beneficiaries_nonnegative"),
    )


class NeedLine(Base):
    __tablename__ = "need_line"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    need_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("need.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    # None while the line waits (`pending_item`) for its item request to be approved or mapped.
    item_code: Mapped[str | None] = mapped_column(String(100), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit: Mapped[str] = mapped_column(String(20))
    notes: Mapped[str | None] = mapped_column(Text)
    deadline: Mapped[Deadline] = mapped_column(
        enum_type(Deadline, length=10), default=Deadline.hard, server_default=Deadline.hard.value
    )
    status: Mapped[NeedLineStatus] = mapped_column(
        enum_type(NeedLineStatus, length=20), default=NeedLineStatus.open, server_default="open"
    )
    item_request_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("item_request.id"), index=True)
    pending_reason: Mapped[str | None] = mapped_column(Text)
    # A coordinator allowed general-grade substitutes for this line (who, when, why).
    substitution_override: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    override_by: Mapped[str | None] = mapped_column(String(200))
    override_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    override_reason: Mapped[str | None] = mapped_column(Text)
    quantity_matched: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    quantity_delivered: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    quantity_in_transit: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Covered by partners' confirmed claims (they bring the goods themselves): no longer open to matching.
    quantity_claimed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    need: Mapped[Need] = relationship(back_populates="lines", lazy="raise")

    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("quantity_matched >= 0 AND quantity_delivered >= 0", name="progress_nonnegative"),
        CheckConstraint("quantity_in_transit >= 0", name="in_transit_nonnegative"),
        CheckConstraint("quantity_claimed >= 0", name="claimed_nonnegative"),
    )


class ItemRequest(TimestampedMixin, Base):
    """A frontline unit's request for an item the catalog lacks; need lines may wait on it."""

    __tablename__ = "item_request"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    org: Mapped[str] = mapped_column(String(100), index=True)
    name: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(50))
    note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[ItemRequestStatus] = mapped_column(
        enum_type(ItemRequestStatus, length=20), default=ItemRequestStatus.pending, index=True
    )
    item_code: Mapped[str | None] = mapped_column(String(100))
    requested_by: Mapped[str] = mapped_column(String(200))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refused_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index(None, "created_at", "id"),)


class Claim(TimestampedMixin, VersionedMixin, Base):
    """A partner organisation's promise to cover need lines itself; a coordinator of the need's region confirms."""

    __tablename__ = "claim"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    need_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("need.id"), index=True)
    org: Mapped[str] = mapped_column(String(100), index=True)
    region_code: Mapped[str] = mapped_column(String(6))
    status: Mapped[ClaimStatus] = mapped_column(
        enum_type(ClaimStatus, length=20), default=ClaimStatus.pending, index=True
    )
    # [{line_id, item_code, unit, quantity}]
    lines: Mapped[list[dict[str, object]]] = mapped_column(JSONB)
    eta: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index(None, "created_at", "id"), Index(None, "expires_at", postgresql_where="status = 'pending'"))


# --- what the roll-up has seen of other services' entities ----------------------------------------------------


class LineMatch(Base):
    """What an accepted proposal (matching.events) matched to a need line, as of the proposal's version."""

    __tablename__ = "line_match"

    proposal_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    need_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    need_line_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    quantity: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)


class LineShipment(Base):
    """A shipment line for a need line (logistics.events) as of the newest shipment version seen: what of it is
    in transit, delivered and given back."""

    __tablename__ = "line_shipment"

    shipment_line_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    shipment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    need_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    need_line_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    quantity_in_transit: Mapped[int] = mapped_column(Integer)
    quantity_delivered: Mapped[int] = mapped_column(Integer)
    quantity_returned: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)


class OperationView(OperationViewColumns, Base):
    """Logistics' relief operations, newest version seen (shared.operations): what needs may name."""
