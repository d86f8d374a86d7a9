"""Schemas of the webhooks service: endpoints, deliveries and attempts, the event catalog."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StringConstraints

from shared.vocabulary import RegionPrefix, Timestamp

EventPattern = Annotated[
    str,
    StringConstraints(pattern=r"^reliefhub(\.[a-z_]+){0,3}(\.\*)?$|^\*$", max_length=200),
]
ItemPrefix = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.]{1,100}$")]


class EventTypeInfo(BaseModel):
    """One event type a service publishes."""

    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    type: str = Field(description="`reliefhub.<service>.<entity>.<verb>`")
    service: str
    description: str
    schema_: dict[str, Any] = Field(alias="schema", description="The JSON Schema of the event's `data`.")


class EventTypeList(BaseModel):
    items: list[EventTypeInfo]


class Filters(BaseModel):
    """Only events whose data names one of these item code prefixes (a category such as `medical_device.` is a
    prefix) and lies in one of these region prefixes. Empty means any."""

    model_config = ConfigDict(extra="forbid")

    item_codes: Annotated[list[ItemPrefix], Field(max_length=100)] = []
    region_codes: Annotated[list[RegionPrefix], Field(max_length=100)] = []


class EndpointScope(StrEnum):
    all = "all"
    own = "own"


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    event_types: Annotated[list[EventPattern], Field(min_length=1, max_length=50)] = Field(
        description="Types or patterns: `reliefhub.supply.lot.verified`, `reliefhub.supply.*`, `*`."
    )
    filters: Filters = Filters()
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    enabled: bool = True
    scope: EndpointScope | None = Field(
        None,
        description="`own`: only events about your organisation's own records (offers and their lots, "
        "shipments and receipts of a donor; sites, needs, proposals for them and shipments to them of a frontline "
        "organisation). `all` (working groups, logistics, coordinators): every event the types and filters let "
        "through. Default: `own` for donor and frontline tokens, `all` otherwise.",
    )


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl | None = None
    event_types: Annotated[list[EventPattern], Field(min_length=1, max_length=50)] | None = None
    filters: Filters | None = None
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    enabled: bool | None = None


class Endpoint(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    org: str
    url: str
    event_types: list[str]
    filters: Filters
    scope: EndpointScope
    description: str | None
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None
    secret: str | None = Field(None, description="`whsec_…`: returned once, on creation and on rotation.")
    version: int
    created_at: datetime
    updated_at: datetime


class RotateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: Annotated[int, Field(ge=0, le=7 * 86400)] | None = Field(
        None, description="How long the old secret keeps signing too (default 24 h)."
    )


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: Timestamp = Field(description="Send again every delivery made to this endpoint since then.")


class ReplayResult(BaseModel):
    requeued: int


class DeliveryStatus(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    response_body: str | None
    error: str | None


class Delivery(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: str
    event_type: str
    event_time: datetime
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    succeeded_at: datetime | None


class DeliveryDetail(Delivery):
    payload: dict[str, Any]
    attempt_log: list[AttemptOut] = []
