"""Tables of the partners service (schema `partners`): the organisations registry and working groups' tasks."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, Date, DateTime, Enum, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import TimestampedMixin, VersionedMixin, enum_type, make_kit_tables, new_id, service_metadata
from shared.vocabulary import AssignmentStatus, CapacityStatus

SCHEMA = "partners"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


kit = make_kit_tables(Base.metadata)


class OrgKind(StrEnum):
    hub = "hub"
    ngo = "ngo"
    community_group = "community_group"
    volunteer_team = "volunteer_team"
    company = "company"
    foundation = "foundation"
    government = "government"
    carrier = "carrier"
    working_group = "working_group"


class OrgStatus(StrEnum):
    pending = "pending"
    approved = "approved"
    suspended = "suspended"


class TaskKind(StrEnum):
    device_check = "device_check"
    translation = "translation"
    customs_clearance = "customs_clearance"
    procurement_quote = "procurement_quote"


class TaskStatus(StrEnum):
    open = "open"
    claimed = "claimed"
    done = "done"
    cancelled = "cancelled"


def _enum(cls: type[StrEnum], length: int) -> Enum:
    """A StrEnum stored as its value in a plain VARCHAR (no database enum type to migrate)."""
    return Enum(cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e])


class Organization(TimestampedMixin, VersionedMixin, Base):
    __tablename__ = "organization"

    # The slug tokens carry as `org`.
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[OrgKind] = mapped_column(_enum(OrgKind, 30), index=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id"), index=True)
    region_codes: Mapped[list[str]] = mapped_column(ARRAY(String(6)), default=list)
    issue_areas: Mapped[list[str]] = mapped_column(ARRAY(String(50)), default=list)
    public_name: Mapped[str | None] = mapped_column(String(200))
    contact: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    status: Mapped[OrgStatus] = mapped_column(_enum(OrgStatus, 20), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text)
    registered_by: Mapped[str] = mapped_column(String(200))
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_by_org: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Task(TimestampedMixin, VersionedMixin, Base):
    __tablename__ = "task"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    kind: Mapped[TaskKind] = mapped_column(_enum(TaskKind, 30))
    group: Mapped[str] = mapped_column(String(100))
    status: Mapped[TaskStatus] = mapped_column(_enum(TaskStatus, 20))
    title: Mapped[str] = mapped_column(String(300))
    # What the task is about: an offer, a procurement order, a need, or a document.
    subject_type: Mapped[str] = mapped_column(String(30))
    subject_id: Mapped[str] = mapped_column(String(100), index=True)
    # A snapshot of the subject for the group: lots (item, quantity, region), origin country, the note.
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    region_code: Mapped[str | None] = mapped_column(String(6))
    # Tasks opened by events carry a key naming what opened them, so a redelivered event opens none twice.
    source_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    overdue_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_by_org: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_by: Mapped[str | None] = mapped_column(String(200))
    completed_by_org: Mapped[str | None] = mapped_column(String(100))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(30))
    notes: Mapped[str | None] = mapped_column(Text)
    outcome_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_by: Mapped[str] = mapped_column(String(200))
    created_by_org: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (
        Index(None, "group", "status", "created_at"),
        Index(None, "created_at", "id"),
        Index(None, "due_at", postgresql_where="status IN ('open', 'claimed') AND overdue_at IS NULL"),
    )


class Capacity(TimestampedMixin, VersionedMixin, Base):
    """What an organisation can do: so many units of a `service.*` catalog item a day, within a date window, in
    the regions it serves (prefixes: a service covers an area, it has no point location)."""

    __tablename__ = "capacity"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    org: Mapped[str] = mapped_column(String(100), index=True)
    service_code: Mapped[str] = mapped_column(String(100))
    units_per_day: Mapped[int] = mapped_column(Integer)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    region_codes: Mapped[list[str]] = mapped_column(ARRAY(String(6)), default=list)
    note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[CapacityStatus] = mapped_column(enum_type(CapacityStatus, length=20))
    withdrawn_reason: Mapped[str | None] = mapped_column(Text)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))

    __table_args__ = (
        CheckConstraint("units_per_day > 0", name="units_positive"),
        CheckConstraint("ends_on >= starts_on", name="window_ordered"),
        Index(None, "service_code", "status", "ends_on"),
        Index(None, "created_at", "id"),
    )


class Assignment(TimestampedMixin, VersionedMixin, Base):
    """An accepted service proposal (matching's proposal-accepted event of a capacity): work the partner whose
    capacity it was confirms, then reports done with what it delivered and whom it served."""

    __tablename__ = "assignment"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    proposal_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    org: Mapped[str] = mapped_column(String(100), index=True)
    capacity_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    service_code: Mapped[str] = mapped_column(String(100))
    need_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    need_line_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    site_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    need_org: Mapped[str | None] = mapped_column(String(100))
    region_code: Mapped[str] = mapped_column(String(6))
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[AssignmentStatus] = mapped_column(enum_type(AssignmentStatus, length=20), index=True)
    units_delivered: Mapped[int | None] = mapped_column(Integer)
    people_served: Mapped[int | None] = mapped_column(Integer)
    served_by_group: Mapped[dict[str, int] | None] = mapped_column(JSONB)
    note: Mapped[str | None] = mapped_column(Text)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confirmed_by: Mapped[str | None] = mapped_column(String(200))
    reported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reported_by: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index(None, "created_at", "id"),)
