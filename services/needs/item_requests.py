"""Item requests: a frontline unit asks for an item the catalog lacks, its need lines wait as `pending_item`, and a
coordinator approves the request as a new item or maps it to an existing one (the lines then open, converted to
the item's base unit) or refuses it (the lines are cancelled with the reason). Also the coordinator's substitution
override on a need line."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.needs import events, schemas, service
from services.needs.errors import (
    ItemNotFound,
    ItemRequestNotFound,
    ItemRequestNotPending,
    NeedLineNotFound,
    NeedNotOpen,
)
from services.needs.models import ItemRequest, Need
from services.needs.repository import NeedRepository
from shared.auth import Principal, require_in_region
from shared.catalog import Item, ItemName, get_catalog
from shared.db import utcnow
from shared.errors import InvalidRequest
from shared.pagination import PageParams, paginate
from shared.vocabulary import ACTIVE_NEED_STATUSES, ItemRequestStatus, NeedLineStatus, NeedStatus


async def create_request(session: AsyncSession, principal: Principal, data: schemas.ItemRequestCreate) -> ItemRequest:
    request = ItemRequest(
        id=uuid.uuid4(),
        org=principal.org,
        name=data.name,
        unit=data.unit,
        category=data.category,
        note=data.note,
        status=ItemRequestStatus.pending,
        requested_by=principal.sub,
    )
    session.add(request)
    await session.flush()
    await session.refresh(request)
    return request


async def get_request(session: AsyncSession, request_id: uuid.UUID, *, for_update: bool = False) -> ItemRequest:
    stmt = select(ItemRequest).where(ItemRequest.id == request_id)
    if for_update:
        stmt = stmt.with_for_update()
    found = (await session.execute(stmt)).scalar_one_or_none()
    if found is None:
        raise ItemRequestNotFound(f"No item request {request_id}.")
    return found


async def list_requests(
    session: AsyncSession, params: PageParams, *, status: ItemRequestStatus | None
) -> tuple[list[ItemRequest], str | None]:
    stmt = select(ItemRequest)
    if status is not None:
        stmt = stmt.where(ItemRequest.status == status)
    return await paginate(session, stmt, ItemRequest.created_at, ItemRequest.id, params)


async def _open_waiting_lines(session: AsyncSession, request: ItemRequest, item: Item) -> None:
    """Every line waiting on the request becomes an open line of the item, in its base unit, and its need is
    published (so matching sees it); a line whose unit the item does not know keeps waiting, with the reason."""
    for need_id in await NeedRepository(session).waiting_on(request.id):
        need = await service.get_need(session, need_id, for_update=True)
        for line in need.lines:
            if line.item_request_id != request.id or line.status != NeedLineStatus.pending_item:
                continue
            per = item.base_units_per(line.unit)
            if per is None:
                line.pending_reason = (
                    f"{item.code} is counted in {', '.join(item.units())}, not {line.unit!r}: post the line again."
                )
                continue
            line.item_code, line.quantity, line.unit = item.code, line.quantity * per, item.base_unit
            line.status, line.pending_reason = NeedLineStatus.open, None
        need.version += 1
        need.updated_at = utcnow()
        await session.flush()
        await events.publish_need(session, events.NEED_UPDATED, need)


async def _decide(
    session: AsyncSession, principal: Principal, request: ItemRequest, item: Item, status: ItemRequestStatus
) -> ItemRequest:
    request.status, request.item_code = status, item.code
    request.decided_by, request.decided_at = principal.sub, utcnow()
    await session.flush()
    await _open_waiting_lines(session, request, item)
    await session.refresh(request)
    return request


def _require_pending(request: ItemRequest) -> None:
    if request.status != ItemRequestStatus.pending:
        raise ItemRequestNotPending(f"The item request is already {request.status}.")


async def approve_request(
    session: AsyncSession, principal: Principal, request_id: uuid.UUID, data: schemas.ItemRequestApprove
) -> ItemRequest:
    """Add the requested item to the catalog (as POST /v1/items does) and open the lines waiting on it."""
    request = await get_request(session, request_id, for_update=True)
    _require_pending(request)
    if data.code.split(".")[0] != request.category:
        raise InvalidRequest(
            f"The code must begin with the request's category {request.category!r}.",
            errors=[{"loc": ["body", "code"], "msg": f"must begin with {request.category}."}],
        )
    name = data.name or ItemName(zh=request.name, en=request.name)
    item = await service.add_item(
        session, schemas.ItemCreate(code=data.code, name=name, unit=request.unit, packs=data.packs, grade=data.grade)
    )
    return await _decide(session, principal, request, item, ItemRequestStatus.approved)


async def map_request(
    session: AsyncSession, principal: Principal, request_id: uuid.UUID, data: schemas.ItemRequestMap
) -> ItemRequest:
    """Map the request to an item the catalog holds and open the lines waiting on it."""
    request = await get_request(session, request_id, for_update=True)
    _require_pending(request)
    item = get_catalog().get(data.code)
    if item is None:
        raise ItemNotFound(f"No item {data.code} in the catalog.")
    return await _decide(session, principal, request, item, ItemRequestStatus.mapped)


async def refuse_request(
    session: AsyncSession, principal: Principal, request_id: uuid.UUID, data: schemas.ItemRequestRefuse
) -> ItemRequest:
    """Refuse the request: the lines waiting on it are cancelled with the reason (kept on the need, never
    matched; the need is closed when none of its lines is left), and each need is published."""
    request = await get_request(session, request_id, for_update=True)
    _require_pending(request)
    request.status, request.refused_reason = ItemRequestStatus.refused, data.reason
    request.decided_by, request.decided_at = principal.sub, utcnow()
    await session.flush()
    why = f"item request refused: {data.reason}"[:2000]
    for need_id in await NeedRepository(session).waiting_on(request.id):
        need = await service.get_need(session, need_id, for_update=True)
        for line in need.lines:
            if line.item_request_id == request.id and line.status == NeedLineStatus.pending_item:
                line.status, line.pending_reason = NeedLineStatus.cancelled, why
        left = any(line.status != NeedLineStatus.cancelled for line in need.lines)
        closing = not left and need.status in ACTIVE_NEED_STATUSES
        if closing:
            need.status, need.close_reason, need.closed_at = NeedStatus.closed, why, utcnow()
        need.version += 1
        need.updated_at = utcnow()
        await session.flush()
        if closing:
            await events.publish_need(session, events.NEED_CLOSED, need, reason=why)
        else:
            await events.publish_need(session, events.NEED_UPDATED, need)
    await session.refresh(request)
    return request


# --- substitution override ------------------------------------------------------------------------------------


async def override_substitution(
    session: AsyncSession,
    principal: Principal,
    need_id: uuid.UUID,
    line_id: uuid.UUID,
    data: schemas.SubstitutionOverrideRequest,
) -> Need:
    """Record on a need line that general-grade substitutes may serve it (who, when, why); matching follows."""
    need = await service.get_need(session, need_id, for_update=True)
    require_in_region(principal, need.region_code, what="The need")
    if need.status not in ACTIVE_NEED_STATUSES:
        raise NeedNotOpen(f"The need is {need.status}; its lines no longer change.")
    line = next((x for x in need.lines if x.id == line_id), None)
    if line is None:
        raise NeedLineNotFound(f"The need has no line {line_id}.")
    line.substitution_override = True
    line.override_by, line.override_at, line.override_reason = principal.sub, utcnow(), data.reason
    need.version += 1
    need.updated_at = utcnow()
    await session.flush()
    await events.publish_need(session, events.NEED_UPDATED, need)
    return need
