"""Writing events: into the service's outbox table, inside the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from shared import wakeup
from shared.db import driver_connection, kit_of
from shared.events.envelope import SPEC_VERSION, CloudEvent, EventType, stream_for
from shared.tracing import current_traceparent

# Fields of event data that name an organisation the event's records belong to.
OWNER_FIELDS = ("org", "need_org", "offer_org", "destination_org", "origin_org")


def owning_orgs(payload: dict[str, Any]) -> list[str]:
    return sorted({v for k in OWNER_FIELDS if isinstance(v := payload.get(k), str) and v})


def outbox_row(
    session: AsyncSession,
    event_type: EventType,
    data: BaseModel | dict[str, Any],
    *,
    subject: str | None = None,
    orgs: Iterable[str] | None = None,
) -> tuple[CloudEvent, tuple[Any, ...]]:
    """The event and the parameters of its outbox row (id, stream, type, subject, envelope), for a caller
    that writes the row as part of its own statement (see `OUTBOX_COLUMNS`). `orgs` are the organisations the
    event's records belong to; by default those its data names (`OWNER_FIELDS`)."""
    service: str = session.info["service"]
    if event_type.service != service:
        raise ValueError(f"{service} cannot publish {event_type.name}")
    payload = (
        event_type.data_model.model_validate(data).model_dump(mode="json")
        if isinstance(data, dict)
        else data.model_dump(mode="json")
    )
    # Every attribute is built here with its right type: construct without validating again.
    event = CloudEvent.model_construct(
        id=str(uuid.uuid4()),
        source=f"/reliefhub/{service}",
        type=event_type.name,
        specversion=SPEC_VERSION,
        time=datetime.now(UTC),
        subject=subject,
        datacontenttype="application/json",
        data=payload,
        traceparent=current_traceparent(),
        orgs=sorted(set(orgs) | set(owning_orgs(payload))) if orgs is not None else owning_orgs(payload) or None,
    )
    # This process's relay publishes at once; another process's is woken by the row's statement (`OUTBOX_RETURNING`).
    wakeup.on_commit(session, outbox_channel(kit_of(session).schema))
    return event, (
        uuid.UUID(event.id),
        stream_for(service),
        event.type,
        subject,
        event.model_dump_json(exclude_none=True),
    )


OUTBOX_COLUMNS = "id, stream, type, subject, envelope"


def outbox_channel(schema: str) -> str:
    """The shared.wakeup channel of a service's outbox: rows committed, for its relay."""
    return f"outbox:{schema}"


@cache
def outbox_returning(schema: str) -> str:
    """The RETURNING clause of a statement that writes outbox rows: it notifies the relays of other processes
    (`pg_notify`, delivered at commit, once per transaction) without a round trip of its own."""
    return f"RETURNING {wakeup.notify_sql(outbox_channel(schema))}"


async def publish(
    session: AsyncSession,
    event_type: EventType,
    data: BaseModel | dict[str, Any],
    *,
    subject: str | None = None,
    orgs: Iterable[str] | None = None,
) -> CloudEvent:
    """Queue an event in the outbox; it is published only if the surrounding transaction commits."""
    event, row = outbox_row(session, event_type, data, subject=subject, orgs=orgs)
    driver = await driver_connection(session)
    await driver.execute(_insert_sql(kit_of(session).schema), *row)
    return event


@cache
def _insert_sql(schema: str) -> str:
    return (
        f'INSERT INTO "{schema}".outbox_event ({OUTBOX_COLUMNS}) VALUES ($1, $2, $3, $4, $5) {outbox_returning(schema)}'
    )
