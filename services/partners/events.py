"""Event types the partners service publishes, and its handlers of supply's and logistics' events, which open
and close working groups' tasks."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events import CloudEvent, register_event_type


class OrganizationData(BaseModel):
    """An organisation without its contact details."""

    id: str
    name: str
    kind: str
    parent_id: str | None
    region_codes: list[str]
    issue_areas: list[str]
    public_name: str | None
    status: str
    status_reason: str | None
    decided_by_org: str | None
    version: int


class TaskLotData(BaseModel):
    """A line of goods the task is about (webhook filters on item and region codes read these)."""

    id: str | None = None
    item_code: str
    quantity: int | None = None
    region_code: str | None = None


class TaskData(BaseModel):
    id: uuid.UUID
    kind: str
    group: str
    status: str
    title: str
    subject_type: str
    subject_id: str
    region_code: str | None
    lots: list[TaskLotData]
    due_at: datetime
    overdue: bool
    claimed_by_org: str | None
    completed_by_org: str | None
    outcome: str | None
    notes: str | None
    data: dict[str, Any] | None
    version: int
    created_at: datetime


class CapacityData(BaseModel):
    """A partner's capacity: what matching reads to propose it for need lines of its service."""

    id: uuid.UUID
    org: str
    service_code: str
    units_per_day: int
    starts_on: date
    ends_on: date
    region_codes: list[str]
    status: str
    version: int


class AssignmentData(BaseModel):
    """An assignment after a change: who does what for which need, and what it reported."""

    id: uuid.UUID
    proposal_id: uuid.UUID
    org: str
    capacity_id: uuid.UUID
    service_code: str
    need_id: uuid.UUID
    need_line_id: uuid.UUID
    site_id: uuid.UUID | None
    region_code: str
    quantity: int
    status: str
    units_delivered: int | None
    people_served: int | None
    served_by_group: dict[str, int] | None
    reported_at: datetime | None
    version: int


ORGANIZATION_REGISTERED = register_event_type(
    "reliefhub.partners.organization.registered",
    "An organisation registered; it awaits approval by a coordinator of the hub covering it.",
    OrganizationData,
)
ORGANIZATION_UPDATED = register_event_type(
    "reliefhub.partners.organization.updated", "An organisation's registration changed.", OrganizationData
)
ORGANIZATION_APPROVED = register_event_type(
    "reliefhub.partners.organization.approved",
    "A coordinator of a hub covering the organisation approved it: it may make changes.",
    OrganizationData,
)
ORGANIZATION_SUSPENDED = register_event_type(
    "reliefhub.partners.organization.suspended",
    "A coordinator suspended the organisation: its changes are refused.",
    OrganizationData,
)
CAPACITY_DECLARED = register_event_type(
    "reliefhub.partners.capacity.declared",
    "An organisation declared a capacity: units of a service a day, in a date window, over an area.",
    CapacityData,
)
CAPACITY_UPDATED = register_event_type(
    "reliefhub.partners.capacity.updated", "A capacity's units, window, area or note changed.", CapacityData
)
CAPACITY_WITHDRAWN = register_event_type(
    "reliefhub.partners.capacity.withdrawn",
    "The organisation withdrew a capacity: it is no longer matched.",
    CapacityData,
)
ASSIGNMENT_CREATED = register_event_type(
    "reliefhub.partners.assignment.created",
    "An accepted service proposal became an assignment of the partner whose capacity it was.",
    AssignmentData,
)
ASSIGNMENT_CONFIRMED = register_event_type(
    "reliefhub.partners.assignment.confirmed", "The partner confirmed it takes the assignment on.", AssignmentData
)
ASSIGNMENT_REPORTED = register_event_type(
    "reliefhub.partners.assignment.reported",
    "The partner reported the assignment done: units delivered and people served.",
    AssignmentData,
)
TASK_CREATED = register_event_type(
    "reliefhub.partners.task.created", "A task entered a working group's queue.", TaskData
)
TASK_CLAIMED = register_event_type(
    "reliefhub.partners.task.claimed", "A member of the working group claimed a task.", TaskData
)
TASK_COMPLETED = register_event_type(
    "reliefhub.partners.task.completed", "A task was completed with an outcome (see outcome and data).", TaskData
)
TASK_OVERDUE = register_event_type(
    "reliefhub.partners.task.overdue", "A task passed its due time while still open or claimed.", TaskData
)
TASK_CANCELLED = register_event_type(
    "reliefhub.partners.task.cancelled",
    "A task's subject went away (an offer withdrawn, an order cancelled).",
    TaskData,
)


# --- handlers: supply and logistics open and close tasks ---------------------------------------------------------


# The events `on_supply_event` and `on_logistics_event` act on (Subscription.types).
SUPPLY_TYPES = (
    "reliefhub.supply.offer.created",
    "reliefhub.supply.offer.customs_decided",
    "reliefhub.supply.lot.verified",
    "reliefhub.supply.offer.withdrawn",
)
LOGISTICS_TYPES = ("reliefhub.logistics.procurement.created", "reliefhub.logistics.procurement.cancelled")


async def on_supply_event(session: AsyncSession, event: CloudEvent) -> None:
    """supply.events → device checks of lots that await one, customs clearance and translation for offers from
    abroad; a verdict or a customs decision given in supply closes its task, a withdrawn offer cancels its own."""
    from services.partners import tasks  # here, not above: tasks publishes this module's event types

    d = event.data
    if event.type in ("reliefhub.supply.offer.created", "reliefhub.supply.offer.customs_decided"):
        await tasks.open_offer_tasks(session, d)
        if event.type == "reliefhub.supply.offer.customs_decided":
            await tasks.close_customs_task(session, d)
    elif event.type == "reliefhub.supply.lot.verified":
        await tasks.close_device_check(session, d)
    elif event.type == "reliefhub.supply.offer.withdrawn":
        await tasks.withdraw_offer_tasks(session, d)


async def on_logistics_event(session: AsyncSession, event: CloudEvent) -> None:
    """logistics.events → a quote task for each drafted procurement order; a cancelled order cancels it."""
    from services.partners import tasks

    if event.type == "reliefhub.logistics.procurement.created":
        await tasks.open_quote_task(session, event.data)
    elif event.type == "reliefhub.logistics.procurement.cancelled":
        await tasks.cancel_quote_task(session, event.data)
