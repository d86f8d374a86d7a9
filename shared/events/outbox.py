"""Writing events: into the service's outbox table, inside the caller's transaction."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import kit_of
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
    await session.execute(
        kit.outbox.insert().values(
            id=event.id,
            stream=stream_for(service),
            type=event.type,
            subject=subject,
            envelope=event.model_dump(mode="json", exclude_none=True),
        )
    )
    return event
