"""HTTP endpoints of the webhooks service: working groups' endpoints, their deliveries, the event catalog."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request, Response, status

from services.webhooks import schemas, service
from services.webhooks.errors import DeliveryNotFound, EndpointNotFound, NotYourEndpoint, RefusedUrl, ScopeNotAllowed
from services.webhooks.models import Endpoint
from shared.app import SessionDep, service_router
from shared.auth import CurrentPrincipal, Principal, Role, require_roles
from shared.errors import PreconditionFailed, PreconditionRequired, problem_responses
from shared.etag import if_match_version, set_etag
from shared.pagination import Page, PageQuery
from shared.vocabulary import Timestamp

router = service_router(prefix="/v1", tags=["webhooks"])

# Working groups own endpoints for their organisation, the logistics group too; donor and frontline organisations
# own endpoints scoped to their own records; coordinators see all.
Owner = Annotated[
    Principal,
    Depends(require_roles(Role.working_group, Role.logistics, Role.coordinator, Role.donor, Role.frontline)),
]


def endpoint_out(endpoint: Endpoint, *, with_secret: bool = False) -> schemas.Endpoint:
    out = schemas.Endpoint.model_validate(endpoint)
    out.secret = endpoint.secret if with_secret else None
    return out


@router.get("/event-types", responses=problem_responses())
async def list_event_types(principal: CurrentPrincipal) -> schemas.EventTypeList:
    """The catalog of event types every service publishes, each with the JSON Schema of its data."""
    return service.event_type_catalog()


@router.post(
    "/webhook-endpoints", status_code=status.HTTP_201_CREATED, responses=problem_responses(RefusedUrl, ScopeNotAllowed)
)
async def create_endpoint(
    data: schemas.EndpointCreate, request: Request, principal: Owner, session: SessionDep, response: Response
) -> schemas.Endpoint:
    """Register an endpoint for your organisation; the signing secret (`whsec_…`) is in this response only."""
    endpoint = await service.create_endpoint(session, principal, data, request.app.state.settings)
    set_etag(response, endpoint.version)
    response.headers["Location"] = f"/v1/webhook-endpoints/{endpoint.id}"
    return endpoint_out(endpoint, with_secret=True)


@router.get("/webhook-endpoints", responses=problem_responses())
async def list_endpoints(
    principal: Owner, session: SessionDep, page: PageQuery, enabled: bool | None = None
) -> Page[schemas.Endpoint]:
    """Your organisation's endpoints (all, for coordinators), newest first."""
    items, cursor = await service.list_endpoints(session, principal, page, enabled)
    return Page(items=[endpoint_out(e) for e in items], next_cursor=cursor)


@router.get("/webhook-endpoints/{endpoint_id}", responses=problem_responses(EndpointNotFound, NotYourEndpoint))
async def get_endpoint(
    endpoint_id: uuid.UUID, principal: Owner, session: SessionDep, response: Response
) -> schemas.Endpoint:
    """One endpoint (never its secret)."""
    endpoint = await service.get_endpoint(session, principal, endpoint_id)
    set_etag(response, endpoint.version)
    return endpoint_out(endpoint)


@router.patch(
    "/webhook-endpoints/{endpoint_id}",
    responses=problem_responses(
        EndpointNotFound, NotYourEndpoint, RefusedUrl, PreconditionFailed, PreconditionRequired
    ),
)
async def update_endpoint(
    endpoint_id: uuid.UUID,
    data: schemas.EndpointUpdate,
    request: Request,
    principal: Owner,
    session: SessionDep,
    response: Response,
) -> schemas.Endpoint:
    """Change the URL, event types, filters, description or enabled flag (send If-Match); enabling a disabled
    endpoint forgets its failures."""
    expected = if_match_version(request)
    endpoint = await service.update_endpoint(
        session, principal, endpoint_id, data, expected, request.app.state.settings
    )
    set_etag(response, endpoint.version)
    return endpoint_out(endpoint)


@router.delete(
    "/webhook-endpoints/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(EndpointNotFound, NotYourEndpoint),
)
async def delete_endpoint(endpoint_id: uuid.UUID, principal: Owner, session: SessionDep) -> Response:
    """Delete an endpoint with its deliveries."""
    await service.delete_endpoint(session, principal, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/webhook-endpoints/{endpoint_id}/rotate-secret", responses=problem_responses(EndpointNotFound, NotYourEndpoint)
)
async def rotate_secret(
    endpoint_id: uuid.UUID,
    request: Request,
    principal: Owner,
    session: SessionDep,
    response: Response,
    data: schemas.RotateRequest | None = None,
) -> schemas.Endpoint:
    """A new secret (in this response only); the old one keeps signing too during the grace period."""
    endpoint = await service.rotate_secret(
        session, principal, endpoint_id, (data or schemas.RotateRequest()).grace_seconds, request.app.state.settings
    )
    set_etag(response, endpoint.version)
    return endpoint_out(endpoint, with_secret=True)


@router.post("/webhook-endpoints/{endpoint_id}/replay", responses=problem_responses(EndpointNotFound, NotYourEndpoint))
async def replay(
    endpoint_id: uuid.UUID, data: schemas.ReplayRequest, principal: Owner, session: SessionDep
) -> schemas.ReplayResult:
    """Send every delivery made to this endpoint since a time again (same webhook-id, fresh attempts)."""
    return schemas.ReplayResult(requeued=await service.replay(session, principal, endpoint_id, data.since))


@router.get(
    "/webhook-endpoints/{endpoint_id}/deliveries", responses=problem_responses(EndpointNotFound, NotYourEndpoint)
)
async def list_deliveries(
    endpoint_id: uuid.UUID,
    principal: Owner,
    session: SessionDep,
    page: PageQuery,
    status: schemas.DeliveryStatus | None = None,
    event_type: Annotated[str | None, Query(max_length=200)] = None,
    event_id: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[Timestamp | None, Query(description="Deliveries made since then.")] = None,
) -> Page[schemas.Delivery]:
    """The endpoint's deliveries, newest first, by status, event type, event id or time."""
    items, cursor = await service.list_deliveries(
        session, principal, endpoint_id, page, status=status, event_type=event_type, event_id=event_id, since=since
    )
    return Page(items=[schemas.Delivery.model_validate(d) for d in items], next_cursor=cursor)


@router.get("/webhook-deliveries/{delivery_id}", responses=problem_responses(DeliveryNotFound, NotYourEndpoint))
async def get_delivery(delivery_id: uuid.UUID, principal: Owner, session: SessionDep) -> schemas.DeliveryDetail:
    """One delivery with the full event and every attempt (status, latency, the first 1 kB of the answer)."""
    return await service.get_delivery(session, principal, delivery_id)


@router.post("/webhook-deliveries/{delivery_id}/retry", responses=problem_responses(DeliveryNotFound, NotYourEndpoint))
async def retry_delivery(delivery_id: uuid.UUID, principal: Owner, session: SessionDep) -> schemas.DeliveryDetail:
    """Send this delivery again now (its attempts start over; the log keeps the earlier ones)."""
    return await service.retry_delivery(session, principal, delivery_id)
