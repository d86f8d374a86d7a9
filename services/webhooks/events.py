"""Event types the webhooks service publishes, and its handler of every service's stream: the deliveries each
endpoint is owed."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks.models import Endpoint
from services.webhooks.repository import DeliveryRepository, EndpointRepository
from services.webhooks.schemas import DeliveryStatus, EndpointScope
from shared.db import utcnow
from shared.events import CloudEvent, register_event_type
from shared.service import Subscription


class EndpointData(BaseModel):
    id: uuid.UUID
    org: str
    url: str
    enabled: bool
    reason: str | None
    failing_since: datetime | None


ENDPOINT_DISABLED = register_event_type(
    "reliefhub.webhooks.endpoint.disabled",
    "An endpoint was disabled: it answered 410 Gone, or failed every delivery for too long.",
    EndpointData,
)


# --- which endpoints an event is owed to --------------------------------------------------------------------


def pattern_matches(pattern: str, event_type: str) -> bool:
    if pattern == "*" or pattern == event_type:
        return True
    return pattern.endswith(".*") and event_type.startswith(pattern[:-1])


def _facts(data: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The item codes and region codes an event's data speaks of (top level, lines and lots)."""
    items: set[str] = set()
    regions: set[str] = set()
    for row in [data, *data.get("lines", []), *data.get("lots", [])]:
        if not isinstance(row, dict):
            continue
        for key in ("item_code", "lot_item_code"):
            if isinstance(row.get(key), str):
                items.add(row[key])
        if isinstance(row.get("region_code"), str):
            regions.add(row["region_code"])
    return items, regions


def wants(endpoint: Endpoint, event: CloudEvent) -> bool:
    if not any(pattern_matches(p, event.type) for p in endpoint.event_types):
        return False
    if event.type.startswith("reliefhub.webhooks.") and event.data.get("org") != endpoint.org:
        return False  # news about an endpoint is for its own organisation only
    if endpoint.scope == EndpointScope.own and endpoint.org not in (event.orgs or ()):
        return False
    filters = endpoint.filters or {}
    items, regions = _facts(event.data)
    if filters.get("item_codes") and not any(i.startswith(tuple(filters["item_codes"])) for i in items):
        return False
    return not (filters.get("region_codes") and not any(r.startswith(tuple(filters["region_codes"])) for r in regions))


async def on_events(session: AsyncSession, batch: list[CloudEvent]) -> None:
    """Every service's stream → the deliveries owed to each enabled endpoint that wants an event."""
    endpoints = await EndpointRepository(session).enabled()
    rows: list[dict[str, Any]] = []
    now = utcnow()
    for event in batch:
        wanted = [e for e in endpoints if wants(e, event)]
        # `orgs` routes the event; receivers are not told whose else it is.
        payload = event.model_dump(mode="json", exclude={"orgs"}) if wanted else None
        rows.extend(
            {
                "id": uuid.uuid4(),
                "endpoint_id": endpoint.id,
                "event_id": event.id,
                "event_type": event.type,
                "event_time": event.time,
                "payload": payload,
                "status": DeliveryStatus.pending,
                "attempts": 0,
                "next_attempt_at": now,
            }
            for endpoint in wanted
        )
    await DeliveryRepository(session).add_many(rows)


async def on_event(session: AsyncSession, event: CloudEvent) -> None:
    await on_events(session, [event])


# Every service's stream, webhooks' own included (an endpoint may watch others being disabled).
SUBSCRIPTIONS = [
    Subscription(stream=f"{name}.events", group="webhooks-fanout", handler=on_event, batch_handler=on_events)
    for name in ("needs", "supply", "matching", "logistics", "webhooks", "partners")
]
