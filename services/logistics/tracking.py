"""The donor's public view — a gift's timeline from offer to receipt and feedback, with no personal data —
and the impact report."""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from datetime import datetime
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.ext.asyncio import AsyncSession

from services.logistics import schemas
from services.logistics.errors import TrackingCodeNotFound
from services.logistics.models import OfferView, SiteView
from services.logistics.repository import (
    ProcurementRepository,
    ProjectionRepository,
    ReportRepository,
    ShipmentRepository,
)
from shared.catalog import get_catalog
from shared.html import style_hashes

TITLES: dict[str, tuple[str, str]] = {
    "offered": ("登记捐赠", "Gift registered"),
    "verified": ("工作组核验", "Checked by a working group"),
    "withdrawn": ("捐赠撤回", "Gift withdrawn"),
    "allocated": ("匹配到需求", "Matched to a need"),
    "procurement_ordered": ("善款采购下单", "Goods ordered with the donation"),
    "procurement_received": ("采购物资到货", "Purchased goods arrived"),
    "procurement_cancelled": ("采购取消", "Purchase cancelled"),
    "planned": ("安排运输", "Shipment planned"),
    "picked_up": ("已揽收", "Picked up"),
    "in_transit": ("运输中", "In transit"),
    "delivered": ("已送达", "Delivered"),
    "received": ("受助方确认收货", "Receipt confirmed"),
    "received_with_problem": ("确认收货（有差异）", "Received, with a shortfall"),
    "not_received": ("未收到", "Not received"),
    "cancelled": ("运输取消", "Shipment cancelled"),
    "feedback": ("受助方反馈", "Feedback from the recipient"),
}
SITE_KINDS: dict[str, str] = {
    "hospital": "医院",
    "community": "社区",
    "shelter": "安置点",
    "school": "学校",
    "nursing_home": "养老院",
    "ngo": "社会组织",
    "government": "街道/政府",
    "other": "其他",
}


def tracking_ref(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _title(kind: str) -> schemas.Localized:
    zh, en = TITLES.get(kind, (kind, kind))
    return schemas.Localized(zh=zh, en=en)


def _item(code: str, quantity: int, unit: str | None = None) -> schemas.TrackItem:
    item = get_catalog().get(code)
    name = schemas.Localized(zh=item.name.zh, en=item.name.en) if item else schemas.Localized(zh=code, en=code)
    return schemas.TrackItem(item_code=code, name=name, quantity=quantity, unit=unit or (item.unit if item else ""))


def _site(site: SiteView | None) -> schemas.TrackSite | None:
    return schemas.TrackSite(name=site.name, kind=site.kind, region_code=site.region_code) if site else None


def _step(kind: str, at: datetime, **fields: Any) -> schemas.TrackStep:
    return schemas.TrackStep(at=at, kind=kind, title=_title(kind), **fields)


async def track(session: AsyncSession, code: str) -> schemas.Tracking:
    """Everything that happened to the gift behind a tracking code; a cash pledge also shows the purchases it
    paid for and what became of their goods."""
    projection = ProjectionRepository(session)
    offer = await projection.offer_by_ref(tracking_ref(code))
    if offer is None or offer.procurement_id is not None:
        raise TrackingCodeNotFound()
    steps: list[schemas.TrackStep] = []
    procurements = await ProcurementRepository(session).funded_by([offer.offer_id]) if offer.kind == "cash" else []
    goods = await projection.offers_of_procurements([p.id for p, _ in procurements])
    offer_ids = [offer.offer_id, *(g.offer_id for g in goods)]

    shipments = await ShipmentRepository(session).carrying(offer_ids)
    feedback = await ShipmentRepository(session).feedback_for([s.id for s in shipments])
    entries = await projection.track_entries(offer_ids)
    site_ids = {s.destination_site_id for s in shipments}
    site_ids |= {uuid.UUID(e.data["site_id"]) for e in entries if e.kind == "allocated" and e.data.get("site_id")}
    sites = await projection.sites(sorted(site_ids))

    allocated = 0
    for e in entries:
        if e.kind == "offered" and e.offer_id == offer.offer_id:
            steps.append(_step("offered", e.at, items=_offer_items(offer), amount=offer.amount))
        elif e.kind == "verified":
            items = [_item(i["item_code"], int(i["quantity"])) for i in e.data.get("items", [])]
            steps.append(_step("verified", e.at, items=items, detail={"verdict": e.data.get("verdict")}))
        elif e.kind == "withdrawn" and e.offer_id == offer.offer_id:
            steps.append(_step("withdrawn", e.at))
        elif e.kind == "allocated":
            allocated += int(e.data["quantity"])
            site = sites.get(uuid.UUID(e.data["site_id"])) if e.data.get("site_id") else None
            steps.append(
                _step(
                    "allocated",
                    e.at,
                    items=[_item(e.data["item_code"], int(e.data["quantity"]))],
                    site=_site(site),
                )
            )
    if not any(s.kind == "offered" for s in steps):  # its own event not in yet: the offer itself says when
        steps.append(_step("offered", offer.offer_created_at, items=_offer_items(offer), amount=offer.amount))
    spent = 0
    for p, amount in procurements:
        items = [_item(line["item_code"], int(line["quantity"])) for line in p.lines]
        supplier = {"supplier": p.supplier.get("name"), "order_total": p.total}
        if p.ordered_at:
            spent += amount if p.status != "cancelled" else 0
            steps.append(_step("procurement_ordered", p.ordered_at, items=items, amount=amount, detail=supplier))
        if p.received_at:
            steps.append(_step("procurement_received", p.received_at, items=items, detail=supplier))
        if p.cancelled_at:
            steps.append(_step("procurement_cancelled", p.cancelled_at, amount=amount))
    shipped = received = 0
    ours = set(offer_ids)
    for s in shipments:
        lines = [line for line in s.lines if line.offer_id in ours]
        items = [_item(line.item_code, line.quantity) for line in lines]
        where = _site(sites.get(s.destination_site_id))
        if s.picked_up_at:
            shipped += sum(line.quantity for line in lines)
        for update in s.history:
            fields: dict[str, Any] = {"site": where, "detail": {"shipment_id": str(s.id)}}
            if update.status in ("received", "received_with_problem", "not_received"):
                got = [_item(line.item_code, line.quantity_received or 0) for line in lines]
                received += sum(line.quantity_received or 0 for line in lines)
                fields["items"] = got
                fields["detail"]["short"] = sum(line.quantity_returned or 0 for line in lines)
            else:
                fields["items"] = items
            steps.append(_step(update.status, update.at, **fields))
        fb = feedback.get(s.id)
        if fb is not None:
            steps.append(
                _step(
                    "feedback",
                    fb.created_at,
                    site=where,
                    detail={
                        "rating": fb.rating,
                        "comment": fb.comment,
                        "beneficiaries_served": fb.beneficiaries_served,
                        "photo_urls": fb.photo_urls,
                    },
                )
            )
    steps.sort(key=lambda s: s.at)
    return schemas.Tracking(
        kind=offer.kind,
        status=offer.status,
        created_at=offer.offer_created_at,
        currency=offer.currency,
        items=_offer_items(offer),
        summary=schemas.TrackSummary(
            quantity_offered=sum(int(lot["quantity"]) for lot in offer.lots),
            quantity_allocated=allocated,
            quantity_shipped=shipped,
            quantity_received=received,
            sites=len({s.destination_site_id for s in shipments if s.received_at}),
            amount_pledged=offer.amount,
            amount_spent=spent if offer.kind == "cash" else None,
        ),
        timeline=steps,
    )


def _offer_items(offer: OfferView) -> list[schemas.TrackItem]:
    return [_item(lot["item_code"], int(lot["quantity"]), lot.get("unit")) for lot in offer.lots]


@cache
def _templates() -> Environment:
    env = Environment(loader=PackageLoader("services.logistics", "templates"), autoescape=select_autoescape())
    env.filters["fen"] = lambda v: f"{(v or 0) / 100:,.2f}"
    return env


def render_tracking(tracking: schemas.Tracking, lang: str) -> str:
    return _templates().get_template("track.html").render(t=tracking, lang=lang, site_kinds=SITE_KINDS)


@cache
def tracking_page_styles() -> tuple[str, ...]:
    """The Content-Security-Policy hashes of the tracking page's style."""
    env = _templates()
    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, "track.html")
    return style_hashes(source)


# --- the impact report ----------------------------------------------------------------------------------------


def _hours(value: Any) -> float | None:
    return round(float(value), 2) if value is not None else None


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
        regions=rows,
    )
