"""Tables of the matching service (schema `matching`): its projection of open need lines and available lots,
the scoring policy, allocation runs, proposals and the decisions taken on them."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, DateTime, Enum, Float, ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.matching.schemas import ProposalStatus, RunStatus
from shared.catalog.follow import catalog_table
from shared.changes import ChangeTracked
from shared.db import make_kit_tables, new_id, service_metadata

SCHEMA = "matching"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


kit = make_kit_tables(Base.metadata)
# Its copy of the living catalog's changes, from the needs service's events (shared.catalog.follow).
catalog = catalog_table(Base.metadata)


def _status(enum: type[ProposalStatus] | type[RunStatus]) -> Enum:
    """A status column typed with its enum, stored as before: the value string in a VARCHAR(20) (no database
    enum type, no constraint)."""
    return Enum(enum, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


class NeedLineView(Base):
    """An open need line as the needs service last described it (projection of needs.events)."""

    __tablename__ = "need_line_view"

    line_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    need_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    need_version: Mapped[int] = mapped_column(Integer)
    site_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    org: Mapped[str] = mapped_column(String(100))
    site_kind: Mapped[str] = mapped_column(String(30))
    region_code: Mapped[str] = mapped_column(String(6), index=True)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    item_code: Mapped[str] = mapped_column(String(100), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    quantity_delivered: Mapped[int] = mapped_column(Integer, default=0)
    urgency: Mapped[str] = mapped_column(String(20))
    needed_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # hard: no lot arriving after needed_by; soft: such a lot, its score lowered by how late it comes.
    deadline: Mapped[str] = mapped_column(String(10), default="hard", server_default="hard")
    need_status: Mapped[str] = mapped_column(String(20))
    verification: Mapped[str] = mapped_column(String(20))
    # A coordinator allowed general-grade substitutes for this (medical) line; recorded in the needs service.
    substitution_override: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # Whom the line's need serves, people per group (BeneficiaryGroup): gifts restricted to groups go only there.
    beneficiary_groups: Mapped[dict[str, int]] = mapped_column(JSONB, default=dict, server_default="{}")
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    first_matched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LotView(Base):
    """A lot as the supply service last described it (projection of supply.events)."""

    __tablename__ = "lot_view"

    lot_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    offer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    lot_version: Mapped[int] = mapped_column(Integer)
    offer_version: Mapped[int] = mapped_column(Integer)
    org: Mapped[str] = mapped_column(String(100))
    item_code: Mapped[str] = mapped_column(String(100), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    quantity_reserved: Mapped[int] = mapped_column(Integer)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    region_code: Mapped[str | None] = mapped_column(String(6))
    available_from: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verification: Mapped[str] = mapped_column(String(20))
    # The lot version `verification` is from: reservation events move lot_version on without carrying it.
    verification_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    offer_status: Mapped[str] = mapped_column(String(20))
    restrictions: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    # A component's nearest-lot search (component_repository): a box by latitude.
    __table_args__ = (Index("ix_lot_view_item_code_lat", "item_code", "lat"),)


class CapacityView(Base):
    """A partner's capacity as the partners service last described it (projection of partners.events)."""

    __tablename__ = "capacity_view"

    capacity_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    org: Mapped[str] = mapped_column(String(100))
    service_code: Mapped[str] = mapped_column(String(100), index=True)
    units_per_day: Mapped[int] = mapped_column(Integer)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    region_codes: Mapped[list[str]] = mapped_column(JSONB, default=list)
    status: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PolicyVersion(Base):
    __tablename__ = "policy_version"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AllocationRun(Base):
    __tablename__ = "allocation_run"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    trigger: Mapped[str] = mapped_column(String(20))  # manual | continuous | periodic | retry
    scope: Mapped[dict[str, Any]] = mapped_column(JSONB)
    policy_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[RunStatus] = mapped_column(_status(RunStatus))
    objective: Mapped[float] = mapped_column(Float)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB)
    timings: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index(None, "created_at", "id"),)


class Proposal(ChangeTracked, Base):
    __tablename__ = "proposal"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("allocation_run.id"), index=True)
    need_line_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    need_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    # A proposal gives either goods of a lot (lot_id, offer_id) or a partner's capacity (capacity_id).
    lot_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    offer_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    capacity_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    item_code: Mapped[str] = mapped_column(String(100))
    lot_item_code: Mapped[str] = mapped_column(String(100))
    region_code: Mapped[str] = mapped_column(String(6), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    # The same goods in the lot's base unit (differs from `quantity` for a substitute with a conversion factor;
    # None on proposals made before units were converted: the same as `quantity`).
    lot_quantity: Mapped[int | None] = mapped_column(Integer)
    accepted_quantity: Mapped[int | None] = mapped_column(Integer)
    # What logistics gave back of the accepted quantity (came short, not received, shipment cancelled).
    quantity_returned: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    score: Mapped[float] = mapped_column(Float)
    factors: Mapped[dict[str, float]] = mapped_column(JSONB)
    distance_km: Mapped[float] = mapped_column(Float)
    policy_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[ProposalStatus] = mapped_column(_status(ProposalStatus), index=True)
    auto: Mapped[bool] = mapped_column(Boolean, default=False)
    reservation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # Set when the reservation's own event reached lot_view, so its quantity is not counted twice.
    reservation_projected: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(Text)
    # Set when a periodic or manual run replaced the open proposal (stable proposals are otherwise kept).
    replaced_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    replaced_reason: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index(None, "created_at", "id"),)


class Decision(Base):
    """Every decision on a proposal, human or automatic: the audit trail of overrides."""

    __tablename__ = "decision"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    proposal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("proposal.id"), index=True)
    action: Mapped[str] = mapped_column(String(20))  # accept | reject | expire | cancel | release
    quantity: Mapped[int | None] = mapped_column(Integer)
    override: Mapped[bool] = mapped_column(Boolean, default=False)  # a human departed from the proposal
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DirtyScope(Base):
    """Item codes whose lines or lots changed since the last continuous run (debounce queue), and the backoff of
    an item group whose run failed: retried no sooner than `not_before`."""

    __tablename__ = "dirty_scope"

    item_code: Mapped[str] = mapped_column(String(100), primary_key=True)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)


class DirtyMember(Base):
    """What changed of a dirty item (dirty_scope): a need line or a lot by id, so that a continuous run can read
    only their component. `kind` "item" (member id nil) marks the whole item group, as does an item with no member
    row at all (a change that cannot name its lines or lots: policy, catalog, capacities)."""

    __tablename__ = "dirty_member"

    item_code: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    member_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)


class ShipmentReturn(Base):
    """What a shipment line (logistics.events) gave back of its proposal, as of the newest shipment version seen."""

    __tablename__ = "shipment_return"

    shipment_line_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    proposal_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    quantity_returned: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)


class LineExclusion(Base):
    """A lot a need line is never matched with again: its site declined a proposal of it."""

    __tablename__ = "line_exclusion"

    need_line_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    lot_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    proposal_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
