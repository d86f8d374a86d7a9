"""Matching's projection of the needs and supply streams (need_line_view, lot_view): fed through the real
outbox relays, Redis streams and matching's consumer groups; guarded by versions; redelivered until it fits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.matching.events import LotNotProjectedYet, on_need_event, on_need_events, on_supply_event
from shared.events import CloudEvent
from shared.events.consumer import Consumer
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import N95, RICE
from tests.helpers.db import rows
from tests.helpers.matching import allocation_run
from tests.helpers.needs import shelter_need
from tests.helpers.streams import consume, project, publish, run_job, runtime, take_outbox, xadd_events
from tests.helpers.supply import donor_offer, reserve

LINES_OF = "SELECT * FROM matching.need_line_view WHERE need_id = :n ORDER BY item_code, quantity"
LOT = "SELECT * FROM matching.lot_view WHERE lot_id = :l"


async def handle(gateway: Any, handler: Any, event: CloudEvent) -> None:
    """Run a projection handler in its own transaction, as a consumer would."""
    async with runtime(gateway, "matching").sessionmaker() as session, session.begin():
        await handler(session, event)


def need_event(need_id: uuid.UUID, version: int, lines: list[dict[str, Any]], **over: Any) -> CloudEvent:
    data: dict[str, Any] = {
        "id": str(need_id),
        "site_id": str(uuid.UUID(int=7)),
        "org": "org-shelter",
        "site_kind": "shelter",
        "region_code": "310115",
        "lat": 31.22,
        "lon": 121.54,
        "title": "大米",
        "urgency": "high",
        "needed_by": None,
        "beneficiaries": None,
        "status": "open",
        "verification": "unverified",
        "duplicate_of": None,
        "lines": lines,
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        **over,
    }
    return CloudEvent(source="/reliefhub/needs", type="reliefhub.needs.need.updated", subject=str(need_id), data=data)


def line(line_id: uuid.UUID, item_code: str, quantity: int) -> dict[str, Any]:
    return {
        "id": str(line_id),
        "item_code": item_code,
        "quantity": quantity,
        "unit": "kg",
        "quantity_matched": 0,
        "quantity_delivered": 0,
    }


async def test_need_created_projects_one_row_per_line(client, auth: TokenFactory, gateway, engine) -> None:
    need = await shelter_need(
        client,
        auth,
        {"item_code": RICE, "quantity": 100},
        {"item_code": N95, "quantity": 500},
        urgency="critical",
        beneficiary_groups={"elderly": 120, "children": 0},
    )
    assert await rows(engine, LINES_OF, n=need["id"]) == []
    assert await project(gateway) >= 2  # site.created, need.created

    got = await rows(engine, LINES_OF, n=need["id"])
    assert [(r["item_code"], r["quantity"]) for r in got] == [(RICE, 100), (N95, 500)]
    by_item = {r["item_code"]: r for r in got}
    assert {str(by_item[ln["item_code"]]["line_id"]) for ln in need["lines"]} == {ln["id"] for ln in need["lines"]}
    for r in got:
        assert r["need_version"] == 1
        assert r["need_status"] == "open" and r["verification"] == "unverified"
        assert r["urgency"] == "critical"
        assert r["region_code"] == "310115" and r["site_kind"] == "shelter" and r["org"] == "org-shelter"
        assert (r["lat"], r["lon"]) == (31.22, 121.54)
        assert str(r["site_id"]) == need["site_id"]
        assert r["beneficiary_groups"] == {"elderly": 120, "children": 0}


async def test_an_event_of_a_need_naming_no_groups_projects_none(gateway, engine) -> None:
    need_id = uuid.uuid4()
    await handle(gateway, on_need_event, need_event(need_id, 1, [line(uuid.uuid4(), RICE, 5)]))
    (got,) = await rows(engine, LINES_OF, n=str(need_id))
    assert got["beneficiary_groups"] == {}


async def test_need_update_replacing_lines_removes_the_old_rows(client, auth: TokenFactory, gateway, engine) -> None:
    need = await shelter_need(client, auth, {"item_code": RICE, "quantity": 100}, {"item_code": N95, "quantity": 50})
    await project(gateway)
    old_ids = {str(r["line_id"]) for r in await rows(engine, LINES_OF, n=need["id"])}
    assert len(old_ids) == 2

    r = await client.patch(
        f"/v1/needs/{need['id']}",
        headers=auth("frontline", org="org-shelter", If_Match='"1"'),
        json={"lines": [{"item_code": RICE, "quantity": 40}]},
    )
    assert r.status_code == 200, r.text
    new_line = r.json()["lines"][0]
    assert new_line["id"] not in old_ids
    await project(gateway)

    got = await rows(engine, LINES_OF, n=need["id"])
    assert [(str(r["line_id"]), r["item_code"], r["quantity"], r["need_version"]) for r in got] == [
        (new_line["id"], RICE, 40, 2)
    ]


async def test_an_older_need_event_after_a_newer_one_changes_nothing(gateway, engine) -> None:
    need_id, kept, dropped = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    newer = need_event(need_id, 3, [line(kept, RICE, 50)], urgency="critical")
    older = need_event(need_id, 2, [line(kept, RICE, 10), line(dropped, N95, 20)], urgency="low")

    await handle(gateway, on_need_event, newer)
    await handle(gateway, on_need_event, older)

    got = await rows(engine, LINES_OF, n=str(need_id))
    # Version 3 no longer has the N95 line: the stale version 2 must not bring it back.
    assert [(r["line_id"], r["quantity"], r["urgency"], r["need_version"]) for r in got] == [(kept, 50, "critical", 3)]

    await handle(gateway, on_need_event, need_event(need_id, 4, [line(kept, RICE, 70)], status="matched"))
    got = await rows(engine, LINES_OF, n=str(need_id))
    assert [(r["quantity"], r["need_status"], r["need_version"]) for r in got] == [(70, "matched", 4)]


async def test_closed_and_expired_needs_are_no_longer_active(client, auth: TokenFactory, gateway, engine) -> None:
    closing = await shelter_need(client, auth)
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    expiring = await shelter_need(client, auth, org="org-school", kind="school", needed_by=past)
    await donor_offer(client, auth)
    await project(gateway)
    assert (await allocation_run(client, auth))["counts"]["lines"] == 2

    r = await client.post(
        f"/v1/needs/{closing['id']}/close", headers=auth("frontline", org="org-shelter"), json={"reason": "已收到"}
    )
    assert r.status_code == 200, r.text
    assert await run_job(gateway, "needs", "expire-stale-needs") == 1
    await project(gateway)

    assert [r["need_status"] for r in await rows(engine, LINES_OF, n=closing["id"])] == ["closed"]
    assert [r["need_status"] for r in await rows(engine, LINES_OF, n=expiring["id"])] == ["expired"]
    run = await allocation_run(client, auth)
    assert run["counts"]["lines"] == 0 and run["proposals"] == []


async def test_offer_created_projects_its_lots(client, auth: TokenFactory, gateway, engine) -> None:
    offer = await donor_offer(
        client,
        auth,
        {"item_code": RICE, "quantity": 60, "region_code": "310110"},
        {"item_code": N95, "quantity": 1000, "lat": 30.0, "lon": 120.0, "region_code": "330106"},
        restrictions={"region_codes": ["31"], "site_kinds": ["hospital"]},
    )
    rice, masks = offer["lots"]
    await project(gateway)

    (r,) = await rows(engine, LOT, l=rice["id"])
    assert str(r["offer_id"]) == offer["id"] and r["org"] == "org-grain"
    assert (r["item_code"], r["quantity"], r["quantity_reserved"]) == (RICE, 60, 0)
    assert (r["lot_version"], r["offer_version"], r["offer_status"]) == (1, 1, "open")
    assert r["verification"] == "not_required"
    assert r["restrictions"]["region_codes"] == ["31"] and r["restrictions"]["site_kinds"] == ["hospital"]
    (m,) = await rows(engine, LOT, l=masks["id"])
    assert (m["item_code"], m["quantity"], m["verification"]) == (N95, 1000, "pending")
    assert (m["lat"], m["lon"], m["region_code"]) == (30.0, 120.0, "330106")


async def test_lot_verified_applies_only_a_newer_lot_version(client, auth: TokenFactory, gateway, engine) -> None:
    offer = await donor_offer(client, auth, {"item_code": N95, "quantity": 500})
    lot = offer["lots"][0]
    await project(gateway)
    assert (await rows(engine, LOT, l=lot["id"]))[0]["verification"] == "pending"

    r = await client.post(
        f"/v1/offers/{offer['id']}/verification",
        headers=auth("working_group", org="wg", group="medical_device"),
        json={"verdict": "verified"},
    )
    assert r.status_code == 200, r.text
    await project(gateway)
    (row,) = await rows(engine, LOT, l=lot["id"])
    assert (row["verification"], row["lot_version"]) == ("verified", 2)

    stale = CloudEvent(
        source="/reliefhub/supply",
        type="reliefhub.supply.lot.verified",
        data={
            "offer_id": offer["id"],
            "group": "medical_device",
            "verdict": "rejected",
            "notes": None,
            "lots": [{**lot, "verification": "rejected", "version": 2}],
        },
    )
    await handle(gateway, on_supply_event, stale)
    (row,) = await rows(engine, LOT, l=lot["id"])
    assert (row["verification"], row["lot_version"]) == ("verified", 2)

    newer = stale.model_copy(
        update={"data": {**stale.data, "lots": [{**lot, "verification": "rejected", "version": 3}]}}
    )
    await handle(gateway, on_supply_event, newer)
    (row,) = await rows(engine, LOT, l=lot["id"])
    assert (row["verification"], row["lot_version"]) == ("rejected", 3)


async def test_reservation_events_apply_by_lot_version(client, auth: TokenFactory, gateway, engine) -> None:
    coordinator = auth("coordinator")
    lot = (await donor_offer(client, auth, {"quantity": 100}))["lots"][0]
    first = await reserve(client, coordinator, lot["id"], 10, "ref-first")
    second = await reserve(client, coordinator, lot["id"], 20, "ref-second")
    assert first.status_code == second.status_code == 201

    donor, offer, reserved_10, reserved_30 = await take_outbox(engine, "supply")
    assert [e["data"].get("lot_quantity_reserved") for e in (reserved_10, reserved_30)] == [10, 30]
    # The later reservation's event arrives first: the earlier one must not roll the quantity back.
    await xadd_events(runtime(gateway, "matching").redis, "supply.events", [donor, offer, reserved_30, reserved_10])
    assert await consume(gateway, "matching") == 4
    (row,) = await rows(engine, LOT, l=lot["id"])
    assert (row["quantity_reserved"], row["lot_version"]) == (30, 3)

    r = await client.delete(f"/v1/reservations/{second.json()['id']}", headers=coordinator)
    assert r.status_code == 204
    await project(gateway)
    (row,) = await rows(engine, LOT, l=lot["id"])
    assert (row["quantity_reserved"], row["lot_version"]) == (10, 4)


async def test_a_verdict_arriving_after_the_lots_reservation_still_applies(
    client, auth: TokenFactory, gateway, engine
) -> None:
    offer = await donor_offer(client, auth, {"item_code": N95, "quantity": 500})
    lot = offer["lots"][0]
    r = await client.post(
        f"/v1/offers/{offer['id']}/verification",
        headers=auth("working_group", org="wg", group="medical_device"),
        json={"verdict": "verified"},
    )
    assert r.status_code == 200, r.text
    assert (await reserve(client, auth("coordinator"), lot["id"], 10, "ref-early")).status_code == 201
    donor, created, verified, reserved = await take_outbox(engine, "supply")
    assert (verified["type"], reserved["data"]["lot_version"]) == ("reliefhub.supply.lot.verified", 3)

    # The reservation (lot version 3, which says nothing of the verdict) is projected before the verdict (2).
    await xadd_events(runtime(gateway, "matching").redis, "supply.events", [donor, created, reserved, verified])
    assert await consume(gateway, "matching") == 4
    (row,) = await rows(engine, LOT, l=lot["id"])
    assert (row["verification"], row["quantity_reserved"], row["lot_version"]) == ("verified", 10, 3)


async def test_a_reservation_before_its_offer_is_redelivered_until_the_offer_arrives(
    client, auth: TokenFactory, gateway, engine
) -> None:
    lot = (await donor_offer(client, auth, {"quantity": 100}))["lots"][0]
    assert (await reserve(client, auth("coordinator"), lot["id"], 25)).status_code == 201
    _donor, offer, reserved = await take_outbox(engine, "supply")

    with pytest.raises(LotNotProjectedYet):
        await handle(gateway, on_supply_event, CloudEvent.model_validate(reserved))

    rt = runtime(gateway, "matching")
    # Claims pending entries at once, so the redelivery need not wait for the idle time.
    settings = rt.settings.model_copy(update={"consumer_claim_idle_ms": 0})
    consumer = Consumer(
        group="matching-projection",
        stream="supply.events",
        handler=on_supply_event,
        sessionmaker=rt.sessionmaker,
        redis=rt.redis,
        settings=settings,
        name="tests",
    )
    await consumer.ensure_group()
    await xadd_events(runtime(gateway, "matching").redis, "supply.events", [reserved])
    assert await consumer.read_new(block_ms=1) == 0  # failed: left pending, not acked
    assert await rows(engine, LOT, l=lot["id"]) == []
    assert (await rt.redis.xpending("supply.events", "matching-projection"))["pending"] == 1

    await xadd_events(runtime(gateway, "matching").redis, "supply.events", [offer])
    assert await consumer.read_new(block_ms=1) == 1
    (row,) = await rows(engine, LOT, l=lot["id"])
    assert (row["quantity_reserved"], row["lot_version"]) == (0, 1)

    assert await consumer.reclaim() == 1
    (row,) = await rows(engine, LOT, l=lot["id"])
    assert (row["quantity_reserved"], row["lot_version"]) == (25, 2)
    assert (await rt.redis.xpending("supply.events", "matching-projection"))["pending"] == 0


async def test_the_same_event_delivered_twice_is_handled_once(client, auth: TokenFactory, gateway, engine) -> None:
    need = await shelter_need(client, auth)
    assert await publish(gateway, "needs") == 2
    stream: Any = await runtime(gateway, "matching").redis.xrange("needs.events")
    assert len(stream) == 2
    # The relay may publish a batch again after a crash: the same envelope twice on the stream.
    await runtime(gateway, "matching").redis.xadd("needs.events", stream[1][1])

    calls: list[str] = []

    async def counting(session: Any, event: CloudEvent) -> None:
        calls.append(event.id)
        await on_need_event(session, event)

    rt = runtime(gateway, "matching")
    consumer = Consumer(
        group="matching-projection",
        stream="needs.events",
        handler=counting,
        sessionmaker=rt.sessionmaker,
        redis=rt.redis,
        settings=rt.settings,
        name="tests",
    )
    await consumer.ensure_group()
    assert await consumer.read_new(block_ms=1) == 3  # all acked
    event_id = CloudEvent.model_validate_json(stream[1][1]["event"]).id
    assert calls.count(event_id) == 1 and len(calls) == 2
    inbox = await rows(engine, "SELECT consumer FROM matching.inbox_event WHERE event_id = :e", e=event_id)
    assert inbox == [{"consumer": "matching-projection"}]
    assert (await rt.redis.xpending("needs.events", "matching-projection"))["pending"] == 0
    assert len(await rows(engine, LINES_OF, n=need["id"])) == 1


async def test_a_batch_of_need_events_ends_as_the_same_events_one_by_one(gateway, engine) -> None:
    """The bulk handler: versions out of order and repeated within one batch, and a stale one against what is
    stored, end as they would one event at a time."""
    a, b = uuid.uuid4(), uuid.uuid4()
    a1, a2, b1 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await handle(gateway, on_need_event, need_event(b, 5, [line(b1, RICE, 9)]))
    batch = [
        need_event(a, 2, [line(a1, RICE, 10), line(a2, N95, 20)]),
        need_event(a, 3, [line(a1, RICE, 30)], urgency="critical"),
        need_event(a, 1, [line(a2, N95, 99)]),  # older, later in the batch
        need_event(b, 4, [line(b1, RICE, 1), line(uuid.uuid4(), N95, 2)]),  # older than what is stored
    ]
    async with runtime(gateway, "matching").sessionmaker() as session, session.begin():
        await on_need_events(session, batch)

    got_a = await rows(engine, LINES_OF, n=str(a))
    assert [(r["line_id"], r["quantity"], r["urgency"], r["need_version"]) for r in got_a] == [(a1, 30, "critical", 3)]
    got_b = await rows(engine, LINES_OF, n=str(b))
    assert [(r["line_id"], r["quantity"], r["need_version"]) for r in got_b] == [(b1, 9, 5)]
