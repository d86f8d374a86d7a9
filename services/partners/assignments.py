"""Assignments: an accepted service proposal (matching gave a partner's capacity to a need line) becomes work of
that partner, which confirms it, then reports it done with the units delivered and the people served. Made from
matching's proposal-accepted event, once per proposal however often the event is delivered."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.partners import events, schemas
from services.partners.errors import AssignmentNotFound, AssignmentNotReady, NotYourOrganization
from services.partners.models import Assignment
from services.partners.service import require_approved
from shared.auth import Principal, Role, require_in_region
from shared.db import utcnow
from shared.errors import InvalidRequest
from shared.etag import IfMatch, check_version
from shared.events import CloudEvent, publish
from shared.pagination import PageParams, paginate
from shared.settings import Settings
from shared.vocabulary import AssignmentStatus


def assignment_event(a: Assignment) -> events.AssignmentData:
    return events.AssignmentData.model_validate(a, from_attributes=True)


async def on_matching_event(session: AsyncSession, event: CloudEvent) -> None:
    """matching.events → an assignment for each accepted proposal of a capacity (goods proposals are ignored)."""
    d = event.data
    if event.type != "reliefhub.matching.proposal.accepted" or not d.get("capacity_id"):
        return
    now = utcnow()
    stmt = (
        insert(Assignment)
        .values(
            id=uuid.uuid4(),
            proposal_id=uuid.UUID(d["id"]),
            org=d.get("capacity_org") or "",
            capacity_id=uuid.UUID(d["capacity_id"]),
            service_code=d["lot_item_code"],
            need_id=uuid.UUID(d["need_id"]),
            need_line_id=uuid.UUID(d["need_line_id"]),
            site_id=uuid.UUID(d["site_id"]) if d.get("site_id") else None,
            need_org=d.get("need_org"),
            region_code=d["region_code"],
            quantity=int(d["quantity"]),
            status=AssignmentStatus.assigned,
            version=1,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=[Assignment.proposal_id])
        .returning(Assignment)
    )
    created = (await session.execute(stmt)).scalar_one_or_none()
    if created is not None:  # a redelivered event finds it made already
        await publish(session, events.ASSIGNMENT_CREATED, assignment_event(created), subject=str(created.id))


@dataclass(frozen=True)
class AssignmentFilters:
    org: str | None = None
    status: AssignmentStatus | None = None
    need_id: uuid.UUID | None = None


async def list_assignments(
    session: AsyncSession, filters: AssignmentFilters, params: PageParams
) -> tuple[list[Assignment], str | None]:
    stmt = select(Assignment)
    if filters.org is not None:
        stmt = stmt.where(Assignment.org == filters.org)
    if filters.status is not None:
        stmt = stmt.where(Assignment.status == filters.status)
    if filters.need_id is not None:
        stmt = stmt.where(Assignment.need_id == filters.need_id)
    return await paginate(session, stmt, Assignment.created_at, Assignment.id, params)


async def get_assignment(session: AsyncSession, assignment_id: uuid.UUID, *, for_update: bool = False) -> Assignment:
    stmt = select(Assignment).where(Assignment.id == assignment_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    found = (await session.execute(stmt)).scalar_one_or_none()
    if found is None:
        raise AssignmentNotFound(f"No assignment {assignment_id}.")
    return found


async def _partners_own(
    session: AsyncSession, principal: Principal, assignment_id: uuid.UUID, settings: Settings
) -> Assignment:
    """The assignment, locked, for its partner (or an admin); coordinators may act for it within their regions."""
    a = await get_assignment(session, assignment_id, for_update=True)
    if principal.has(Role.coordinator) and not principal.owns(a.org):
        require_in_region(principal, a.region_code, what="The assignment's need")
    elif not principal.owns(a.org) and not principal.has(Role.admin):
        raise NotYourOrganization(f"Only {a.org!r} itself confirms and reports its assignments.")
    await require_approved(session, principal, settings)
    return a


async def confirm(
    session: AsyncSession, principal: Principal, assignment_id: uuid.UUID, expected: IfMatch, settings: Settings
) -> Assignment:
    """The partner takes the assignment on; confirming it again changes nothing."""
    a = await _partners_own(session, principal, assignment_id, settings)
    check_version(expected, a.version)
    if a.status == AssignmentStatus.confirmed:
        return a
    if a.status != AssignmentStatus.assigned:
        raise AssignmentNotReady(f"The assignment is {a.status}.")
    now = utcnow()
    a.status, a.confirmed_at, a.confirmed_by = AssignmentStatus.confirmed, now, principal.sub
    a.version += 1
    a.updated_at = now
    await session.flush()
    await publish(session, events.ASSIGNMENT_CONFIRMED, assignment_event(a), subject=str(a.id))
    return a


async def report(
    session: AsyncSession,
    principal: Principal,
    assignment_id: uuid.UUID,
    data: schemas.AssignmentReport,
    expected: IfMatch,
    settings: Settings,
) -> Assignment:
    """The partner reports a confirmed assignment done: units delivered (at most those assigned), people served,
    by group. Reporting the same again changes nothing."""
    a = await _partners_own(session, principal, assignment_id, settings)
    check_version(expected, a.version)
    groups = {str(k): v for k, v in data.served_by_group.items()}
    if a.status == AssignmentStatus.done:
        same = (a.units_delivered, a.people_served, a.served_by_group or {}) == (
            data.units_delivered,
            data.people_served,
            groups,
        )
        if same:
            return a
        raise AssignmentNotReady("The assignment was reported done already, with other figures.")
    if a.status != AssignmentStatus.confirmed:
        raise AssignmentNotReady(f"The assignment is {a.status}: the partner confirms it first.")
    if data.units_delivered > a.quantity:
        raise InvalidRequest(
            f"At most the {a.quantity} units assigned can be reported delivered.",
            errors=[{"loc": ["body", "units_delivered"], "msg": f"at most {a.quantity}"}],
        )
    now = utcnow()
    a.status = AssignmentStatus.done
    a.units_delivered, a.people_served, a.served_by_group = data.units_delivered, data.people_served, groups
    a.note, a.reported_at, a.reported_by = data.note, now, principal.sub
    a.version += 1
    a.updated_at = now
    await session.flush()
    await publish(session, events.ASSIGNMENT_REPORTED, assignment_event(a), subject=str(a.id))
    return a


async def delivered_by(session: AsyncSession, org: str) -> dict[str, Any]:
    """What an organisation's reported assignments delivered: assignments done, units, people served."""
    stmt = select(
        func.count(Assignment.id),
        func.coalesce(func.sum(Assignment.units_delivered), 0),
        func.coalesce(func.sum(Assignment.people_served), 0),
    ).where(Assignment.org == org, Assignment.status == AssignmentStatus.done)
    done, units, people = (await session.execute(stmt)).one()
    return {"assignments_done": int(done or 0), "units_delivered": int(units or 0), "people_served": int(people or 0)}
