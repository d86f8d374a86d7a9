"""Business rules of capacities: what an organisation declares it can do (units of a `service.*` catalog item a
day, within a date window, over the regions it covers), changes and withdraws. Matching reads them from the
events published here."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from services.partners import events, schemas
from services.partners.errors import (
    BeyondYourArea,
    CapacityNotFound,
    CapacityWithdrawn,
    NotAService,
    NotYourOrganization,
)
from services.partners.models import Capacity
from services.partners.repository import CapacityFilters, CapacityRepository, OrganizationRepository
from services.partners.service import covers, require_approved
from shared.auth import Principal, Role
from shared.catalog import get_catalog
from shared.db import utcnow
from shared.errors import InvalidRequest
from shared.etag import IfMatch, check_version
from shared.events import publish
from shared.pagination import PageParams
from shared.settings import Settings
from shared.vocabulary import SERVICE_CATEGORY, CapacityStatus


def capacity_event(capacity: Capacity) -> events.CapacityData:
    return events.CapacityData.model_validate(capacity, from_attributes=True)


def is_live(capacity: Capacity, today: date) -> bool:
    """Offered and not yet over: what matching may still propose."""
    return capacity.status == CapacityStatus.active and capacity.ends_on >= today


def require_service(code: str) -> None:
    item = get_catalog().get(code)
    if item is None or item.category != SERVICE_CATEGORY or not code.startswith(f"{SERVICE_CATEGORY}."):
        raise NotAService(
            f"{code!r} is not a service of the catalog (psychological support, interpreting, drivers…).",
            errors=[{"loc": ["body", "service_code"], "msg": "not a service.* catalog item"}],
        )


async def _require_within_org(session: AsyncSession, org_id: str, region_codes: list[str]) -> None:
    """A registered organisation declares capacities only over regions it serves (a national area needs a
    national organisation)."""
    org = await OrganizationRepository(session).get(org_id)
    if org is not None and not covers(org.region_codes, region_codes):
        served = ", ".join(org.region_codes) or "the whole country"
        raise BeyondYourArea(
            f"{org_id!r} serves {served}; the capacity reaches beyond it.",
            errors=[{"loc": ["body", "region_codes"], "msg": "beyond the regions the organisation serves"}],
        )


def _require_owner(principal: Principal, org_id: str) -> None:
    if not principal.owns(org_id) and not principal.has(Role.admin):
        raise NotYourOrganization(f"Only {org_id!r} itself changes its capacities.")


async def get_capacity(session: AsyncSession, capacity_id: uuid.UUID, *, for_update: bool = False) -> Capacity:
    capacity = await CapacityRepository(session).get(capacity_id, for_update=for_update)
    if capacity is None:
        raise CapacityNotFound(f"No capacity {capacity_id}.")
    return capacity


async def list_capacities(
    session: AsyncSession, filters: CapacityFilters, params: PageParams
) -> tuple[list[Capacity], str | None]:
    return await CapacityRepository(session).search(filters, params)


async def declare(
    session: AsyncSession, principal: Principal, data: schemas.CapacityCreate, settings: Settings
) -> Capacity:
    """An organisation declares a capacity (its own; an admin may declare one for another)."""
    org_id = data.org or principal.org
    _require_owner(principal, org_id)
    await require_approved(session, principal, settings)
    require_service(data.service_code)
    regions = sorted(set(data.region_codes))
    await _require_within_org(session, org_id, regions)
    now = utcnow()
    capacity = Capacity(
        id=uuid.uuid4(),
        org=org_id,
        service_code=data.service_code,
        units_per_day=data.units_per_day,
        starts_on=data.starts_on,
        ends_on=data.ends_on,
        region_codes=regions,
        note=data.note,
        status=CapacityStatus.active,
        created_by=principal.sub,
        version=1,
        created_at=now,
        updated_at=now,
    )
    CapacityRepository(session).add(capacity)
    await session.flush()
    await publish(session, events.CAPACITY_DECLARED, capacity_event(capacity), subject=str(capacity.id))
    return capacity


async def _writable(
    session: AsyncSession, principal: Principal, capacity_id: uuid.UUID, settings: Settings
) -> Capacity:
    capacity = await get_capacity(session, capacity_id, for_update=True)
    _require_owner(principal, capacity.org)
    await require_approved(session, principal, settings)
    if capacity.status == CapacityStatus.withdrawn:
        raise CapacityWithdrawn(f"Capacity {capacity.id} was withdrawn.")
    return capacity


async def update(
    session: AsyncSession,
    principal: Principal,
    capacity_id: uuid.UUID,
    data: schemas.CapacityUpdate,
    expected_version: IfMatch,
    settings: Settings,
) -> Capacity:
    """Change a capacity's units, window, area or note (its organisation; send If-Match)."""
    capacity = await _writable(session, principal, capacity_id, settings)
    check_version(expected_version, capacity.version)
    starts_on = data.starts_on or capacity.starts_on
    ends_on = data.ends_on or capacity.ends_on
    try:
        schemas.check_window(starts_on, ends_on)
    except ValueError as exc:
        raise InvalidRequest(
            f"The window {starts_on}..{ends_on} does not hold: {exc}.",
            errors=[{"loc": ["body", "ends_on"], "msg": str(exc)}],
        ) from exc
    if data.region_codes is not None:
        regions = sorted(set(data.region_codes))
        await _require_within_org(session, capacity.org, regions)
        capacity.region_codes = regions
    if data.units_per_day is not None:
        capacity.units_per_day = data.units_per_day
    if "note" in data.model_fields_set:
        capacity.note = data.note
    capacity.starts_on, capacity.ends_on = starts_on, ends_on
    capacity.version += 1
    capacity.updated_at = utcnow()
    await session.flush()
    await publish(session, events.CAPACITY_UPDATED, capacity_event(capacity), subject=str(capacity.id))
    return capacity


async def withdraw(
    session: AsyncSession,
    principal: Principal,
    capacity_id: uuid.UUID,
    data: schemas.CapacityWithdrawal,
    settings: Settings,
) -> Capacity:
    """The organisation withdraws a capacity: it is no longer offered nor matched."""
    capacity = await _writable(session, principal, capacity_id, settings)
    now = utcnow()
    capacity.status = CapacityStatus.withdrawn
    capacity.withdrawn_reason, capacity.withdrawn_at = data.reason, now
    capacity.version += 1
    capacity.updated_at = now
    await session.flush()
    await publish(session, events.CAPACITY_WITHDRAWN, capacity_event(capacity), subject=str(capacity.id))
    return capacity
