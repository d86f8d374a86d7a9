"""Business rules of the webhooks service: working groups' endpoints (secrets shown once, rotated with a grace
period), the deliveries and their replays, what is sent, and the event catalog."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from datetime import datetime, timedelta
from importlib.metadata import entry_points
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks import events, schemas
from services.webhooks.errors import DeliveryNotFound, EndpointNotFound, NotYourEndpoint, RefusedUrl, ScopeNotAllowed
from services.webhooks.models import Delivery, Endpoint
from services.webhooks.repository import DeliveryRepository, EndpointRepository
from services.webhooks.safety import AddressPolicy, RefusedAddress
from shared.auth import STAFF, Principal, Role
from shared.db import utcnow
from shared.etag import IfMatch, check_version
from shared.events import event_catalog, publish
from shared.pagination import PageParams
from shared.settings import Settings


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


EVENT_TYPES_GROUP = "reliefhub.event_types"


def event_type_catalog() -> schemas.EventTypeList:
    """Every event type the services publish, with the JSON Schema of its data. Each service declares its events
    module in the `reliefhub.event_types` entry-point group; loading one registers its types."""
    for entry_point in entry_points(group=EVENT_TYPES_GROUP):
        entry_point.load()
    return schemas.EventTypeList(
        items=[
            schemas.EventTypeInfo(
                type=et.name, service=et.service, description=et.description, schema_=et.json_schema()
            )
            for et in event_catalog()
        ]
    )


# --- endpoints ------------------------------------------------------------------------------------------------


async def check_url(url: str, settings: Settings) -> None:
    loc = [{"loc": ["body", "url"], "msg": "refused"}]
    if settings.environment == "production" and not url.startswith("https://"):
        raise RefusedUrl("Webhook URLs must use https.", errors=loc)
    try:
        await AddressPolicy(settings.webhook_allowed_networks).check_url(url)
    except RefusedAddress as exc:
        raise RefusedUrl(f"Webhooks may not call this URL: {exc}.", errors=loc) from exc


def _may_manage(principal: Principal, endpoint: Endpoint) -> None:
    if not (principal.is_staff or principal.owns(endpoint.org)):
        raise NotYourEndpoint()


def endpoint_scope(principal: Principal, asked: schemas.EndpointScope | None) -> schemas.EndpointScope:
    """Donor and frontline organisations hear of their own records only; the groups that serve everyone may
    choose either."""
    if principal.has(Role.working_group, Role.logistics, *STAFF):
        return asked or schemas.EndpointScope.all
    if asked == schemas.EndpointScope.all:
        raise ScopeNotAllowed(
            "Donor and frontline organisations receive events about their own records only (scope own).",
            errors=[{"loc": ["body", "scope"], "msg": "only own"}],
        )
    return schemas.EndpointScope.own


async def create_endpoint(
    session: AsyncSession, principal: Principal, data: schemas.EndpointCreate, settings: Settings
) -> Endpoint:
    url = str(data.url)
    scope = endpoint_scope(principal, data.scope)
    await check_url(url, settings)
    now = utcnow()
    endpoint = Endpoint(
        id=uuid.uuid4(),
        org=principal.org,
        url=url,
        event_types=sorted(set(data.event_types)),
        filters=data.filters.model_dump(),
        scope=scope.value,
        description=data.description,
        enabled=data.enabled,
        secret=new_secret(),
        created_by=principal.sub,
        version=1,
        created_at=now,
        updated_at=now,
    )
    EndpointRepository(session).add(endpoint)
    await session.flush()
    return endpoint


async def get_endpoint(
    session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID, *, for_update: bool = False
) -> Endpoint:
    endpoint = await EndpointRepository(session).get(endpoint_id, for_update=for_update)
    if endpoint is None:
        raise EndpointNotFound(f"No webhook endpoint {endpoint_id}.")
    _may_manage(principal, endpoint)
    return endpoint


async def list_endpoints(
    session: AsyncSession, principal: Principal, params: PageParams, enabled: bool | None
) -> tuple[list[Endpoint], str | None]:
    org = None if principal.is_staff else principal.org
    return await EndpointRepository(session).search(params, org=org, enabled=enabled)


async def update_endpoint(
    session: AsyncSession,
    principal: Principal,
    endpoint_id: uuid.UUID,
    data: schemas.EndpointUpdate,
    expected: IfMatch,
    settings: Settings,
) -> Endpoint:
    endpoint = await get_endpoint(session, principal, endpoint_id, for_update=True)
    check_version(expected, endpoint.version)
    changes = data.model_dump(exclude_unset=True, mode="json")
    if changes.get("url") is not None:
        await check_url(changes["url"], settings)
        endpoint.url = changes["url"]
    if changes.get("event_types") is not None:
        endpoint.event_types = sorted(set(changes["event_types"]))
    if changes.get("filters") is not None:
        endpoint.filters = changes["filters"]
    if "description" in changes:
        endpoint.description = changes["description"]
    if changes.get("enabled") is not None:
        if changes["enabled"] and not endpoint.enabled:  # a fresh start: failures so far are forgotten
            endpoint.disabled_reason, endpoint.failing_since = None, None
            await DeliveryRepository(session).wake_dispatchers()  # its pending deliveries are due
        endpoint.enabled = changes["enabled"]
        if not endpoint.enabled and endpoint.disabled_reason is None:
            endpoint.disabled_reason = f"disabled by {principal.sub}"
    endpoint.version += 1
    endpoint.updated_at = utcnow()
    await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID) -> None:
    endpoint = await get_endpoint(session, principal, endpoint_id, for_update=True)
    await EndpointRepository(session).remove(endpoint)


async def rotate_secret(
    session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID, grace_seconds: int | None, settings: Settings
) -> Endpoint:
    """A new secret; the old one keeps signing alongside it for the grace period, so receivers can switch."""
    endpoint = await get_endpoint(session, principal, endpoint_id, for_update=True)
    grace = settings.webhook_secret_grace_seconds if grace_seconds is None else grace_seconds
    endpoint.previous_secret = endpoint.secret if grace > 0 else None
    endpoint.previous_secret_expires_at = utcnow() + timedelta(seconds=grace) if grace > 0 else None
    endpoint.secret = new_secret()
    endpoint.version += 1
    endpoint.updated_at = utcnow()
    await session.flush()
    return endpoint


async def disable(session: AsyncSession, endpoint: Endpoint, reason: str) -> None:
    """Stop delivering to an endpoint, and say so on the webhooks stream."""
    if not endpoint.enabled:
        return
    endpoint.enabled, endpoint.disabled_reason = False, reason
    endpoint.version += 1
    endpoint.updated_at = utcnow()
    await session.flush()
    await publish(
        session,
        events.ENDPOINT_DISABLED,
        events.EndpointData(
            id=endpoint.id,
            org=endpoint.org,
            url=endpoint.url,
            enabled=False,
            reason=reason,
            failing_since=endpoint.failing_since,
        ),
        subject=str(endpoint.id),
    )


# --- deliveries -----------------------------------------------------------------------------------------------


async def list_deliveries(
    session: AsyncSession,
    principal: Principal,
    endpoint_id: uuid.UUID,
    params: PageParams,
    *,
    status: schemas.DeliveryStatus | None,
    event_type: str | None,
    event_id: str | None,
    since: datetime | None,
) -> tuple[list[Delivery], str | None]:
    await get_endpoint(session, principal, endpoint_id)
    return await DeliveryRepository(session).search(
        endpoint_id, params, status=status, event_type=event_type, event_id=event_id, since=since
    )


async def get_delivery(session: AsyncSession, principal: Principal, delivery_id: uuid.UUID) -> schemas.DeliveryDetail:
    repo = DeliveryRepository(session)
    delivery = await repo.get(delivery_id)
    if delivery is None:
        raise DeliveryNotFound(f"No webhook delivery {delivery_id}.")
    await get_endpoint(session, principal, delivery.endpoint_id)
    out = schemas.DeliveryDetail.model_validate(delivery)
    out.attempt_log = [schemas.AttemptOut.model_validate(a) for a in await repo.attempts(delivery.id)]
    return out


async def retry_delivery(session: AsyncSession, principal: Principal, delivery_id: uuid.UUID) -> schemas.DeliveryDetail:
    repo = DeliveryRepository(session)
    delivery = await repo.get(delivery_id, for_update=True)
    if delivery is None:
        raise DeliveryNotFound(f"No webhook delivery {delivery_id}.")
    await get_endpoint(session, principal, delivery.endpoint_id)
    await repo.requeue(delivery_id=delivery_id)
    await session.refresh(delivery)
    return await get_delivery(session, principal, delivery_id)


async def replay(session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID, since: datetime) -> int:
    await get_endpoint(session, principal, endpoint_id)
    return await DeliveryRepository(session).requeue(endpoint_id=endpoint_id, since=since)


# --- what is sent ---------------------------------------------------------------------------------------------


def body_of(event: dict[str, Any], delivery_id: uuid.UUID, settings: Settings) -> str:
    """What is sent: the CloudEvent itself, or — when it would exceed the payload limit — its envelope with a
    `dataref` link (CloudEvents' dataref extension) to the delivery, whose `payload` holds the whole event."""
    body = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
    if len(body.encode()) <= settings.webhook_max_payload_bytes:
        return body
    envelope = {k: v for k, v in event.items() if k != "data"}
    envelope["dataref"] = f"{settings.public_base_url.rstrip('/')}/v1/webhook-deliveries/{delivery_id}"
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
