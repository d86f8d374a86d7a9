"""Event types the needs service publishes."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

from shared.events import register_event_type


class SiteData(BaseModel):
    """A site as other services see it: no contact details."""

    id: uuid.UUID
    org: str
    name: str
    kind: str
    region_code: str
    lat: float | None
    lon: float | None
    version: int


class NeedLineData(BaseModel):
    id: uuid.UUID
    item_code: str
    quantity: int
    unit: str
    quantity_matched: int
    quantity_delivered: int
    quantity_in_transit: int = 0


class NeedData(BaseModel):
    """A need's full state after the change, with what matching needs of its site."""

    id: uuid.UUID
    site_id: uuid.UUID
    org: str
    site_kind: str
    region_code: str
    lat: float | None
    lon: float | None
    title: str
    urgency: str
    needed_by: datetime | None
    beneficiaries: int | None
    status: str
    verification: str
    duplicate_of: uuid.UUID | None
    lines: list[NeedLineData]
    version: int
    created_at: datetime
    reason: str | None = None


SITE_CREATED = register_event_type("reliefhub.needs.site.created", "A recipient site was registered.", SiteData)
SITE_UPDATED = register_event_type("reliefhub.needs.site.updated", "A site's details changed.", SiteData)
NEED_CREATED = register_event_type(
    "reliefhub.needs.need.created", "A need was posted (duplicate_of is set when an open twin exists).", NeedData
)
NEED_UPDATED = register_event_type("reliefhub.needs.need.updated", "A need's details or lines changed.", NeedData)
NEED_MERGED = register_event_type(
    "reliefhub.needs.need.merged", "A new request was merged into this open need of the same site.", NeedData
)
NEED_VERIFIED = register_event_type(
    "reliefhub.needs.need.verified", "A coordinator verified or rejected a need (see verification).", NeedData
)
NEED_CONFIRMED = register_event_type(
    "reliefhub.needs.need.confirmed", "The site re-confirmed the need is still current.", NeedData
)
NEED_CLOSED = register_event_type("reliefhub.needs.need.closed", "A need was closed (reason given).", NeedData)
NEED_EXPIRED = register_event_type(
    "reliefhub.needs.need.expired", "A need passed its deadline or was not re-confirmed in time.", NeedData
)
NEED_PROGRESSED = register_event_type(
    "reliefhub.needs.need.progressed",
    "Matched or delivered quantities of a need's lines changed, and with them perhaps its rolled-up status.",
    NeedData,
)
