"""Event types the needs service publishes, and the handlers it runs for the matching and logistics streams
(the roll-up of matched, in-transit and delivered quantities into each need's lines and status)."""

from __future__ import annotations

import uuid
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.needs import schemas
from services.needs.models import Need, Site
from services.needs.repository import NeedRepository, RollupRepository, SiteRef, SiteRepository
from shared.catalog import Item, follow
from shared.db import utcnow
from shared.events import CloudEvent, EventType, publish, register_event_type
from shared.vocabulary import ACTIVE_NEED_STATUSES, NeedLineStatus, NeedStatus


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
    item_code: str | None  # None while `pending_item`
    quantity: int
    unit: str
    deadline: str = "hard"
    quantity_matched: int
    quantity_delivered: int
    quantity_in_transit: int = 0
    status: str = "open"
    item_request_id: uuid.UUID | None = None
    substitution_override: bool = False
    quantity_claimed: int = 0


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
    beneficiary_groups: dict[str, int] = {}
    status: str
    verification: str
    duplicate_of: uuid.UUID | None
    lines: list[NeedLineData]
    version: int
    created_at: datetime
    reason: str | None = None
    operation_id: uuid.UUID | None = None  # the relief operation (added later; absent in older events)


ITEM_ADDED = register_event_type(
    follow.ITEM_ADDED, "A coordinator added an item to the catalog (every service follows).", Item
)
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


class ClaimLineData(BaseModel):
    line_id: uuid.UUID
    item_code: str
    unit: str
    quantity: int


class ClaimData(BaseModel):
    """A claim after the change: the partner (`org`) that brings the goods to the need's site itself."""

    id: uuid.UUID
    need_id: uuid.UUID
    site_id: uuid.UUID
    site_org: str
    org: str
    region_code: str
    status: str
    lines: list[ClaimLineData]
    eta: datetime | None
    version: int
    reason: str | None = None


CLAIM_CREATED = register_event_type(
    "reliefhub.needs.claim.created", "A partner claimed need lines it will cover itself.", ClaimData
)
CLAIM_CONFIRMED = register_event_type(
    "reliefhub.needs.claim.confirmed",
    "A coordinator confirmed a claim: the lines' claimed quantity is covered; the partner brings it as carrier.",
    ClaimData,
)
CLAIM_WITHDRAWN = register_event_type(
    "reliefhub.needs.claim.withdrawn", "The partner or a coordinator withdrew a claim.", ClaimData
)
CLAIM_FULFILLED = register_event_type(
    "reliefhub.needs.claim.fulfilled",
    "The site received the partner's shipment: what arrived counts as delivered, the claim covers no more.",
    ClaimData,
)
CLAIM_EXPIRED = register_event_type(
    "reliefhub.needs.claim.expired", "No coordinator confirmed a claim in time.", ClaimData
)


# --- payloads ---------------------------------------------------------------------------------------------


def site_data(site: Site) -> SiteData:
    return SiteData.model_validate(site, from_attributes=True)


def need_data(need: Need | schemas.Need, site: Site | SiteRef, reason: str | None = None) -> NeedData:
    return NeedData(
        id=need.id,
        site_id=need.site_id,
        org=need.org,
        site_kind=site.kind,
        region_code=need.region_code,
        lat=site.lat,
        lon=site.lon,
        title=need.title,
        urgency=need.urgency,
        needed_by=need.needed_by,
        beneficiaries=need.beneficiaries,
        beneficiary_groups=dict(need.beneficiary_groups or {}),
        status=need.status,
        verification=need.verification,
        duplicate_of=need.duplicate_of,
        version=need.version,
        created_at=need.created_at,
        reason=reason,
        operation_id=need.operation_id,
        lines=[NeedLineData.model_validate(line, from_attributes=True) for line in need.lines],
    )


async def publish_need(
    session: AsyncSession, type_: EventType, need: Need, site: Site | SiteRef | None = None, reason: str | None = None
) -> None:
    """Publish the need's state after a change (its site is read when not given)."""
    if site is None:
        site = await SiteRepository(session).get(need.site_id)
        assert site is not None  # a need's site is a foreign key and never deleted
    await publish(session, type_, need_data(need, site, reason), subject=str(need.id))


# --- roll-up from other services' events -------------------------------------------------------------------


def rolled_up_status(need: Need) -> NeedStatus:
    """A need's status from its lines: fulfilled when every line is delivered, else the most advanced work
    still under way (in transit, then matched), else open (what came short or was returned is open again). Lines
    cancelled with their refused item request count for nothing."""
    lines = [line for line in need.lines if line.status != NeedLineStatus.cancelled]
    if need.status not in ACTIVE_NEED_STATUSES or not lines:
        return need.status
    if all(line.quantity_delivered >= line.quantity for line in lines):
        return NeedStatus.fulfilled
    if any(line.quantity_in_transit > 0 for line in lines):
        return NeedStatus.in_transit
    if any(line.quantity_matched + line.quantity_claimed > line.quantity_delivered for line in lines):
        return NeedStatus.matched
    return NeedStatus.open


async def _roll_up(session: AsyncSession, need: Need, *, publish: bool = False) -> None:
    """Recompute the need's lines from the rows the roll-up keeps (the need is locked), then its status; publish
    need.progressed only when something changed, so a late or repeated event leaves no trace (or when `publish`
    asks: the caller changed the need itself in this transaction)."""
    totals = await RollupRepository(session).line_totals(need.id)
    changed = False
    for line in need.lines:
        got = totals.get(line.id)
        new = (got.matched, got.in_transit, got.delivered) if got else (0, 0, 0)
        if (line.quantity_matched, line.quantity_in_transit, line.quantity_delivered) != new:
            line.quantity_matched, line.quantity_in_transit, line.quantity_delivered = new
            changed = True
    status = rolled_up_status(need)
    if changed or status != need.status:
        need.status = status
        need.version += 1
        need.updated_at = utcnow()
    elif not publish:
        return
    await session.flush()
    await publish_need(session, NEED_PROGRESSED, need)


async def _roll_up_needs(
    session: AsyncSession, need_ids: set[uuid.UUID], publish: AbstractSet[uuid.UUID] = frozenset()
) -> None:
    """Each need rolled up, in need order; those in `publish` published whether or not the roll-up changed them."""
    repo = NeedRepository(session)
    for need_id in sorted(need_ids | publish):  # one lock order for every handler
        need = await repo.get_with_lines(need_id, for_update=True)
        if need is not None:
            await _roll_up(session, need, publish=need_id in publish)


async def on_matching_event(session: AsyncSession, event: CloudEvent) -> None:
    """matching.events → quantity_matched per line and the need's status (open → matched). An accepted
    proposal is kept with its version; the line's quantity_matched is the sum over its proposals. A declined
    one keeps only what its shipments gave back (which they subtract themselves), so it counts for nothing."""
    await on_matching_events(session, [event])


MATCHED = ("reliefhub.matching.proposal.accepted", "reliefhub.matching.proposal.declined")


def _match_row(e: CloudEvent) -> dict[str, Any]:
    d = e.data
    declined = e.type == "reliefhub.matching.proposal.declined"
    return {
        "proposal_id": uuid.UUID(d["id"]),
        "need_id": uuid.UUID(d["need_id"]),
        "need_line_id": uuid.UUID(d["need_line_id"]),
        "quantity": int(d.get("quantity_returned") or 0) if declined else int(d["quantity"]),
        "version": int(d.get("version") or 0),
    }


async def on_matching_events(session: AsyncSession, events: list[CloudEvent]) -> None:
    """The batch form of `on_matching_event`: every accepted (or declined) proposal of the batch in one upsert,
    then each need it touched rolled up once, in need order (one lock order for every transaction)."""
    rows = [_match_row(e) for e in events if e.type in MATCHED]
    await _roll_up_needs(session, await RollupRepository(session).record_matches(_newest(rows, "proposal_id")))


def _newest(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """One row per `key`, the highest version's, in key order: one upsert may not touch a row twice, and rows
    taken in one order everywhere cannot deadlock."""
    newest: dict[uuid.UUID, dict[str, Any]] = {}
    for row in rows:
        if row[key] not in newest or row["version"] > newest[row[key]]["version"]:
            newest[row[key]] = row
    return [newest[k] for k in sorted(newest)]


# Picked up, moving, or handed over and not yet confirmed: what older shipment events leave implicit.
_ON_THE_WAY = frozenset({"picked_up", "in_transit", "delivered"})


def _shipment_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    """The roll-up rows of one shipment event: each line's state after the change."""
    status, version = d["status"], int(d["version"])
    rows = []
    for line in d["lines"]:
        if not (line.get("need_id") and line.get("need_line_id")):
            continue
        in_transit, delivered = line.get("quantity_in_transit"), line.get("quantity_delivered")
        if in_transit is None:  # an event from before these fields existed
            in_transit = line["quantity"] if status in _ON_THE_WAY else 0
            delivered = line.get("quantity_received") or 0
        returned = line.get("quantity_returned")
        if line.get("line_quantity") is not None:  # a converted substitute: the line's own units
            in_transit, delivered = line["line_quantity_in_transit"], line["line_quantity_delivered"]
            returned = line.get("line_quantity_returned")
        rows.append(
            {
                "shipment_line_id": uuid.UUID(line["id"]),
                "shipment_id": uuid.UUID(d["id"]),
                "need_id": uuid.UUID(line["need_id"]),
                "need_line_id": uuid.UUID(line["need_line_id"]),
                "quantity_in_transit": int(in_transit),
                "quantity_delivered": int(delivered or 0),
                "quantity_returned": int(returned or 0),
                "version": version,
            }
        )
    return rows


async def on_logistics_event(session: AsyncSession, event: CloudEvent) -> None:
    """logistics.events → quantities in transit and delivered per line. Every shipment event carries each
    line's state after the change; the newest version seen of each shipment line is kept, and a need line's
    quantities are sums over them, so the order events arrive in does not matter. What came short, was not
    received or was cancelled leaves quantity_matched, so the line is open for it again."""
    await on_logistics_events(session, [event])


async def on_logistics_events(
    session: AsyncSession, events: list[CloudEvent], publish: AbstractSet[uuid.UUID] = frozenset()
) -> None:
    """The batch form of `on_logistics_event`: one upsert of the batch's shipment lines, then each need
    touched rolled up once, in need order (and published once, rolled up or not, when in `publish`)."""
    rows = [row for e in events if e.type.startswith("reliefhub.logistics.shipment.") for row in _shipment_rows(e.data)]
    changed = await RollupRepository(session).record_shipment_lines(_newest(rows, "shipment_line_id"))
    await _roll_up_needs(session, changed, publish)


async def publish_item(session: AsyncSession, item: Item) -> None:
    await publish(session, ITEM_ADDED, item, subject=item.code)
