"""A lot and the needs it may serve, through the API and the event flow (the `workers` fixture must be running),
up to the proposals matching makes for them; and what of a lot is committed, read back from supply and
logistics."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE
from tests.helpers.needs import create_need, create_site
from tests.helpers.supply import create_donor, create_offer
from tests.helpers.waiting import eventually

# Shipment statuses whose lines' goods have left the lot and not come back.
OUT = frozenset({"picked_up", "in_transit", "delivered"})
SETTLED = frozenset({"received", "received_with_problem", "not_received"})


@dataclass
class Match:
    lot: dict[str, Any]
    offer: dict[str, Any]
    needs: list[dict[str, Any]]
    sites: list[dict[str, Any]]
    recipients: list[dict[str, str]]
    donor: dict[str, str]
    coordinator: dict[str, str]
    proposals: list[dict[str, Any]] = field(default_factory=list)

    @property
    def lot_id(self) -> str:
        return str(self.lot["id"])


async def proposed_match(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    lot_quantity: int,
    demands: list[int],
    *,
    tag: str = "x",
    region_code: str = "310115",
) -> Match:
    """A rice lot of `lot_quantity`, for sites in `region_code` only, and one need per demand there (each at a
    site of its own organisation); returns once matching has proposed the lot for all it can serve."""
    coordinator = auth("coordinator", org="org-hub", sub="alice")
    donor = auth("donor", org=f"org-donor-{tag}")
    sites, needs, recipients = [], [], []
    for i, demand in enumerate(demands):
        recipient = auth("frontline", org=f"org-site-{tag}-{i}")
        site = await create_site(
            client,
            recipient,
            name=f"安置点{i}",
            kind="shelter",
            region_code=region_code,
            lat=31.22 + i / 100,
            lon=121.54,
        )
        need = await create_need(
            client, recipient, site["id"], {"item_code": RICE, "quantity": demand}, title="大米", urgency="high"
        )
        sites.append(site)
        needs.append(need)
        recipients.append(recipient)
    made = await create_donor(client, donor, name="粮油公司")
    offer = await create_offer(
        client,
        donor,
        made["id"],
        lots=[{"item_code": RICE, "quantity": lot_quantity, "lat": 31.3, "lon": 121.5}],
        restrictions={"region_codes": [region_code]},
    )
    match = Match(
        lot=offer["lots"][0],
        offer=offer,
        needs=needs,
        sites=sites,
        recipients=recipients,
        donor=donor,
        coordinator=coordinator,
    )
    want = min(lot_quantity, sum(demands))

    async def proposed() -> list[dict[str, Any]] | None:
        items = await open_proposals(client, match)
        return items if sum(p["quantity"] for p in items) == want else None

    match.proposals = await eventually(proposed, seconds=30)
    return match


async def open_proposals(client: httpx.AsyncClient, match: Match) -> list[dict[str, Any]]:
    r = await client.get(
        f"/v1/proposals?offer_id={match.offer['id']}&status=proposed&limit=500", headers=match.coordinator
    )
    assert r.status_code == 200, r.text
    needs = {n["id"] for n in match.needs}
    return [p for p in r.json()["items"] if p["need_id"] in needs]


async def shipments_of(client: httpx.AsyncClient, match: Match) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/shipments?offer_id={match.offer['id']}&limit=500", headers=match.coordinator)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def out_by_proposal(shipments: list[dict[str, Any]], lot_id: str) -> dict[str, int]:
    """What of the lot has left under each proposal and not come back: on its way, or received."""
    out: dict[str, int] = defaultdict(int)
    for s in shipments:
        for line in s["lines"]:
            if line["lot_id"] != lot_id:
                continue
            if s["status"] in OUT:
                out[str(line["proposal_id"])] += line["quantity"]
            elif s["status"] in SETTLED:
                out[str(line["proposal_id"])] += line["quantity_received"] or 0
    return dict(out)


async def active_reservations(engine: AsyncEngine, lot_id: str) -> dict[str, int]:
    """reference → quantity of the lot's active reservations (supply's own rows)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT reference, quantity FROM supply.reservation WHERE lot_id = :lot AND status = 'active'"),
            {"lot": lot_id},
        )
        return {str(ref): int(q) for ref, q in rows.all()}


async def commitments(client: httpx.AsyncClient, engine: AsyncEngine, match: Match) -> tuple[int, dict[str, Any]]:
    """The lot's live commitments — every reference's active hold, or what left the lot under it if more — and
    what they were computed from. Goods that left under a proposal stay promised whatever its reservation says."""
    active = await active_reservations(engine, match.lot_id)
    out = out_by_proposal(await shipments_of(client, match), match.lot_id)
    total = sum(max(active.get(ref, 0), out.get(ref, 0)) for ref in set(active) | set(out))
    return total, {"active": active, "out": out}
