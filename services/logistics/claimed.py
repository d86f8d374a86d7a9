"""Shipments a partner brings itself: a confirmed claim (needs.events `claim.confirmed`) becomes a planned
shipment to the need's site with the partner as carrier — no supply lot, the partner's own goods — received with
the site's PIN and rated like any other."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.logistics import events
from services.logistics.models import Shipment, ShipmentLine
from services.logistics.repository import ShipmentRepository
from services.logistics.shipments import emit_shipment, new_pin, record_update
from shared.db import utcnow
from shared.events import CloudEvent
from shared.vocabulary import ShipmentStatus

CLAIM_CONFIRMED = "reliefhub.needs.claim.confirmed"


async def on_claim_event(session: AsyncSession, event: CloudEvent) -> None:
    """needs.events → a planned shipment per confirmed claim."""
    if event.type == CLAIM_CONFIRMED:
        await plan_claimed(session, event.data)


async def plan_claimed(session: AsyncSession, d: dict[str, Any]) -> Shipment | None:
    """Plan the claim's shipment once: a redelivered or concurrent event finds the one already planned."""
    claim_id, site_id = uuid.UUID(str(d["id"])), uuid.UUID(d["site_id"])
    key = f"claim:{claim_id}"
    repo = ShipmentRepository(session)
    await repo.lock_route(key, site_id)
    if await repo.claim_planned(claim_id):
        return None
    now, partner = utcnow(), str(d["org"])
    shipment = Shipment(
        id=uuid.uuid4(),
        origin={"label": f"{partner}（自带物资 / the partner's own goods）"[:200], "region_code": d["region_code"]},
        claim_id=claim_id,
        origin_key=key,
        origin_org=partner,
        destination_site_id=site_id,
        destination_org=d["site_org"],
        region_code=d["region_code"],
        carrier=partner,
        carrier_org=partner,
        legs=[],
        status=ShipmentStatus.planned,
        auto=False,
        note=f"claim {d['id']}: the partner brings its own goods",
        handover_pin=new_pin(),
        pin_failures=0,
        created_by=f"claim:{partner}",
        version=1,
        created_at=now,
        updated_at=now,
        lines=[
            ShipmentLine(
                id=uuid.uuid4(),
                position=i,
                need_id=uuid.UUID(d["need_id"]),
                need_line_id=uuid.UUID(line["line_id"]),
                item_code=line["item_code"],
                quantity=int(line["quantity"]),
            )
            for i, line in enumerate(d["lines"])
        ],
        history=[],
    )
    record_update(shipment, ShipmentStatus.planned, shipment.created_by, now, note="from a confirmed claim")
    repo.add(shipment)
    await emit_shipment(session, events.SHIPMENT_CREATED, shipment)
    return shipment
