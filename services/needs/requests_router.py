"""HTTP endpoints of item requests (an item the catalog lacks, asked for by anyone, decided by a coordinator) and
of a coordinator's substitution override on a need line."""

from __future__ import annotations

import uuid

from fastapi import Response, status

from services.needs import item_requests, schemas
from services.needs.dependencies import Coordinator
from services.needs.errors import (
    ItemExists,
    ItemNotFound,
    ItemRequestNotFound,
    ItemRequestNotPending,
    NeedLineNotFound,
    NeedNotFound,
    NeedNotOpen,
)
from shared.app import SessionDep, service_router
from shared.auth import CurrentPrincipal, require_national
from shared.errors import Forbidden, problem_responses
from shared.etag import set_etag
from shared.pagination import Page, PageQuery
from shared.vocabulary import ItemRequestStatus

router = service_router(prefix="/v1", tags=["needs"])


@router.post("/items/requests", status_code=status.HTTP_201_CREATED, responses=problem_responses())
async def create_item_request(
    data: schemas.ItemRequestCreate, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> schemas.ItemRequest:
    """Ask for an item the catalog lacks (any token); need lines may name the request while it is pending."""
    request = await item_requests.create_request(session, principal, data)
    response.headers["Location"] = f"/v1/items/requests/{request.id}"
    return schemas.ItemRequest.model_validate(request)


@router.get("/items/requests", responses=problem_responses(Forbidden))
async def list_item_requests(
    principal: Coordinator, session: SessionDep, page: PageQuery, status: ItemRequestStatus | None = None
) -> Page[schemas.ItemRequest]:
    """Item requests, newest first, filtered by status (coordinators)."""
    items, cursor = await item_requests.list_requests(session, page, status=status)
    return Page(items=[schemas.ItemRequest.model_validate(r) for r in items], next_cursor=cursor)


@router.get("/items/requests/{request_id}", responses=problem_responses(ItemRequestNotFound))
async def get_item_request(
    request_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep
) -> schemas.ItemRequest:
    """One item request, with the item it became once decided."""
    return schemas.ItemRequest.model_validate(await item_requests.get_request(session, request_id))


@router.post(
    "/items/requests/{request_id}/approve",
    responses=problem_responses(Forbidden, ItemRequestNotFound, ItemRequestNotPending, ItemExists),
)
async def approve_item_request(
    request_id: uuid.UUID, data: schemas.ItemRequestApprove, principal: Coordinator, session: SessionDep
) -> schemas.ItemRequest:
    """Add the requested item to the catalog under `code` (national coordinators); the need lines waiting on the
    request open as lines of it and are matched."""
    require_national(principal, what="The item catalog")
    return schemas.ItemRequest.model_validate(await item_requests.approve_request(session, principal, request_id, data))


@router.post(
    "/items/requests/{request_id}/map",
    responses=problem_responses(Forbidden, ItemRequestNotFound, ItemRequestNotPending, ItemNotFound),
)
async def map_item_request(
    request_id: uuid.UUID, data: schemas.ItemRequestMap, principal: Coordinator, session: SessionDep
) -> schemas.ItemRequest:
    """Map the request to an existing catalog item (national coordinators); the waiting lines open as lines of it."""
    require_national(principal, what="The item catalog")
    return schemas.ItemRequest.model_validate(await item_requests.map_request(session, principal, request_id, data))


@router.post(
    "/items/requests/{request_id}/refuse",
    responses=problem_responses(Forbidden, ItemRequestNotFound, ItemRequestNotPending),
)
async def refuse_item_request(
    request_id: uuid.UUID, data: schemas.ItemRequestRefuse, principal: Coordinator, session: SessionDep
) -> schemas.ItemRequest:
    """Refuse the request with a reason (national coordinators); the need lines waiting on it are cancelled with
    that reason, and a need left with no other line is closed."""
    require_national(principal, what="The item catalog")
    return schemas.ItemRequest.model_validate(await item_requests.refuse_request(session, principal, request_id, data))


@router.post(
    "/needs/{need_id}/lines/{line_id}/substitution-override",
    responses=problem_responses(NeedNotFound, NeedLineNotFound, Forbidden, NeedNotOpen),
)
async def override_substitution(
    need_id: uuid.UUID,
    line_id: uuid.UUID,
    data: schemas.SubstitutionOverrideRequest,
    principal: Coordinator,
    session: SessionDep,
    response: Response,
) -> schemas.Need:
    """Allow general-grade substitutes for a (medical) need line (coordinators): recorded with who, when and why,
    and followed by matching."""
    need = await item_requests.override_substitution(session, principal, need_id, line_id, data)
    set_etag(response, need.version)
    return schemas.Need.model_validate(need)
