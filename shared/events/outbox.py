"""Writing events: into the service's outbox table, inside the caller's transaction."""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import driver_connection, kit_of
from shared.events.envelope import CloudEvent, EventType, stream_for
from shared.tracing import current_traceparent


async def publish(
    session: AsyncSession, event_type: EventType, data: BaseModel | dict[str, Any], *, subject: str | None = None
) -> CloudEvent:
    """Queue an event in the outbox; it is published only if the surrounding transaction commits."""
    kit = kit_of(session)
    service: str = session.info["service"]
    if event_type.service != service:
        raise ValueError(f"{service} cannot publish {event_type.name}")
    payload = (
        event_type.data_model.model_validate(data).model_dump(mode="json")
        if isinstance(data, dict)
        else data.model_dump(mode="json")
    )
    event = CloudEvent(
        source=f"/reliefhub/{service}",
        type=event_type.name,
        subject=subject,
        data=payload,
        traceparent=current_traceparent(),
    )
    driver = await driver_connection(session)
    await driver.execute(
        _insert_sql(kit.schema),
        uuid.UUID(event.id),
        stream_for(service),
        event.type,
        subject,
        event.model_dump_json(exclude_none=True),
    )
    return event


@cache
def _insert_sql(schema: str) -> str:
    return f'INSERT INTO "{schema}".outbox_event (id, stream, type, subject, envelope) VALUES ($1, $2, $3, $4, $5)'
