"""HTTP endpoints of the partners service: the organisations registry and working groups' task queues.

Its routes are open to organisations the registry has not approved yet (registering is how they start); the
rules that need an approved organisation (working on tasks) apply it in the service."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import Path, Query, Request, Response, status

from services.partners import assignments, capacities, schemas, service, tasks
from services.partners.dependencies import Coordinator, Credentials, SettingsDep, TaskWorker
from services.partners.errors import (
    AlreadyDecided,
    AssignmentNotFound,
    AssignmentNotReady,
    BeyondYourArea,
    CapacityNotFound,
    CapacityWithdrawn,
    InvalidOutcome,
    InvalidParent,
    NotAHubCoordinator,
    NotAService,
    NotYourGroup,
    NotYourOrganization,
    OrganizationExists,
    OrganizationNotFound,
    OutsideYourHub,
    SubjectRefused,
    TaskClosed,
    TaskNotFound,
    TaskTaken,
)
from services.partners.models import Organization, OrgKind, OrgStatus, TaskKind, TaskStatus
from services.partners.repository import CapacityFilters, OrganizationFilters, TaskFilters
from shared.app import SessionDep, service_router
from shared.auth import CurrentPrincipal, Principal
from shared.errors import Forbidden, PreconditionFailed, PreconditionRequired, ServiceUnavailable, problem_responses
from shared.etag import if_match_version, set_etag
from shared.orgs import OrganisationNotApproved
from shared.pagination import Page, PageQuery
from shared.vocabulary import AssignmentStatus, CapacityStatus

router = service_router(prefix="/v1", tags=["partners"], approved_orgs_only=False)

OrgId = Annotated[str, Path(min_length=1, max_length=100, description="The organisation's slug (tokens' `org`).")]


def organization_out(org: Organization, principal: Principal) -> schemas.Organization:
    out = schemas.Organization.model_validate(org)
    if not service.may_see_contact(principal, org):
        out.contact = None
    return out


@router.post(
    "/organizations",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(NotYourOrganization, OrganizationExists, InvalidParent),
)
async def create_organization(
    data: schemas.OrganizationCreate, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> schemas.Organization:
    """Register your organisation (any token; coordinators may register others): it is pending until a
    coordinator of the hub covering it approves it."""
    org = await service.register_organization(session, principal, data)
    set_etag(response, org.version)
    response.headers["Location"] = f"/v1/organizations/{org.id}"
    return organization_out(org, principal)


@router.get("/organizations", responses=problem_responses())
async def list_organizations(
    principal: CurrentPrincipal,
    session: SessionDep,
    kind: OrgKind | None = None,
    status: OrgStatus | None = None,
    region_code: Annotated[
        str | None, Query(pattern=r"^[0-9]{2,6}$", description="Serving this region (or a part of it).")
    ] = None,
    service_code: Annotated[
        str | None, Query(min_length=1, max_length=100, description="With a live capacity for this service.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size (max 500).")] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page.")] = None,
) -> Page[schemas.Organization]:
    """Registered organisations in slug order, filtered by kind, status, the region they serve and a service
    they have a live capacity for (offered, its window not over)."""
    filters = OrganizationFilters(kind=kind, status=status, region_code=region_code, service_code=service_code)
    items, next_cursor = await service.list_organizations(session, filters, limit=limit, cursor=cursor)
    return Page(items=[organization_out(o, principal) for o in items], next_cursor=next_cursor)


@router.get("/organizations/{org}", responses=problem_responses(OrganizationNotFound))
async def get_organization(
    org: OrgId, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> schemas.Organization:
    """One organisation and its status; its contact only for itself and coordinators."""
    record = await service.get_organization(session, org)
    set_etag(response, record.version)
    out = organization_out(record, principal)
    out.delivered = schemas.ServiceRecord(**await assignments.delivered_by(session, org))
    return out


@router.patch(
    "/organizations/{org}",
    responses=problem_responses(
        OrganizationNotFound,
        NotAHubCoordinator,
        OutsideYourHub,
        InvalidParent,
        PreconditionFailed,
        PreconditionRequired,
    ),
)
async def update_organization(
    org: OrgId,
    data: schemas.OrganizationUpdate,
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
) -> schemas.Organization:
    """Change a registration (the organisation itself, or a coordinator of a hub covering it; send If-Match).
    An approved organisation widening its regions awaits approval again."""
    expected = if_match_version(request)
    record = await service.update_organization(session, principal, org, data, expected)
    set_etag(response, record.version)
    return organization_out(record, principal)


DECISION_ERRORS = problem_responses(OrganizationNotFound, NotAHubCoordinator, OutsideYourHub, AlreadyDecided)


@router.post("/organizations/{org}/approve", responses=DECISION_ERRORS)
async def approve_organization(
    org: OrgId,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
    data: schemas.OrganizationDecision | None = None,
) -> schemas.Organization:
    """Approve an organisation (a coordinator of an approved hub covering every region it serves, or an admin);
    approving a suspended one lifts the suspension."""
    decision = data or schemas.OrganizationDecision()
    record = await service.decide(session, principal, org, OrgStatus.approved, decision)
    set_etag(response, record.version)
    return organization_out(record, principal)


@router.post("/organizations/{org}/suspend", responses=DECISION_ERRORS)
async def suspend_organization(
    org: OrgId,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
    data: schemas.OrganizationDecision | None = None,
) -> schemas.Organization:
    """Suspend an organisation: with the registry on, its changes are refused until it is approved again."""
    decision = data or schemas.OrganizationDecision()
    record = await service.decide(session, principal, org, OrgStatus.suspended, decision)
    set_etag(response, record.version)
    return organization_out(record, principal)


# --- capacities ----------------------------------------------------------------------------------------------------


@router.post(
    "/capacities",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(NotYourOrganization, NotAService, BeyondYourArea, OrganisationNotApproved),
)
async def create_capacity(
    data: schemas.CapacityCreate,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> schemas.Capacity:
    """Declare what your organisation can do: units of a `service.*` catalog item a day, from `starts_on` to
    `ends_on`, over the region prefixes it covers (with the registry on, approved organisations only)."""
    capacity = await capacities.declare(session, principal, data, settings)
    set_etag(response, capacity.version)
    response.headers["Location"] = f"/v1/capacities/{capacity.id}"
    return schemas.Capacity.model_validate(capacity)


@router.get("/capacities", responses=problem_responses())
async def list_capacities(
    principal: CurrentPrincipal,
    session: SessionDep,
    page: PageQuery,
    org: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    service_code: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    status: CapacityStatus | None = None,
    region_code: Annotated[
        str | None, Query(pattern=r"^[0-9]{6}$", description="Whose area covers this county code.")
    ] = None,
    on: Annotated[date | None, Query(description="Offered on this day.")] = None,
) -> Page[schemas.Capacity]:
    """Declared capacities, newest first, filtered by organisation, service, status, area and day."""
    filters = CapacityFilters(org=org, service_code=service_code, status=status, region_code=region_code, on=on)
    items, cursor = await capacities.list_capacities(session, filters, page)
    return Page(items=[schemas.Capacity.model_validate(c) for c in items], next_cursor=cursor)


@router.get("/capacities/{capacity_id}", responses=problem_responses(CapacityNotFound))
async def get_capacity(
    capacity_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> schemas.Capacity:
    """One capacity."""
    capacity = await capacities.get_capacity(session, capacity_id)
    set_etag(response, capacity.version)
    return schemas.Capacity.model_validate(capacity)


CAPACITY_CHANGE_ERRORS = (CapacityNotFound, NotYourOrganization, CapacityWithdrawn, OrganisationNotApproved)


@router.patch(
    "/capacities/{capacity_id}",
    responses=problem_responses(*CAPACITY_CHANGE_ERRORS, BeyondYourArea, PreconditionFailed, PreconditionRequired),
)
async def update_capacity(
    capacity_id: uuid.UUID,
    data: schemas.CapacityUpdate,
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> schemas.Capacity:
    """Change a capacity's units, window, area or note (its organisation; send If-Match)."""
    expected = if_match_version(request)
    capacity = await capacities.update(session, principal, capacity_id, data, expected, settings)
    set_etag(response, capacity.version)
    return schemas.Capacity.model_validate(capacity)


@router.post("/capacities/{capacity_id}/withdraw", responses=problem_responses(*CAPACITY_CHANGE_ERRORS))
async def withdraw_capacity(
    capacity_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    data: schemas.CapacityWithdrawal | None = None,
) -> schemas.Capacity:
    """Withdraw a capacity (its organisation): it is no longer offered nor matched."""
    capacity = await capacities.withdraw(
        session, principal, capacity_id, data or schemas.CapacityWithdrawal(), settings
    )
    set_etag(response, capacity.version)
    return schemas.Capacity.model_validate(capacity)


# --- assignments ---------------------------------------------------------------------------------------------------


def _optional_if_match(request: Request) -> frozenset[int] | None:
    return if_match_version(request) if "if-match" in request.headers else None


@router.get("/assignments", responses=problem_responses())
async def list_assignments(
    principal: CurrentPrincipal,
    session: SessionDep,
    page: PageQuery,
    org: Annotated[str | None, Query(min_length=1, max_length=100, description="The partner doing it.")] = None,
    status: AssignmentStatus | None = None,
    need_id: uuid.UUID | None = None,
) -> Page[schemas.Assignment]:
    """Accepted service proposals given to partners, newest first, filtered by partner, status and need."""
    filters = assignments.AssignmentFilters(org=org, status=status, need_id=need_id)
    items, cursor = await assignments.list_assignments(session, filters, page)
    return Page(items=[schemas.Assignment.model_validate(a) for a in items], next_cursor=cursor)


@router.get("/assignments/{assignment_id}", responses=problem_responses(AssignmentNotFound))
async def get_assignment(
    assignment_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> schemas.Assignment:
    """One assignment: the need line, the capacity, its status and what the partner reported."""
    a = await assignments.get_assignment(session, assignment_id)
    set_etag(response, a.version)
    return schemas.Assignment.model_validate(a)


ASSIGNMENT_ERRORS = (
    AssignmentNotFound,
    AssignmentNotReady,
    NotYourOrganization,
    Forbidden,
    OrganisationNotApproved,
    PreconditionFailed,
)


@router.post("/assignments/{assignment_id}/confirm", responses=problem_responses(*ASSIGNMENT_ERRORS))
async def confirm_assignment(
    assignment_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> schemas.Assignment:
    """The partner confirms it takes the assignment on (If-Match honoured when sent)."""
    a = await assignments.confirm(session, principal, assignment_id, _optional_if_match(request), settings)
    set_etag(response, a.version)
    return schemas.Assignment.model_validate(a)


@router.post("/assignments/{assignment_id}/report", responses=problem_responses(*ASSIGNMENT_ERRORS))
async def report_assignment(
    assignment_id: uuid.UUID,
    data: schemas.AssignmentReport,
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> schemas.Assignment:
    """The partner reports a confirmed assignment done: `units_delivered`, `people_served`, `served_by_group`,
    `note` (If-Match honoured when sent)."""
    a = await assignments.report(session, principal, assignment_id, data, _optional_if_match(request), settings)
    set_etag(response, a.version)
    return schemas.Assignment.model_validate(a)


# --- tasks ---------------------------------------------------------------------------------------------------------


@router.get("/tasks", responses=problem_responses(Forbidden))
async def list_tasks(
    principal: CurrentPrincipal,
    session: SessionDep,
    page: PageQuery,
    group: Annotated[str | None, Query(max_length=100)] = None,
    status: TaskStatus | None = None,
    kind: TaskKind | None = None,
    subject_id: Annotated[str | None, Query(max_length=100, description="The offer, need or order.")] = None,
) -> Page[schemas.Task]:
    """A working group's queue, newest first (members see their group's; coordinators every group's)."""
    filters = TaskFilters(group=group, status=status, kind=kind, subject_id=subject_id)
    items, cursor = await tasks.list_tasks(session, principal, filters, page)
    return Page(items=[tasks.task_out(t) for t in items], next_cursor=cursor)


@router.post(
    "/tasks", status_code=status.HTTP_201_CREATED, responses=problem_responses(Forbidden, OrganisationNotApproved)
)
async def create_task(
    data: schemas.TaskCreate, principal: Coordinator, session: SessionDep, settings: SettingsDep, response: Response
) -> schemas.Task:
    """Put a translation or a request for quotes in a working group's queue (coordinators)."""
    task = await tasks.create_task(session, principal, data, settings)
    set_etag(response, task.version)
    response.headers["Location"] = f"/v1/tasks/{task.id}"
    return tasks.task_out(task)


@router.get("/tasks/{task_id}", responses=problem_responses(TaskNotFound, NotYourGroup, Forbidden))
async def get_task(
    task_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> schemas.Task:
    """One task: its subject, due time, who claimed it and its outcome."""
    task = await tasks.get_task(session, principal, task_id)
    set_etag(response, task.version)
    return tasks.task_out(task)


@router.post(
    "/tasks/{task_id}/claim",
    responses=problem_responses(TaskNotFound, NotYourGroup, TaskTaken, TaskClosed, OrganisationNotApproved),
)
async def claim_task(
    task_id: uuid.UUID, principal: TaskWorker, session: SessionDep, settings: SettingsDep, response: Response
) -> schemas.Task:
    """Claim a task of your group's queue; claiming it again changes nothing."""
    task = await tasks.claim_task(session, principal, task_id, settings)
    set_etag(response, task.version)
    return tasks.task_out(task)


@router.post(
    "/tasks/{task_id}/complete",
    responses=problem_responses(
        TaskNotFound,
        NotYourGroup,
        TaskTaken,
        TaskClosed,
        InvalidOutcome,
        SubjectRefused,
        OrganisationNotApproved,
        ServiceUnavailable,
    ),
)
async def complete_task(
    task_id: uuid.UUID,
    data: schemas.TaskCompletion,
    principal: TaskWorker,
    session: SessionDep,
    settings: SettingsDep,
    credentials: Credentials,
    response: Response,
) -> schemas.Task:
    """Complete a task with its outcome, `notes` and `data`. A device check's verdict goes to the offer's lots;
    a customs clearance (HS codes, consignee foundation, exemption reference) releases an offer from abroad."""
    task = await tasks.complete_task(session, principal, task_id, data, settings, credentials)
    set_etag(response, task.version)
    return tasks.task_out(task)
