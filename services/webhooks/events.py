"""Event types the webhooks service publishes."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

from shared.events import register_event_type


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
