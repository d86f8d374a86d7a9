"""CloudEvents 1.0 envelope and the registry of event types with the JSON Schema of their data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SPEC_VERSION = "1.0"


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 structured event, plus the W3C `traceparent` extension."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    specversion: str = SPEC_VERSION
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = None
    datacontenttype: str = "application/json"
    data: dict[str, Any]
    traceparent: str | None = None
    # The organisations the event's records belong to (ReliefHub's routing attribute: webhooks deliver an event
    # to an organisation's own endpoints only when it is named here; never sent to receivers).
    orgs: list[str] | None = None


@dataclass(frozen=True)
class EventType:
    """One published event type: `reliefhub.<service>.<entity>.<verb>` and the model of its data."""

    name: str
    description: str
    data_model: type[BaseModel]

    @property
    def service(self) -> str:
        return self.name.split(".")[1]

    def json_schema(self) -> dict[str, Any]:
        return self.data_model.model_json_schema()


_REGISTRY: dict[str, EventType] = {}


def register_event_type(type_: str, description: str, data_model: type[BaseModel]) -> EventType:
    parts = type_.split(".")
    if len(parts) != 4 or parts[0] != "reliefhub":
        raise ValueError(f"event type {type_!r} is not reliefhub.<service>.<entity>.<verb>")
    existing = _REGISTRY.get(type_)
    if existing is not None and existing.data_model is not data_model:
        raise ValueError(f"event type {type_!r} registered twice")
    et = EventType(type_, description, data_model)
    _REGISTRY[type_] = et
    return et


def event_catalog() -> list[EventType]:
    """Every registered event type, sorted by name (import the services' events modules first)."""
    return sorted(_REGISTRY.values(), key=lambda e: e.name)


def stream_for(service: str) -> str:
    return f"{service}.events"


def dead_letter_stream(stream: str) -> str:
    return f"{stream}.dead"
