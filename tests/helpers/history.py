"""A recorded history of events: a relief scenario driven once through the API with every worker running
(gifts planned, moved, received whole and short, cancelled, not received, still moving; a need edited and
closed; a lot checked and held by hand; a pledge; an offer withdrawn), then what every outbox published and
the tables the consumers read and write, as JSON, so that a test can put them back and feed the consumers the
same events in any order."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from reliefhub.gateway import Gateway
from shared.events import CloudEvent
from shared.worker import run_worker
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import CONCENTRATOR, N95, QUILT, RICE, WATER
from tests.helpers.db import snapshot
from tests.helpers.logistics import advance, full_receipt
from tests.helpers.needs import create_need
from tests.helpers.scenario import Gift, ship_a_gift
from tests.helpers.supply import create_donor, create_offer, create_pledge
from tests.helpers.waiting import eventually

SERVICES = ("needs", "supply", "matching", "logistics", "webhooks")


class History:
    # Not a dataclass: Hypothesis prints a test's arguments field by field, and this one holds every event.
    def __init__(
        self, events: list[tuple[str, CloudEvent]], tables: dict[str, str], before_moves: dict[str, str]
    ) -> None:
        self.events = events  # (stream, event) in each outbox's order, the services one after another
        self.tables = tables  # "schema.table" → its rows as a JSON array, at the end of the scenario
        self.before_moves = before_moves  # the same for supply's tables once every shipment was planned
        self.gifts: dict[str, Gift] = {}

    def __repr__(self) -> str:
        return f"History({len(self.events)} events)"

    def of(self, *streams: str) -> list[tuple[str, CloudEvent]]:
        return [(s, e) for s, e in self.events if s in streams]


async def quiet(engine: AsyncEngine, redis: Redis) -> bool:
    """Every outbox relayed, and every group of every stream has read and acked everything."""
    async with engine.connect() as conn:
        for service in SERVICES:
            unpublished = await conn.execute(text(f"SELECT 1 FROM {service}.outbox_event WHERE published_at IS NULL"))
            if unpublished.first() is not None:
                return False
    for service in SERVICES:
        stream = f"{service}.events"
        if not await redis.exists(stream):
            continue
        info: Any = await redis.xinfo_stream(stream)
        groups: Any = await redis.xinfo_groups(stream)
        if any(g["last-delivered-id"] != info["last-generated-id"] or int(g["pending"]) for g in groups):
            return False
    return True


async def _post(client: httpx.AsyncClient, path: str, headers: dict[str, str], body: Any = None) -> Any:
    r = await client.post(path, headers=headers, json=body)
    assert r.status_code in (200, 201, 204), f"{path}: {r.text}"
    return r.json() if r.content else None


async def _sideshows(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    """Events that are not about shipments: a need edited and closed, a lot checked and held by hand and let
    go, a cash pledge, an offer edited and withdrawn."""
    coordinator = auth("coordinator")
    clinic = auth("frontline", org="org-clinic")
    site = await _post(client, "/v1/sites", clinic, {"name": "卫生站", "kind": "hospital", "region_code": "310104"})
    need = await create_need(client, clinic, site["id"], {"item_code": N95, "quantity": 50}, title="口罩")
    r = await client.patch(
        f"/v1/needs/{need['id']}",
        headers={**clinic, "If-Match": '"1"'},
        json={"lines": [{"item_code": N95, "quantity": 80}]},
    )
    assert r.status_code == 200, r.text
    await _post(client, f"/v1/needs/{need['id']}/close", clinic, {"reason": "已自行采购"})

    donor_headers = auth("donor", org="org-devices")
    donor = await create_donor(client, donor_headers, name="器械公司")
    devices = await create_offer(client, donor_headers, donor["id"], lots=[{"item_code": CONCENTRATOR, "quantity": 5}])
    await _post(
        client,
        f"/v1/offers/{devices['id']}/verification",
        auth("working_group", org="wg", group="medical_device"),
        {"verdict": "verified"},
    )
    held = await _post(
        client, f"/v1/lots/{devices['lots'][0]['id']}/reservations", coordinator, {"quantity": 2, "reference": "hold-1"}
    )
    r = await client.delete(f"/v1/reservations/{held['id']}", headers=coordinator)
    assert r.status_code == 204, r.text
    await create_pledge(client, donor_headers, donor["id"], 500000)
    quilts = await create_offer(client, donor_headers, donor["id"], lots=[{"item_code": QUILT, "quantity": 30}])
    r = await client.patch(
        f"/v1/offers/{quilts['id']}",
        headers={**donor_headers, "If-Match": '"1"'},
        json={"restrictions": {"region_codes": ["31"]}},
    )
    assert r.status_code == 200, r.text
    await _post(client, f"/v1/offers/{quilts['id']}/withdraw", donor_headers, {"reason": "改捐"})


async def _receipt(client: httpx.AsyncClient, gift: Gift, short: dict[str, int] | None = None) -> None:
    shipment = (await client.get(f"/v1/shipments/{gift.shipment['id']}", headers=gift.recipient)).json()
    body = full_receipt(shipment, shipment["handover_pin"])
    for line, sent in zip(body["lines"], shipment["lines"], strict=True):
        if short and sent["item_code"] in short:
            line["quantity_received"] = short[sent["item_code"]]
            line["discrepancy_reason"] = "破损"
    await _post(client, f"/v1/shipments/{gift.shipment['id']}/receipt", gift.recipient, body)


SUPPLY_TABLES = ["supply.donor", "supply.offer", "supply.lot", "supply.reservation"]
RECORDED_TABLES = [
    "needs.site",
    "needs.need",
    "needs.need_line",
    "needs.line_match",
    "needs.line_shipment",
    "needs.inbox_event",
    *SUPPLY_TABLES,
    "supply.lot_shipment",
    "supply.inbox_event",
    "matching.allocation_run",
    "matching.proposal",
    "matching.need_line_view",
    "matching.lot_view",
    "matching.shipment_return",
    "matching.inbox_event",
    *(f"{s}.outbox_event" for s in SERVICES),
]


async def record_history(gateway: Gateway, engine: AsyncEngine, redis: Redis, auth: TokenFactory) -> History:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_worker(app.state.runtime, stop)) for app in gateway.apps.values()]
    try:
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://reliefhub.test", timeout=30) as client:
            await _sideshows(client, auth)
            plans = {
                "received": ((RICE, 100), (WATER, 240)),
                "short": ((RICE, 70), (WATER, 120)),
                "cancelled": ((RICE, 30),),
                "not_received": ((WATER, 60), (RICE, 20)),
                "moving": ((RICE, 40), (WATER, 90)),
            }
            gifts = {
                name: await ship_a_gift(client, auth, lines=lines, org=f"org-{name}", donor_org=f"org-donor-{name}")
                for name, lines in plans.items()
            }
            await eventually(lambda: quiet(engine, redis), seconds=30)
            before_moves = await snapshot(engine, SUPPLY_TABLES)

            carrier = gifts["received"].carrier
            for name, steps in {
                "received": ("picked_up", "in_transit", "in_transit", "delivered"),
                "short": ("picked_up", "delivered"),
                "cancelled": ("cancelled",),
                "not_received": ("picked_up", "in_transit", "not_received"),
                "moving": ("picked_up", "in_transit"),
            }.items():
                await advance(client, carrier, gifts[name].shipment["id"], *steps)
            await _receipt(client, gifts["received"])
            await _receipt(client, gifts["short"], short={RICE: 63})

            async def settled() -> bool:
                # Quiet twice over, a debounced matching run apart.
                if not await quiet(engine, redis):
                    return False
                await asyncio.sleep(0.6)
                return await quiet(engine, redis)

            await eventually(settled, seconds=40)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    events: list[tuple[str, CloudEvent]] = []
    async with engine.connect() as conn:
        for service in SERVICES:
            rows = await conn.execute(text(f"SELECT stream, envelope FROM {service}.outbox_event ORDER BY seq"))
            events += [(stream, CloudEvent.model_validate(env)) for stream, env in rows.all()]
    history = History(events=events, tables=await snapshot(engine, RECORDED_TABLES), before_moves=before_moves)
    history.gifts = gifts
    return history


def rows_of(saved: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(saved)
    return out
