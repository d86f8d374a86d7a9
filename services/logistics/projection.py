"""What logistics learns from the other services' streams: sites and needs (for destinations, tracking and
reports), offers and pledges (for tracking, procurement and the ledger), and accepted proposals (which become
shipments)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.logistics.repository import LedgerRepository, ProjectionRepository
from services.logistics.shipments import plan_accepted
from shared.catalog import get_catalog
from shared.events import CloudEvent
from shared.runtime import runtime_of_session
from shared.service import Subscription

SYSTEM = "system:logistics"


class NotProjectedYet(Exception):
    """An event that refers to something this service has not heard of yet: retried after redelivery."""


def _ts(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


async def on_need_event(session: AsyncSession, event: CloudEvent) -> None:
    """needs.events → site_view and need_view, each guarded by its version."""
    d, repo = event.data, ProjectionRepository(session)
    if event.type.startswith("reliefhub.needs.site."):
        await repo.upsert_site(
            {
                "site_id": uuid.UUID(d["id"]),
                "org": d["org"],
                "name": d["name"],
                "kind": d["kind"],
                "region_code": d["region_code"],
                "version": int(d["version"]),
            }
        )
    elif event.type.startswith("reliefhub.needs.need."):
        await repo.upsert_need(
            {
                "need_id": uuid.UUID(d["id"]),
                "site_id": uuid.UUID(d["site_id"]),
                "org": d["org"],
                "region_code": d["region_code"],
                "title": d["title"],
                "status": d["status"],
                "beneficiaries": d.get("beneficiaries"),
                "lines": [
                    {
                        "id": line["id"],
                        "item_code": line["item_code"],
                        "quantity": int(line["quantity"]),
                        "quantity_delivered": int(line.get("quantity_delivered") or 0),
                    }
                    for line in d["lines"]
                ],
                "version": int(d["version"]),
                "need_created_at": _ts(d["created_at"]),
            }
        )
        await repo.derive_need_times(uuid.UUID(d["id"]))


def _goods_value(lots: list[dict[str, Any]]) -> int:
    catalog = get_catalog()
    total = 0
    for lot in lots:
        item = catalog.get(lot["item_code"])
        total += int(lot["quantity"]) * (item.unit_value_fen if item else 0)
    return total


async def on_supply_event(session: AsyncSession, event: CloudEvent) -> None:
    """supply.events → offer_view, the offer's public timeline and the ledger (pledges in, in-kind value)."""
    d, repo, ledger = event.data, ProjectionRepository(session), LedgerRepository(session)
    at = event.time
    if event.type.startswith("reliefhub.supply.offer."):
        offer_id = uuid.UUID(d["id"])
        lots = [
            {
                "id": lot["id"],
                "item_code": lot["item_code"],
                "quantity": int(lot["quantity"]),
                "unit": lot["unit"],
                "region_code": lot.get("region_code"),
                "verification": lot["verification"],
            }
            for lot in d["lots"]
        ]
        await repo.upsert_offer(
            {
                "offer_id": offer_id,
                "donor_id": uuid.UUID(d["donor_id"]),
                "org": d["org"],
                "kind": d["kind"],
                "status": d["status"],
                "amount": d.get("amount"),
                "currency": d.get("currency"),
                "tracking_ref": d["tracking_ref"],
                "procurement_id": uuid.UUID(d["procurement_id"]) if d.get("procurement_id") else None,
                "lots": lots,
                "version": int(d["version"]),
                "offer_created_at": _ts(d["created_at"]),
            }
        )
        procured = bool(d.get("procurement_id"))
        if event.type == "reliefhub.supply.offer.created":
            if d["kind"] == "cash":
                await ledger.book(
                    {
                        "ref": f"pledged:{offer_id}",
                        "kind": "pledged",
                        "amount": int(d["amount"]),
                        "currency": d["currency"],
                        "offer_id": offer_id,
                        "created_at": _ts(d["created_at"]),
                    }
                )
            elif not procured:  # bought goods were booked as money spent already
                await ledger.book(
                    {
                        "ref": f"in_kind_offered:{offer_id}",
                        "kind": "in_kind_offered",
                        "amount": _goods_value(d["lots"]),
                        "currency": "CNY",
                        "offer_id": offer_id,
                        "created_at": _ts(d["created_at"]),
                    }
                )
        elif event.type == "reliefhub.supply.offer.withdrawn" and d["kind"] == "cash":
            pledge = await repo.offer(offer_id)
            unspent = int(d["amount"]) - (pledge.amount_spent if pledge else 0)
            await ledger.book(
                {
                    "ref": f"pledge_withdrawn:{offer_id}",
                    "kind": "pledge_withdrawn",
                    "amount": -unspent,
                    "currency": d["currency"],
                    "offer_id": offer_id,
                }
            )
        if event.type in ("reliefhub.supply.offer.created", "reliefhub.supply.offer.withdrawn"):
            kind = "offered" if event.type.endswith("created") else "withdrawn"
            await repo.add_track(
                {
                    "event_id": event.id,
                    "offer_id": offer_id,
                    "at": _ts(d["created_at"]) if kind == "offered" else at,
                    "kind": kind,
                    "data": {"procurement_id": d.get("procurement_id")},
                }
            )
    elif event.type == "reliefhub.supply.lot.verified":
        await repo.add_track(
            {
                "event_id": event.id,
                "offer_id": uuid.UUID(d["offer_id"]),
                "at": at,
                "kind": "verified",
                "data": {
                    "group": d["group"],
                    "verdict": d["verdict"],
                    "items": [{"item_code": lot["item_code"], "quantity": lot["quantity"]} for lot in d["lots"]],
                },
            }
        )


async def on_matching_event(session: AsyncSession, event: CloudEvent) -> None:
    """matching.events → accepted proposals, which join a planned shipment of their route (unless automatic
    shipments are switched off), and the donor's timeline."""
    if event.type != "reliefhub.matching.proposal.accepted":
        return
    d, repo = event.data, ProjectionRepository(session)
    need_id = uuid.UUID(d["need_id"])
    site_id, need_org = d.get("site_id"), d.get("need_org")
    if site_id is None or need_org is None:  # events from before these fields existed
        need = await repo.need(need_id)
        if need is None:
            raise NotProjectedYet(f"need {need_id} not projected yet")
        site_id, need_org = str(need.site_id), need.org
    decided_at = _ts(d.get("decided_at")) or event.time
    proposal = await repo.add_accepted(
        {
            "proposal_id": uuid.UUID(d["id"]),
            "need_id": need_id,
            "need_line_id": uuid.UUID(d["need_line_id"]),
            "lot_id": uuid.UUID(d["lot_id"]),
            "offer_id": uuid.UUID(d["offer_id"]),
            "item_code": d["lot_item_code"],
            "site_id": uuid.UUID(site_id),
            "destination_org": need_org,
            "offer_org": d.get("offer_org"),
            "region_code": d["region_code"],
            "origin": d.get("origin") or {},
            "quantity": int(d["quantity"]),
            "quantity_planned": 0,
            "accepted_at": decided_at,
        }
    )
    if proposal is None:
        return  # seen before
    await repo.add_track(
        {
            "event_id": event.id,
            "offer_id": proposal.offer_id,
            "at": decided_at,
            "kind": "allocated",
            "data": {
                "site_id": site_id,
                "need_id": str(need_id),
                "item_code": proposal.item_code,
                "quantity": proposal.quantity,
            },
        }
    )
    await repo.mark_need_times([need_id], "first_matched_at", decided_at or event.time)
    if runtime_of_session(session).settings.logistics_auto_shipments:
        await plan_accepted(session, proposal, SYSTEM)


SUBSCRIPTIONS = [
    Subscription(stream="needs.events", group="logistics-projection", handler=on_need_event),
    Subscription(stream="supply.events", group="logistics-projection", handler=on_supply_event),
    Subscription(stream="matching.events", group="logistics-shipments", handler=on_matching_event),
]
