"""The donor's public view — a gift's timeline from offer to receipt and feedback, with no personal data —
and the impact report. The page that shows the timeline in words is `page.py`."""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.logistics import schemas
from services.logistics.errors import TrackingCodeNotFound
from services.logistics.models import Feedback, OfferView, Procurement, Shipment, SiteView, TrackEntry
from services.logistics.page import region_time_zone, title, unit_name
from services.logistics.repository import (
    ProcurementRepository,
    ProjectionRepository,
    ReportRepository,
    ShipmentRepository,
)
from services.logistics.shares import attribution
from shared.catalog import get_catalog

RECEIPTS = ("received", "received_with_problem", "not_received")
# The carrier's own steps, where its location and note are shown.
CARRIER_STEPS = ("picked_up", "in_transit", "delivered")


def tracking_ref(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _item(code: str, quantity: int, unit: str | None = None) -> schemas.TrackItem:
    item = get_catalog().get(code)
    name = schemas.Localized(zh=item.name.zh, en=item.name.en) if item else schemas.Localized(zh=code, en=code)
    unit = unit or (item.unit if item else "")
    return schemas.TrackItem(
        item_code=code, name=name, quantity=quantity, unit=unit, unit_name=unit_name(unit, quantity)
    )


def _site(site: SiteView | None) -> schemas.TrackSite | None:
    return schemas.TrackSite(name=site.name, kind=site.kind, region_code=site.region_code) if site else None


def _step(kind: str, at: datetime, **fields: Any) -> schemas.TrackStep:
    return schemas.TrackStep(at=at, kind=kind, title=title(kind), **fields)


def _offer_items(offer: OfferView) -> list[schemas.TrackItem]:
    return [_item(lot["item_code"], int(lot["quantity"]), lot.get("unit")) for lot in offer.lots]


@dataclass
class _Gift:
    """Everything read for one tracking code: the offer, the purchases its pledge paid for (with the offers of
    their goods), the shipments carrying any of them, their feedback, the timeline entries and the sites."""

    offer: OfferView
    procurements: list[tuple[Procurement, int]]
    offer_ids: list[uuid.UUID]
    shipments: list[Shipment]
    feedback: dict[uuid.UUID, Feedback]
    entries: list[TrackEntry]
    sites: dict[uuid.UUID, SiteView]


@dataclass
class _Timeline:
    steps: list[schemas.TrackStep] = field(default_factory=list)
    allocated: int = 0
    spent: int = 0
    shipped: int = 0
    received: int = 0


async def _load(session: AsyncSession, code: str) -> _Gift:
    projection = ProjectionRepository(session)
    offer = await projection.offer_by_ref(tracking_ref(code))
    if offer is None or offer.procurement_id is not None:
        raise TrackingCodeNotFound()
    procurements = await ProcurementRepository(session).funded_by([offer.offer_id]) if offer.kind == "cash" else []
    goods = await projection.offers_of_procurements([p.id for p, _ in procurements])
    offer_ids = [offer.offer_id, *(g.offer_id for g in goods)]
    shipments = await ShipmentRepository(session).carrying(offer_ids)
    feedback = await ShipmentRepository(session).feedback_for([s.id for s in shipments])
    entries = await projection.track_entries(offer_ids)
    site_ids = {s.destination_site_id for s in shipments} | {
        uuid.UUID(e.data["site_id"]) for e in entries if e.kind == "allocated" and e.data.get("site_id")
    }
    sites = await projection.sites(sorted(site_ids))
    return _Gift(offer, procurements, offer_ids, shipments, feedback, entries, sites)


def _entry_step(gift: _Gift, e: TrackEntry, out: _Timeline) -> schemas.TrackStep | None:
    """The step an entry learnt from supply's or matching's events makes, if it is one the page shows."""
    own = e.offer_id == gift.offer.offer_id
    if e.kind == "offered" and own:
        return _step("offered", e.at, items=_offer_items(gift.offer), amount=gift.offer.amount)
    if e.kind == "verified":
        items = [_item(i["item_code"], int(i["quantity"])) for i in e.data.get("items", [])]
        return _step("verified", e.at, items=items, detail={"verdict": e.data.get("verdict")})
    if e.kind == "withdrawn" and own:
        return _step("withdrawn", e.at)
    if e.kind == "allocated":
        out.allocated += int(e.data["quantity"])
        site = gift.sites.get(uuid.UUID(e.data["site_id"])) if e.data.get("site_id") else None
        items = [_item(e.data["item_code"], int(e.data["quantity"]))]
        return _step("allocated", e.at, items=items, site=_site(site))
    return None


def _entry_steps(gift: _Gift, out: _Timeline) -> None:
    for e in gift.entries:
        step = _entry_step(gift, e, out)
        if step is not None:
            out.steps.append(step)
    if not any(s.kind == "offered" for s in out.steps):  # its own event not in yet: the offer itself says when
        offer = gift.offer
        out.steps.append(_step("offered", offer.offer_created_at, items=_offer_items(offer), amount=offer.amount))


def _procurement_steps(gift: _Gift, out: _Timeline) -> None:
    for p, amount in gift.procurements:
        items = [_item(line["item_code"], int(line["quantity"])) for line in p.lines]
        supplier = {"supplier": p.supplier.get("name"), "order_total": p.total}
        if p.ordered_at:
            out.spent += amount if p.status != "cancelled" else 0
            out.steps.append(_step("procurement_ordered", p.ordered_at, items=items, amount=amount, detail=supplier))
        if p.received_at:
            share = next(a for a in attribution(p.lines, p.funding) if a["offer_id"] == gift.offer.offer_id)
            mine = [_item(i["item_code"], int(i["quantity"])) for i in share["items"]]
            detail = {**supplier, "share_amount": amount, "order_items": [i.model_dump(mode="json") for i in items]}
            out.steps.append(_step("procurement_received", p.received_at, items=mine, amount=amount, detail=detail))
        if p.cancelled_at:
            out.steps.append(_step("procurement_cancelled", p.cancelled_at, amount=amount))


def _shipment_steps(gift: _Gift, shipment: Shipment, out: _Timeline) -> None:
    """A shipment's status history as the gift's steps (only its lines from the gift's offers), then feedback."""
    ours = set(gift.offer_ids)
    lines = [line for line in shipment.lines if line.offer_id in ours]
    where = _site(gift.sites.get(shipment.destination_site_id))
    if shipment.picked_up_at:
        out.shipped += sum(line.quantity for line in lines)
    for update in shipment.history:
        fields: dict[str, Any] = {"site": where, "detail": {"shipment_id": str(shipment.id)}}
        if update.status in RECEIPTS:
            fields["items"] = [_item(line.item_code, line.quantity_received or 0) for line in lines]
            fields["detail"]["short"] = sum(line.quantity_returned or 0 for line in lines)
            out.received += sum(line.quantity_received or 0 for line in lines)
        else:
            fields["items"] = [_item(line.item_code, line.quantity) for line in lines]
        if update.status in CARRIER_STEPS:
            fields["location"], fields["note"] = update.location, update.note
        out.steps.append(_step(update.status, update.at, **fields))
    fb = gift.feedback.get(shipment.id)
    if fb is not None:
        detail = {
            "rating": fb.rating,
            "comment": fb.comment,
            "beneficiaries_served": fb.beneficiaries_served,
            "photo_urls": fb.photo_urls,
        }
        out.steps.append(_step("feedback", fb.created_at, site=where, detail=detail))


def _time_zone(steps: list[schemas.TrackStep]) -> str:
    """The zone of the first site the gift went to (the default one before it is matched)."""
    return region_time_zone(next((s.site.region_code for s in steps if s.site is not None), None))


def _tracking(gift: _Gift, out: _Timeline) -> schemas.Tracking:
    offer = gift.offer
    out.steps.sort(key=lambda s: s.at)
    return schemas.Tracking(
        kind=offer.kind,
        status=offer.status,
        created_at=offer.offer_created_at,
        currency=offer.currency,
        items=_offer_items(offer),
        summary=schemas.TrackSummary(
            quantity_offered=sum(int(lot["quantity"]) for lot in offer.lots),
            quantity_allocated=out.allocated,
            quantity_shipped=out.shipped,
            quantity_received=out.received,
            sites=len({s.destination_site_id for s in gift.shipments if s.received_at}),
            amount_pledged=offer.amount,
            amount_spent=out.spent if offer.kind == "cash" else None,
        ),
        timeline=out.steps,
        time_zone=_time_zone(out.steps),
    )


async def track(session: AsyncSession, code: str) -> schemas.Tracking:
    """Everything that happened to the gift behind a tracking code; a cash pledge also shows the purchases it
    paid for and what became of their goods."""
    gift = await _load(session, code)
    out = _Timeline()
    _entry_steps(gift, out)
    _procurement_steps(gift, out)
    for shipment in gift.shipments:
        _shipment_steps(gift, shipment, out)
    return _tracking(gift, out)


# --- the impact report ----------------------------------------------------------------------------------------


def _hours(value: Any) -> float | None:
    return round(float(value), 2) if value is not None else None


def _seconds(hours: Any) -> float | None:
    """Seconds, to a tenth (the query's percentiles are unrounded hours)."""
    return round(float(hours) * 3600, 1) if hours is not None else None


def _figures(region: dict[str, Any], ledger: dict[str, int], sites: int, beneficiaries: int) -> dict[str, Any]:
    needed, delivered = int(region.get("needed") or 0), int(region.get("delivered") or 0)
    return {
        "money_spent": ledger.get("spent", 0) - ledger.get("refunded", 0),
        "goods_value_delivered": ledger.get("in_kind_delivered", 0),
        "sites_supported": sites,
        "beneficiaries": beneficiaries,
        "needs": int(region.get("needs") or 0),
        "quantity_needed": needed,
        "quantity_delivered": delivered,
        "fill_rate": round(delivered / needed, 4) if needed else 0.0,
        "time_to_match_seconds_p50": _seconds(region.get("ttm50")),
        "time_to_match_seconds_p90": _seconds(region.get("ttm90")),
        "time_to_delivery_seconds_p50": _seconds(region.get("ttd50")),
        "time_to_delivery_seconds_p90": _seconds(region.get("ttd90")),
        "time_to_match_hours_p50": _hours(region.get("ttm50")),
        "time_to_match_hours_p90": _hours(region.get("ttm90")),
        "time_to_delivery_hours_p50": _hours(region.get("ttd50")),
        "time_to_delivery_hours_p90": _hours(region.get("ttd90")),
    }


async def impact(
    session: AsyncSession,
    *,
    region_code: str | None,
    level: schemas.ReportLevel,
    since: datetime | None,
    until: datetime | None,
    currency: str = "CNY",
) -> schemas.Impact:
    """Money raised and spent, goods value, sites, beneficiaries, fill rate and times, by region."""
    repo = ReportRepository(session)
    digits = schemas.LEVEL_DIGITS[level]
    ledger_all = await repo.ledger_totals(currency, since, until)
    ledger: dict[str, dict[str, int]] = defaultdict(dict)
    for region, kind, amount in await repo.ledger_by_region(digits, region_code, currency, since, until):
        ledger[region][kind] = amount
    deliveries = {r: (s, b) for r, s, b in await repo.deliveries_by_region(digits, region_code, since, until)}
    needs = {row["region"]: row for row in await repo.needs_by_region(digits, region_code, since, until)}
    everything = await repo.needs_by_region(None, region_code, since, until)
    regions = sorted(set(ledger) | set(deliveries) | set(needs))
    rows = [
        schemas.RegionImpact(region_code=r, **_figures(needs.get(r, {}), ledger.get(r, {}), *deliveries.get(r, (0, 0))))
        for r in regions
    ]
    regional_ledger: dict[str, int] = defaultdict(int)
    for per in ledger.values():
        for kind, amount in per.items():
            regional_ledger[kind] += amount
    totals = _figures(
        everything[0] if everything else {},
        regional_ledger if region_code else ledger_all,
        sum(s for s, _ in deliveries.values()),
        sum(b for _, b in deliveries.values()),
    )
    return schemas.Impact(
        region_code=region_code,
        level=level,
        since=since,
        until=until,
        currency=currency,
        money_raised=ledger_all.get("pledged", 0) + ledger_all.get("pledge_withdrawn", 0),
        goods_value_offered=ledger_all.get("in_kind_offered", 0),
        totals=schemas.ImpactFigures(**totals),
        people_served_by_group=await repo.served_by_group(region_code, since, until),
        regions=rows,
        services=schemas.ServiceImpact(**await repo.services_delivered(region_code, since, until)),
    )
