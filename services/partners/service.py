"""Business rules of the organisations registry: registration, approval by a hub covering the organisation,
suspension, and whether an organisation may act."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from services.partners import events, schemas
from services.partners.errors import (
    AlreadyDecided,
    InvalidParent,
    NotAHubCoordinator,
    NotYourOrganization,
    OrganizationExists,
    OrganizationNotFound,
    OutsideYourHub,
)
from services.partners.models import Organization, OrgKind, OrgStatus
from services.partners.repository import OrganizationFilters, OrganizationRepository, decode_org_cursor
from shared.auth import Principal, Role
from shared.db import utcnow
from shared.etag import IfMatch, check_version
from shared.events import publish
from shared.orgs import OrganisationNotApproved
from shared.settings import Settings

MAX_PARENT_DEPTH = 20


def covers(prefixes: Iterable[str] | None, codes: Iterable[str]) -> bool:
    """Whether region prefixes cover every code of an area. No prefixes at all: national, covering everything;
    no codes: a national area, covered only by a national reach."""
    reach = list(prefixes) if prefixes is not None else []
    if not reach:
        return True
    area = list(codes)
    return bool(area) and all(any(code.startswith(p) for p in reach) for code in area)


def may_see_contact(principal: Principal, org: Organization) -> bool:
    return principal.is_staff or principal.owns(org.id)


def organization_event(org: Organization) -> events.OrganizationData:
    return events.OrganizationData.model_validate(org, from_attributes=True)


async def get_organization(session: AsyncSession, org_id: str, *, for_update: bool = False) -> Organization:
    org = await OrganizationRepository(session).get(org_id, for_update=for_update)
    if org is None:
        raise OrganizationNotFound(f"No organisation {org_id!r} is registered.")
    return org


async def list_organizations(
    session: AsyncSession, filters: OrganizationFilters, *, limit: int, cursor: str | None
) -> tuple[list[Organization], str | None]:
    after = decode_org_cursor(cursor) if cursor else None
    return await OrganizationRepository(session).search(filters, limit=limit, after=after)


async def _check_parent(session: AsyncSession, org_id: str, parent_id: str | None) -> None:
    """The parent is a registered hub, and the organisation is not among its ancestors."""
    seen = {org_id}
    current = parent_id
    for _ in range(MAX_PARENT_DEPTH):
        if current is None:
            return
        if current in seen:
            raise InvalidParent(
                f"{parent_id!r} is {org_id!r} itself or one of its members.",
                errors=[{"loc": ["body", "parent_id"], "msg": "a cycle of parents"}],
            )
        seen.add(current)
        parent = await OrganizationRepository(session).get(current)
        if parent is None or (current == parent_id and parent.kind != OrgKind.hub):
            raise InvalidParent(
                f"{current!r} is not a registered hub.", errors=[{"loc": ["body", "parent_id"], "msg": "not a hub"}]
            )
        current = parent.parent_id
    raise InvalidParent(f"{parent_id!r} sits more than {MAX_PARENT_DEPTH} hubs deep.")


async def register_organization(
    session: AsyncSession, principal: Principal, data: schemas.OrganizationCreate
) -> Organization:
    """Register an organisation (the caller's own, unless a coordinator registers another): it is pending."""
    org_id = data.id or principal.org
    if org_id != principal.org and not principal.is_staff:
        raise NotYourOrganization(
            "Register your own organisation (your token's `org`); coordinators may register others."
        )
    repo = OrganizationRepository(session)
    if await repo.get(org_id) is not None:
        raise OrganizationExists(f"Organisation {org_id!r} is already registered.")
    await _check_parent(session, org_id, data.parent_id)
    now = utcnow()
    org = Organization(
        id=org_id,
        name=data.name,
        kind=data.kind,
        parent_id=data.parent_id,
        region_codes=sorted(set(data.region_codes)),
        issue_areas=sorted(set(data.issue_areas)),
        public_name=data.public_name,
        contact=data.contact.model_dump(exclude_none=True) if data.contact else None,
        status=OrgStatus.pending,
        registered_by=principal.sub,
        version=1,
        created_at=now,
        updated_at=now,
    )
    repo.add(org)
    await session.flush()
    await publish(session, events.ORGANIZATION_REGISTERED, organization_event(org), subject=org.id)
    return org


async def update_organization(
    session: AsyncSession,
    principal: Principal,
    org_id: str,
    data: schemas.OrganizationUpdate,
    expected_version: IfMatch,
) -> Organization:
    """The organisation itself, or a coordinator of a hub covering it, changes its registration. Widening the
    regions of an approved organisation beyond what the approving hub covers needs that hub again: such a
    change by the organisation itself sends it back to pending."""
    org = await get_organization(session, org_id, for_update=True)
    if not principal.owns(org.id):
        await _require_authority(session, principal, org)
    check_version(expected_version, org.version)
    fields = data.model_fields_set
    if "parent_id" in fields:
        await _check_parent(session, org.id, data.parent_id)
        org.parent_id = data.parent_id
    if data.name is not None:
        org.name = data.name
    if data.issue_areas is not None:
        org.issue_areas = sorted(set(data.issue_areas))
    if "public_name" in fields:
        org.public_name = data.public_name
    if "contact" in fields:
        org.contact = data.contact.model_dump(exclude_none=True) if data.contact else None
    if data.region_codes is not None:
        widened = not covers(org.region_codes, data.region_codes)
        org.region_codes = sorted(set(data.region_codes))
        if widened and principal.owns(org.id) and org.status == OrgStatus.approved and not principal.is_staff:
            org.status, org.status_reason = OrgStatus.pending, "regions widened: awaits approval again"
    org.version += 1
    org.updated_at = utcnow()
    await session.flush()
    await publish(session, events.ORGANIZATION_UPDATED, organization_event(org), subject=org.id)
    return org


async def _require_authority(session: AsyncSession, principal: Principal, org: Organization) -> None:
    """Admins decide on any organisation; a coordinator only for an approved hub of theirs whose regions (and
    their token's `regions`, when it carries them) cover every region the organisation serves."""
    if principal.has(Role.admin):
        return
    if not principal.has(Role.coordinator):
        raise NotAHubCoordinator("Only coordinators (of a hub covering the organisation) may do this.")
    if principal.owns(org.id):
        raise NotAHubCoordinator("An organisation's own coordinators do not decide on it; the hub covering it does.")
    hub = await OrganizationRepository(session).get(principal.org)
    if hub is None or hub.kind != OrgKind.hub or hub.status != OrgStatus.approved:
        raise NotAHubCoordinator(f"Your organisation {principal.org!r} is not an approved hub.")
    if not covers(hub.region_codes, org.region_codes) or (
        principal.regions is not None and not covers(principal.regions, org.region_codes)
    ):
        served = ", ".join(org.region_codes) or "the whole country"
        raise OutsideYourHub(f"{org.id!r} serves {served}, beyond what you cover.")


async def decide(
    session: AsyncSession, principal: Principal, org_id: str, status: OrgStatus, data: schemas.OrganizationDecision
) -> Organization:
    """Approve or suspend an organisation (approving a suspended one lifts the suspension)."""
    org = await get_organization(session, org_id, for_update=True)
    await _require_authority(session, principal, org)
    if org.status == status:
        raise AlreadyDecided(f"{org.id!r} is already {status.value}.")
    now = utcnow()
    org.status = status
    org.status_reason = data.reason
    org.decided_by, org.decided_by_org, org.decided_at = principal.sub, principal.org, now
    org.version += 1
    org.updated_at = now
    await session.flush()
    event = events.ORGANIZATION_APPROVED if status == OrgStatus.approved else events.ORGANIZATION_SUSPENDED
    await publish(session, event, organization_event(org), subject=org.id)
    return org


async def require_approved(session: AsyncSession, principal: Principal, settings: Settings) -> None:
    """With the registry on, only approved organisations act (the rule every other service applies through
    shared.orgs, which this service's own routes leave to it)."""
    if not settings.org_registry_enforced or principal.has(Role.admin):
        return
    org = await OrganizationRepository(session).get(principal.org)
    if org is None:
        raise OrganisationNotApproved(
            f"Organisation {principal.org!r} is not registered: register it (POST /v1/organizations).",
            extra={"org_status": None},
        )
    if org.status != OrgStatus.approved:
        raise OrganisationNotApproved(
            f"Organisation {org.id!r} is {org.status.value}.", extra={"org_status": org.status}
        )
