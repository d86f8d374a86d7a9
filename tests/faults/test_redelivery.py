"""The same event twice and events out of order, on the real relay, streams and consumer groups: each event is
handled once per group (the inbox), an older version of a need arriving after a newer one changes nothing
(matching's projection keeps the newer version), and a shipment's pick-up handled after its receipt leaves
nothing in transit (the roll-ups keep each shipment line's newest state)."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from reliefhub.gateway import Gateway
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import N95, RICE, WATER
from tests.helpers.db import scalar
from tests.helpers.faults import EFFECT_GROUP, NEEDS_GROUPS, NEEDS_STREAM, effect_counts, inbox_ids, running_workers
from tests.helpers.logistics import advance
from tests.helpers.needs import create_need, create_site
from tests.helpers.scenario import ship_a_gift
from tests.helpers.streams import caught_up, outbox_events, xadd_event
from tests.helpers.waiting import eventually

LINES = "SELECT line_id::text, item_code, quantity, need_version FROM matching.need_line_view WHERE need_id = :n"


def handled(group: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value("reliefhub_events_handled_total", {"consumer": group, "outcome": outcome})
    return value or 0.0


async def test_duplicate_and_stale_events_are_handled_once_and_keep_the_newer_version(
    client: httpx.AsyncClient, gateway: Gateway, engine: AsyncEngine, redis: Redis, auth: TokenFactory
) -> None:
    h = auth("frontline", org="org-faults")
    site = await create_site(client, h)
    need = await create_need(client, h, site["id"], {"item_code": N95, "quantity": 100})
    r = await client.patch(
        f"/v1/needs/{need['id']}",
        headers={**h, "If-Match": '"1"'},
        json={"lines": [{"item_code": RICE, "quantity": 50}, {"item_code": WATER, "quantity": 10}]},
    )
    assert r.status_code == 200, r.text
    v2 = r.json()
    site_created, created, updated = await outbox_events(engine, "needs")
    assert (created["data"]["version"], updated["data"]["version"]) == (1, 2)

    # Nothing relayed yet. The stream gets the newer version first, the same event twice, then the older version
    # (late), twice; then the workers start and the relay publishes the outbox as well (three more duplicates).
    for envelope in (site_created, updated, updated, created, created):
        await xadd_event(redis, NEEDS_STREAM, envelope)
    before = {(g, o): handled(g, o) for g in NEEDS_GROUPS for o in ("ok", "duplicate")}
    async with running_workers(gateway):

        async def settled() -> bool:
            published = await scalar(engine, "SELECT count(*) FROM needs.outbox_event WHERE published_at IS NULL")
            if published != 0 or await redis.xlen(NEEDS_STREAM) != 8:
                return False
            return all([await caught_up(redis, g, NEEDS_STREAM) for g in [*NEEDS_GROUPS, EFFECT_GROUP]])

        await eventually(settled, seconds=20)

    ids = {site_created["id"], created["id"], updated["id"]}
    for group, schema in NEEDS_GROUPS.items():
        got = await inbox_ids(engine, schema, group)
        assert sorted(got) == sorted(ids), group
        if group != "webhooks-fanout":  # (which also handles matching.events: its counters count those too)
            # 8 entries, 3 events: the group handled each event once and skipped 5 duplicates.
            assert handled(group, "ok") - before[group, "ok"] == 3, group
            assert handled(group, "duplicate") - before[group, "duplicate"] == 5, group
    assert await effect_counts(engine) == dict.fromkeys(ids, 1)
    assert sorted(await inbox_ids(engine, "needs", EFFECT_GROUP)) == sorted(ids)

    async with engine.connect() as conn:
        rows = (await conn.execute(text(LINES), {"n": need["id"]})).all()
    assert sorted((r[0], r[1], r[2], r[3]) for r in rows) == sorted(
        (line["id"], line["item_code"], line["quantity"], 2) for line in v2["lines"]
    )
    # logistics' projection of the same stream keeps the newer version as well
    async with engine.connect() as conn:
        version, lines = (
            await conn.execute(
                text("SELECT version, lines FROM logistics.need_view WHERE need_id = :n"), {"n": need["id"]}
            )
        ).one()
    assert version == 2 and sorted(line["id"] for line in lines) == sorted(line["id"] for line in v2["lines"])
    assert await redis.xlen(f"{NEEDS_STREAM}.dead") == 0


LOGISTICS_STREAM = "logistics.events"
SHIPMENT_GROUPS = ("needs-rollup", "supply-shipments", "matching-returns")


async def test_a_pick_up_handled_after_the_receipt_leaves_nothing_in_transit(
    client: httpx.AsyncClient, gateway: Gateway, engine: AsyncEngine, redis: Redis, auth: TokenFactory
) -> None:
    """The crash after a restart: a consumer of each group read `picked_up` and died; the new consumers read the
    shipment's later events first and reclaim `picked_up` only once it is idle. Every roll-up ends exact."""
    async with running_workers(gateway):
        gift = await ship_a_gift(client, auth)

        async def matched() -> bool:
            need = (await client.get(f"/v1/needs/{gift.need['id']}", headers=gift.recipient)).json()
            return bool(need["status"] == "matched")

        await eventually(matched, seconds=20)

        async def planning_handled() -> bool:
            unpublished = await scalar(engine, "SELECT count(*) FROM logistics.outbox_event WHERE published_at IS NULL")
            return unpublished == 0 and all([await caught_up(redis, g, LOGISTICS_STREAM) for g in SHIPMENT_GROUPS])

        await eventually(planning_handled, seconds=20)
    # Workers stopped: the shipment moves and is received (rice 10 short), its events wait in the outbox.
    sid = gift.shipment["id"]
    await advance(client, gift.carrier, sid, "picked_up", "in_transit", "delivered")
    pin = (await client.get(f"/v1/shipments/{sid}", headers=gift.recipient)).json()["handover_pin"]
    receipt = {
        "pin": pin,
        "lines": [
            {"item_code": RICE, "quantity_received": 90, "discrepancy_reason": "10袋破损"},
            {"item_code": WATER, "quantity_received": 240},
        ],
    }
    r = await client.post(f"/v1/shipments/{sid}/receipt", headers=gift.recipient, json=receipt)
    assert r.status_code == 200, r.text
    async with engine.begin() as conn:
        rows = (
            await conn.execute(
                text(
                    "UPDATE logistics.outbox_event SET published_at = now() WHERE published_at IS NULL "
                    "RETURNING seq, envelope"
                )
            )
        ).all()
    moves = [env for _, env in sorted(rows, key=lambda r: r[0])]
    kinds = [env["type"].rsplit(".", 1)[1] for env in moves]
    assert kinds == ["picked_up", "in_transit", "delivered", "received"]
    for envelope in moves:
        await xadd_event(redis, LOGISTICS_STREAM, envelope)
    for group in SHIPMENT_GROUPS:
        # Each group (made by the first workers) has read up to the shipment's planning; its old consumer read
        # the pick-up and was killed before acking it.
        read: Any = await redis.xreadgroup(group, "killed", {LOGISTICS_STREAM: ">"}, count=1)
        assert [kind for _s, entries in read for _id, f in entries for kind in [f["type"]]] == [moves[0]["type"]]

    async with running_workers(gateway):

        async def settled() -> bool:
            return all([await caught_up(redis, g, LOGISTICS_STREAM) for g in SHIPMENT_GROUPS])

        await eventually(settled, seconds=20)

        async def rolled_up() -> dict[str, Any] | None:
            need = (await client.get(f"/v1/needs/{gift.need['id']}", headers=gift.recipient)).json()
            return need if need["version"] > gift.need["version"] and need["status"] != "matched" else None

        need = await eventually(rolled_up)
    lines = {line["item_code"]: line for line in need["lines"]}
    # (matched, in transit, delivered): the short 10 are open again, nothing is still on its way.
    assert (lines[RICE]["quantity_matched"], lines[RICE]["quantity_in_transit"], lines[RICE]["quantity_delivered"]) == (
        90,
        0,
        90,
    )
    assert (lines[WATER]["quantity_matched"], lines[WATER]["quantity_in_transit"]) == (240, 0)
    assert lines[WATER]["quantity_delivered"] == 240
    assert need["status"] == "open"
    for lot in gift.offer["lots"]:
        got = (await client.get(f"/v1/lots/{lot['id']}", headers=gift.coordinator)).json()
        kept = 90 if lot["item_code"] == RICE else 240
        assert (got["quantity_shipped"], got["quantity_delivered"], got["quantity_reserved"]) == (kept, kept, kept)
    for proposal in gift.proposals:
        got = (await client.get(f"/v1/proposals/{proposal['id']}", headers=gift.coordinator)).json()
        assert got["quantity_returned"] == (10 if proposal["lot_item_code"] == RICE else 0)
