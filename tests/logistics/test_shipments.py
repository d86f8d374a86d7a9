"""Shipments through the API: the automatic plan, who sees the handover PIN, the status machine, proof of
delivery with its PIN lockout and validation, If-Match on updates, manual planning, cancellation (which gives
the reservation and the need back) and the recipient's feedback."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.settings import Settings
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE, WATER
from tests.helpers.logistics import advance, full_receipt
from tests.helpers.problems import assert_problem
from tests.helpers.scenario import accept_a_gift, ship_a_gift
from tests.helpers.waiting import eventually


def slug(body: dict[str, Any]) -> str:
    return str(body["type"]).rsplit(":", 1)[-1]


async def shipment(client: httpx.AsyncClient, headers: dict[str, str], shipment_id: str) -> dict[str, Any]:
    r = await client.get(f"/v1/shipments/{shipment_id}", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == f'"{r.json()["version"]}"'
    body: dict[str, Any] = r.json()
    return body


def wrong(pin: str) -> str:
    return f"{(int(pin) + 1) % 10**6:06d}"


async def set_status(
    client: httpx.AsyncClient, headers: dict[str, str], shipment_id: str, target: str, **fields: Any
) -> httpx.Response:
    return await client.post(f"/v1/shipments/{shipment_id}/status", headers=headers, json={"status": target, **fields})


async def receive(client: httpx.AsyncClient, headers: dict[str, str], shipment_id: str, body: Any) -> httpx.Response:
    return await client.post(f"/v1/shipments/{shipment_id}/receipt", headers=headers, json=body)


def unchanged(after: dict[str, Any], before: dict[str, Any]) -> None:
    assert (after["status"], after["version"]) == (before["status"], before["version"])
    assert after["history"] == before["history"]
    assert [line["quantity_received"] for line in after["lines"]] == [
        line["quantity_received"] for line in before["lines"]
    ]


async def test_accepted_lines_make_one_planned_shipment_whose_pin_only_the_recipient_sees(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth)
    listed = (await client.get(f"/v1/shipments?need_id={gift.need['id']}", headers=gift.coordinator)).json()
    assert len(listed["items"]) == 1, listed
    s = await shipment(client, gift.coordinator, gift.shipment["id"])
    assert s["status"] == "planned" and s["auto"] is True
    assert s["destination_site_id"] == gift.site["id"]
    assert s["destination_org"] == "org-shelter"
    assert s["region_code"] == "310115"
    assert s["origin"]["lat"] == 31.3 and s["origin"]["lon"] == 121.5
    assert sorted((line["item_code"], line["quantity"]) for line in s["lines"]) == [(RICE, 100), (WATER, 240)]
    lots = {lot["item_code"]: lot["id"] for lot in gift.offer["lots"]}
    need_lines = {line["item_code"]: line["id"] for line in gift.need["lines"]}
    proposals = {p["id"] for p in gift.proposals}
    for line in s["lines"]:
        assert line["lot_id"] == lots[line["item_code"]]
        assert line["need_line_id"] == need_lines[line["item_code"]]
        assert line["need_id"] == gift.need["id"] and line["offer_id"] == gift.offer["id"]
        assert line["proposal_id"] in proposals
        assert line["quantity_received"] is None and line["quantity_returned"] is None
    assert {line["proposal_id"] for line in s["lines"]} == proposals
    assert [h["status"] for h in s["history"]] == ["planned"]
    for proposal_id in proposals:
        by_proposal = (await client.get(f"/v1/shipments?proposal_id={proposal_id}", headers=gift.carrier)).json()
        assert [x["id"] for x in by_proposal["items"]] == [s["id"]]
    by_region = (await client.get("/v1/shipments?region_code=3101", headers=gift.carrier)).json()
    assert [x["id"] for x in by_region["items"]] == [s["id"]]
    elsewhere = (await client.get("/v1/shipments?region_code=11", headers=gift.carrier)).json()
    assert elsewhere["items"] == []

    # The handover PIN: only the receiving site's frontline sees it — not its organisation's other tokens, not
    # coordinators (a receipt they record must mean the site read the PIN out to them).
    sid = gift.shipment["id"]
    pin = (await shipment(client, gift.recipient, sid))["handover_pin"]
    assert isinstance(pin, str) and len(pin) == 6 and pin.isdigit()
    assert gift.shipment["handover_pin"] == pin  # the recipient's list shows it too
    assert (await shipment(client, auth("frontline", "coordinator", org="org-shelter"), sid))["handover_pin"] == pin
    others = {
        "coordinator": gift.coordinator,
        "carrier": gift.carrier,
        "donor": gift.donor,
        "other frontline": auth("frontline", org="org-elsewhere"),
        "the site org's coordinator": auth("coordinator", org="org-shelter"),
        "the site org's admin": auth("admin", org="org-shelter"),
        "the site org's logistics": auth("logistics", org="org-shelter"),
        "the site org's donor": auth("donor", org="org-shelter"),
        "the site org's working group": auth("working_group", org="org-shelter", group="food_safety"),
    }
    for who, headers in others.items():
        one = await shipment(client, headers, sid)
        assert one["handover_pin"] is None, who
        listed = (await client.get(f"/v1/shipments?need_id={gift.need['id']}", headers=headers)).json()
        assert [x["handover_pin"] for x in listed["items"]] == [None], who
        assert pin not in (await client.get(f"/v1/shipments/{sid}", headers=headers)).text, who
    moved = await set_status(client, gift.carrier, sid, "picked_up")
    assert moved.status_code == 200 and moved.json()["handover_pin"] is None


async def test_carriers_move_a_shipment_step_by_step_and_others_may_not(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth)
    sid, carrier = gift.shipment["id"], gift.carrier
    before = await shipment(client, gift.coordinator, sid)
    stranger = auth("frontline", org="org-elsewhere")
    for target in ("picked_up", "cancelled"):
        assert_problem(await set_status(client, stranger, sid, target), 403, context=target)
        assert_problem(await set_status(client, gift.recipient, sid, target), 403, context=target)
        assert_problem(await set_status(client, gift.donor, sid, target), 403, context=target)
    assert (await client.post(f"/v1/shipments/{sid}/status", json={"status": "picked_up"})).status_code == 401
    unchanged(await shipment(client, gift.coordinator, sid), before)
    version = before["version"]
    steps = [
        ("picked_up", "粮油公司仓库", None),
        ("in_transit", "嘉定分拨中心", "到达分拨中心"),
        ("in_transit", "浦东新区", "离开分拨中心"),
        ("delivered", "浦东临时安置点", "交给值班人员"),
    ]
    for target, location, note in steps:
        r = await set_status(client, carrier, sid, target, location=location, note=note)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == target
        assert r.json()["version"] == version + 1
        assert r.headers["etag"] == f'"{version + 1}"'
        version += 1
        # Another organisation's frontline may not move it, nor even report that nothing arrived.
        moving = await shipment(client, gift.coordinator, sid)
        for other in ("in_transit", "delivered", "not_received"):
            assert_problem(await set_status(client, stranger, sid, other), 403, context=f"{target}→{other}")
        unchanged(await shipment(client, gift.coordinator, sid), moving)
    s = await shipment(client, gift.recipient, sid)
    assert s["status"] == "delivered" and s["version"] == version
    assert s["picked_up_at"] and s["delivered_at"] and s["received_at"] is None
    history = [(h["status"], h["location"], h["note"]) for h in s["history"]]
    assert history[0][0] == "planned"
    assert history[1:] == steps
    times = [h["at"] for h in s["history"]]
    assert times == sorted(times)


async def test_illegal_transitions_answer_409_and_change_nothing(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth)
    sid, carrier, coordinator = gift.shipment["id"], gift.carrier, gift.coordinator

    async def refused(target: str) -> None:
        before = await shipment(client, coordinator, sid)
        body = assert_problem(await set_status(client, coordinator, sid, target), 409, context=target)
        assert slug(body) == "illegal-transition", body
        assert body["status"] == 409
        unchanged(await shipment(client, coordinator, sid), before)

    for target in ("in_transit", "delivered", "not_received"):
        await refused(target)
    await advance(client, carrier, sid, "picked_up")
    for target in ("picked_up", "cancelled"):
        await refused(target)
    await advance(client, carrier, sid, "in_transit", "delivered")
    for target in ("picked_up", "in_transit", "delivered", "cancelled"):
        await refused(target)
    s = await shipment(client, gift.recipient, sid)
    received = await receive(client, gift.recipient, sid, full_receipt(s, s["handover_pin"]))
    assert received.status_code == 200 and received.json()["status"] == "received", received.text
    for target in ("picked_up", "in_transit", "delivered", "not_received", "cancelled"):
        await refused(target)
    again = await receive(client, gift.recipient, sid, full_receipt(s, s["handover_pin"]))
    assert slug(assert_problem(again, 409)) == "illegal-transition"


async def test_wrong_pins_count_down_then_lock_receipt(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine, migrated: Settings, workers: None
) -> None:
    limit, lock_seconds = migrated.pin_max_failures, migrated.pin_lock_seconds
    assert (limit, lock_seconds) == (5, 900)  # the defaults
    gift = await ship_a_gift(client, auth)
    sid = gift.shipment["id"]
    await advance(client, gift.carrier, sid, "picked_up", "delivered")
    s = await shipment(client, gift.recipient, sid)
    pin = s["handover_pin"]
    bad = full_receipt(s, wrong(pin))
    for left in range(limit - 1, 0, -1):
        body = assert_problem(await receive(client, gift.recipient, sid, bad), 403)
        assert slug(body) == "wrong-pin" and body["attempts_left"] == left, body
    locked = await receive(client, gift.recipient, sid, bad)
    body = assert_problem(locked, 429)
    assert slug(body) == "pin-locked", body
    assert int(locked.headers["retry-after"]) == lock_seconds
    # Locked: even the right PIN is refused, with the time left.
    right = await receive(client, gift.recipient, sid, full_receipt(s, pin))
    assert slug(assert_problem(right, 429)) == "pin-locked"
    assert 0 < int(right.headers["retry-after"]) <= lock_seconds
    after = await shipment(client, gift.recipient, sid)
    assert after["status"] == "delivered" and after["pin_locked_until"] is not None
    assert all(line["quantity_received"] is None for line in after["lines"])
    assert after["version"] == s["version"]

    async def expire_lock() -> None:  # the lock runs out (shortened here)
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE logistics.shipment SET pin_locked_until = now() - interval '1 second' WHERE id = :id"),
                {"id": uuid.UUID(sid)},
            )

    # Once it has run out the count starts afresh, and guessing in parallel gets no more tries.
    await expire_lock()
    answers = await asyncio.gather(*(receive(client, gift.recipient, sid, bad) for _ in range(2 * limit + 2)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [403] * (limit - 1) + [429] * (limit + 3), [r.text for r in answers]
    assert sorted(r.json()["attempts_left"] for r in answers if r.status_code == 403) == list(range(1, limit))
    assert slug(assert_problem(await receive(client, gift.recipient, sid, full_receipt(s, pin)), 429)) == "pin-locked"
    await expire_lock()
    done = await receive(client, gift.recipient, sid, full_receipt(s, pin))
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "received" and done.json()["pin_locked_until"] is None


async def test_only_the_site_its_assigned_carrier_and_coordinators_may_try_the_pin(
    client: httpx.AsyncClient, auth: TokenFactory, migrated: Settings, workers: None
) -> None:
    limit = migrated.pin_max_failures
    gift = await ship_a_gift(client, auth)
    sid, url = gift.shipment["id"], f"/v1/shipments/{gift.shipment['id']}"
    await advance(client, gift.carrier, sid, "picked_up")
    s = await shipment(client, gift.recipient, sid)
    pin = s["handover_pin"]
    bad, right = full_receipt(s, wrong(pin)), full_receipt(s, pin)

    # Nobody else may try it, and their tries do not count towards the lock: more of them than the limit.
    strangers = {
        "another org's logistics": auth("logistics", org="org-trucks"),
        "a carrier not assigned to it": gift.carrier,
        "the site org's logistics": auth("logistics", org="org-shelter"),
        "another org's frontline": auth("frontline", org="org-elsewhere"),
    }
    for who, headers in strangers.items():
        for _ in range(limit + 1):
            body = assert_problem(await receive(client, headers, sid, bad), 403, context=who)
            assert slug(body) == "not-the-recipient", (who, body)
        assert slug(assert_problem(await receive(client, headers, sid, right), 403, context=who)) == "not-the-recipient"
    unchanged(await shipment(client, gift.coordinator, sid), s)
    assert (await shipment(client, gift.coordinator, sid))["pin_locked_until"] is None

    # Coordinators assign the carrier's organisation; a carrier cannot assign itself.
    etag = (await client.get(url, headers=gift.carrier)).headers["etag"]
    for org in ("org-carrier", "org-trucks"):
        refused = await client.patch(url, headers={**gift.carrier, "If-Match": etag}, json={"carrier_org": org})
        assert_problem(refused, 403, context=org)
    assigned = await client.patch(
        url, headers={**gift.coordinator, "If-Match": etag}, json={"carrier": "顺丰速运", "carrier_org": "org-carrier"}
    )
    assert assigned.status_code == 200, assigned.text
    assert (assigned.json()["carrier"], assigned.json()["carrier_org"]) == ("顺丰速运", "org-carrier")
    assert assigned.json()["handover_pin"] is None
    await advance(client, gift.carrier, sid, "delivered")

    # The site, its assigned carrier and coordinators may try; each wrong PIN of theirs counts.
    for left, headers in zip(range(limit - 1, 0, -1), (gift.recipient, gift.carrier, gift.coordinator), strict=False):
        body = assert_problem(await receive(client, headers, sid, bad), 403)
        assert slug(body) == "wrong-pin" and body["attempts_left"] == left, body
    assert slug(assert_problem(await receive(client, strangers["another org's logistics"], sid, bad), 403)) == (
        "not-the-recipient"
    )
    # The carrier at the handover, with the PIN the site gives them.
    done = await receive(client, gift.carrier, sid, right)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "received" and done.json()["handover_pin"] is None
    assert (await shipment(client, gift.recipient, sid))["history"][-1]["status"] == "received"


async def test_invalid_receipts_answer_422_and_change_nothing(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth)
    sid = gift.shipment["id"]
    await advance(client, gift.carrier, sid, "picked_up")
    before = await shipment(client, gift.recipient, sid)
    pin = before["handover_pin"]
    lines = {line["item_code"]: line for line in before["lines"]}
    rice, water = lines[RICE], lines[WATER]

    def body(*entries: dict[str, Any]) -> dict[str, Any]:
        return {"pin": pin, "lines": list(entries)}

    whole_water = {"item_code": WATER, "quantity_received": 240}
    cases = {
        "more than shipped": body({"item_code": RICE, "quantity_received": 101}, whole_water),
        "more than shipped, by line": body(
            {"line_id": rice["id"], "quantity_received": 101}, {"line_id": water["id"], "quantity_received": 240}
        ),
        "short without a reason": body({"item_code": RICE, "quantity_received": 90}, whole_water),
        "short with a blank reason": body(
            {"item_code": RICE, "quantity_received": 90, "discrepancy_reason": "   "}, whole_water
        ),
        "a line not mentioned": body({"item_code": RICE, "quantity_received": 100}),
        "unknown item": body(
            {"item_code": RICE, "quantity_received": 100},
            whole_water,
            {"item_code": "food.unknown.thing", "quantity_received": 1},
        ),
        "unknown line id": body({"line_id": str(uuid.uuid4()), "quantity_received": 100}, whole_water),
        "a line named twice": body(
            {"item_code": RICE, "quantity_received": 100},
            {"line_id": rice["id"], "quantity_received": 100},
            whole_water,
        ),
        "negative": body({"item_code": RICE, "quantity_received": -1, "discrepancy_reason": "x"}, whole_water),
        "neither item nor line": body({"quantity_received": 100}, whole_water),
        "no lines": body(),
        "malformed pin": {"pin": "12ab56", "lines": [{"item_code": RICE, "quantity_received": 100}, whole_water]},
    }
    for case, payload in cases.items():
        r = await receive(client, gift.recipient, sid, payload)
        problem = assert_problem(r, 422, context=case)
        assert problem.get("errors"), f"{case}: {problem}"
        unchanged(await shipment(client, gift.recipient, sid), before)
    # None of these counted as a wrong PIN: the right receipt still goes through.
    ok = await receive(client, gift.recipient, sid, body({"item_code": RICE, "quantity_received": 100}, whole_water))
    assert ok.status_code == 200 and ok.json()["status"] == "received", ok.text


async def test_full_receipt_settles_the_shipment_and_rolls_up(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth)
    sid = gift.shipment["id"]
    await advance(client, gift.carrier, sid, "picked_up")

    async def moving() -> bool:
        need = (await client.get(f"/v1/needs/{gift.need['id']}", headers=gift.recipient)).json()
        in_transit = sorted((line["item_code"], line["quantity_in_transit"]) for line in need["lines"])
        return bool(need["status"] == "in_transit" and in_transit == [(RICE, 100), (WATER, 240)])

    await eventually(moving)
    await advance(client, gift.carrier, sid, "in_transit", "delivered")
    s = await shipment(client, gift.recipient, sid)
    r = await receive(client, gift.recipient, sid, full_receipt(s, s["handover_pin"]))
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "received" and done["received_at"] and done["version"] == s["version"] + 1
    for line in done["lines"]:
        assert line["quantity_received"] == line["quantity"] and line["quantity_returned"] == 0
        assert line["discrepancy_reason"] is None
    got = await shipment(client, gift.coordinator, sid)
    assert got["status"] == "received" and got["history"][-1]["status"] == "received"

    ledger = await client.get(f"/v1/ledger?kind=in_kind_delivered&shipment_id={sid}", headers=gift.coordinator)
    assert sorted((e["item_code"], e["quantity"]) for e in ledger.json()["items"]) == [(RICE, 100), (WATER, 240)]

    async def delivered() -> dict[str, Any] | None:
        need = (await client.get(f"/v1/needs/{gift.need['id']}", headers=gift.recipient)).json()
        lines = {line["item_code"]: line for line in need["lines"]}
        ok = lines[RICE]["quantity_delivered"] == 100 and lines[WATER]["quantity_delivered"] == 240
        done = ok and need["status"] == "fulfilled"
        return need if done and all(line["quantity_in_transit"] == 0 for line in need["lines"]) else None

    await eventually(delivered)
    for lot in gift.offer["lots"]:

        async def lot_delivered(lot_id: str = lot["id"], quantity: int = lot["quantity"]) -> bool:
            body = (await client.get(f"/v1/lots/{lot_id}", headers=gift.coordinator)).json()
            return bool(body["quantity_delivered"] == quantity)

        await eventually(lot_delivered)


async def test_receipt_of_nothing_is_not_received_and_gives_everything_back(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth)
    sid = gift.shipment["id"]
    await advance(client, gift.carrier, sid, "picked_up", "delivered")
    s = await shipment(client, gift.recipient, sid)
    zeros = {
        "pin": s["handover_pin"],
        "lines": [
            {"item_code": code, "quantity_received": 0, "discrepancy_reason": "车辆未到"} for code in (RICE, WATER)
        ],
    }
    r = await receive(client, gift.recipient, sid, zeros)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "not_received"
    for line in r.json()["lines"]:
        assert line["quantity_received"] == 0 and line["quantity_returned"] == line["quantity"]
        assert line["discrepancy_reason"] == "车辆未到"
    assert (await shipment(client, gift.coordinator, sid))["status"] == "not_received"

    async def returned() -> bool:
        need = (await client.get(f"/v1/needs/{gift.need['id']}", headers=gift.recipient)).json()
        return need["status"] == "open" and all(
            line["quantity_matched"] == 0 and line["quantity_in_transit"] == 0 and line["quantity_delivered"] == 0
            for line in need["lines"]
        )

    await eventually(returned)
    for lot in gift.offer["lots"]:

        async def lot_back(lot_id: str = lot["id"]) -> bool:
            body = (await client.get(f"/v1/lots/{lot_id}", headers=gift.coordinator)).json()
            return bool(body["quantity_reserved"] == 0 and body["quantity_shipped"] == 0)

        await eventually(lot_back)


async def test_short_receipt_is_received_with_problem(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth)
    sid = gift.shipment["id"]
    await advance(client, gift.carrier, sid, "picked_up", "delivered")
    s = await shipment(client, gift.recipient, sid)
    receipt = {
        "pin": s["handover_pin"],
        "lines": [
            {"item_code": RICE, "quantity_received": 90, "discrepancy_reason": "10袋破损"},
            {"item_code": WATER, "quantity_received": 240},
        ],
    }
    r = await receive(client, gift.recipient, sid, receipt)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "received_with_problem"
    lines = {line["item_code"]: line for line in r.json()["lines"]}
    assert (lines[RICE]["quantity_received"], lines[RICE]["quantity_returned"]) == (90, 10)
    assert lines[RICE]["discrepancy_reason"] == "10袋破损"
    assert (lines[WATER]["quantity_received"], lines[WATER]["quantity_returned"]) == (240, 0)

    async def rolled_up() -> bool:
        need = (await client.get(f"/v1/needs/{gift.need['id']}", headers=gift.recipient)).json()
        by_item = {line["item_code"]: line for line in need["lines"]}
        return bool(
            by_item[RICE]["quantity_delivered"] == 90
            and by_item[RICE]["quantity_matched"] == 90
            and by_item[WATER]["quantity_delivered"] == 240
        )

    await eventually(rolled_up)
    rice_lot = next(lot for lot in gift.offer["lots"] if lot["item_code"] == RICE)

    async def lot_settled() -> bool:
        body = (await client.get(f"/v1/lots/{rice_lot['id']}", headers=gift.coordinator)).json()
        return bool(body["quantity_delivered"] == 90 and body["quantity_reserved"] == 90)

    await eventually(lot_settled)


async def test_update_needs_if_match_and_sets_carrier_and_legs(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth)
    sid = gift.shipment["id"]
    url = f"/v1/shipments/{sid}"
    change = {
        "carrier": "顺丰速运",
        "legs": [
            {"origin": "粮油公司仓库", "destination": "嘉定分拨中心", "carrier": "顺丰速运"},
            {"origin": "嘉定分拨中心", "destination": "浦东临时安置点", "eta": "2030-01-02T08:00:00+08:00"},
        ],
        "note": "走高速",
    }
    first = await client.get(url, headers=gift.carrier)
    etag, version = first.headers["etag"], first.json()["version"]

    assert slug(assert_problem(await client.patch(url, headers=gift.carrier, json=change), 428)) == (
        "precondition-required"
    )
    stale = await client.patch(url, headers={**gift.carrier, "If-Match": f'"{version + 7}"'}, json=change)
    assert slug(assert_problem(stale, 412)) == "precondition-failed"
    same = await shipment(client, gift.carrier, sid)
    assert same["version"] == version and same["carrier"] is None and same["legs"] == []

    r = await client.patch(url, headers={**gift.carrier, "If-Match": etag}, json=change)
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == f'"{version + 1}"'
    updated = await shipment(client, gift.coordinator, sid)
    assert updated["version"] == version + 1
    assert updated["carrier"] == "顺丰速运" and updated["note"] == "走高速"
    assert [(leg["origin"], leg["destination"]) for leg in updated["legs"]] == [
        ("粮油公司仓库", "嘉定分拨中心"),
        ("嘉定分拨中心", "浦东临时安置点"),
    ]
    assert updated["legs"][0]["carrier"] == "顺丰速运"
    # The old ETag is stale now.
    again = await client.patch(url, headers={**gift.carrier, "If-Match": etag}, json={"carrier": "京东物流"})
    assert_problem(again, 412)
    # Legs may be named on status updates; a leg that does not exist is refused.
    on_leg = await set_status(client, gift.carrier, sid, "picked_up", leg=1, location="嘉定分拨中心")
    assert on_leg.status_code == 200, on_leg.text
    assert on_leg.json()["history"][-1]["leg"] == 1
    assert_problem(await set_status(client, gift.carrier, sid, "in_transit", leg=2), 422)
    # Only shippers change shipments.
    cur = await client.get(url, headers=gift.recipient)
    forbidden = await client.patch(url, headers={**gift.recipient, "If-Match": cur.headers["etag"]}, json=change)
    assert_problem(forbidden, 403)
    # A delivered shipment is no longer edited.
    await advance(client, gift.carrier, sid, "delivered")
    cur = await client.get(url, headers=gift.carrier)
    late = await client.patch(url, headers={**gift.carrier, "If-Match": cur.headers["etag"]}, json={"note": "x"})
    assert slug(assert_problem(late, 409)) == "illegal-transition"
    assert (await shipment(client, gift.carrier, sid))["note"] == "走高速"


async def test_manual_shipment_of_a_planned_proposal_is_409(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth)
    proposal_id = gift.proposals[0]["id"]
    for lines in ([{"proposal_id": proposal_id}], [{"proposal_id": proposal_id, "quantity": 1}]):
        r = await client.post("/v1/shipments", headers=gift.coordinator, json={"lines": lines})
        assert slug(assert_problem(r, 409)) == "proposal-not-shippable", r.text
    unknown = await client.post(
        "/v1/shipments", headers=gift.carrier, json={"lines": [{"proposal_id": str(uuid.uuid4())}]}
    )
    assert slug(assert_problem(unknown, 409)) == "proposal-not-shippable"
    twice = await client.post(
        "/v1/shipments", headers=gift.coordinator, json={"lines": [{"proposal_id": proposal_id}] * 2}
    )
    assert_problem(twice, 422)
    assert_problem(
        await client.post("/v1/shipments", headers=gift.recipient, json={"lines": [{"proposal_id": proposal_id}]}),
        403,
    )
    listed = (await client.get(f"/v1/shipments?need_id={gift.need['id']}", headers=gift.coordinator)).json()
    assert [s["id"] for s in listed["items"]] == [gift.shipment["id"]]
    assert len(listed["items"][0]["lines"]) == 2


async def test_a_planned_shipment_is_not_received_but_cancelled_and_gives_everything_back(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth)
    sid = gift.shipment["id"]
    before = await shipment(client, gift.recipient, sid)
    receipt = full_receipt(before, before["handover_pin"])
    assert slug(assert_problem(await receive(client, gift.recipient, sid, receipt), 409)) == "illegal-transition"
    unchanged(await shipment(client, gift.recipient, sid), before)
    missing = await receive(client, gift.recipient, str(uuid.uuid4()), receipt)
    assert slug(assert_problem(missing, 404)) == "shipment-not-found"
    lots = {lot["id"]: lot["quantity"] for lot in gift.offer["lots"]}

    async def need_lines() -> dict[str, dict[str, Any]]:
        need = (await client.get(f"/v1/needs/{gift.need['id']}", headers=gift.recipient)).json()
        return {line["item_code"]: line for line in need["lines"]}

    async def matched_in_full() -> bool:
        lines = await need_lines()
        return bool(lines[RICE]["quantity_matched"] == 100 and lines[WATER]["quantity_matched"] == 240)

    await eventually(matched_in_full)
    for lot_id, quantity in lots.items():
        body = (await client.get(f"/v1/lots/{lot_id}", headers=gift.coordinator)).json()
        assert body["quantity_reserved"] == quantity, body

    r = await set_status(client, gift.coordinator, sid, "cancelled", note="车辆故障")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert all(line["quantity_returned"] == line["quantity"] for line in r.json()["lines"])

    async def lots_released() -> bool:
        for lot_id in lots:
            body = (await client.get(f"/v1/lots/{lot_id}", headers=gift.coordinator)).json()
            if body["quantity_reserved"] != 0 or body["quantity_shipped"] != 0:
                return False
        return True

    async def need_reopened() -> bool:
        need = (await client.get(f"/v1/needs/{gift.need['id']}", headers=gift.recipient)).json()
        return need["status"] == "open" and all(line["quantity_matched"] == 0 for line in need["lines"])

    await eventually(lots_released)
    await eventually(need_reopened)
    cancelled = await shipment(client, gift.coordinator, sid)
    assert cancelled["status"] == "cancelled" and cancelled["history"][-1]["note"] == "车辆故障"
    assert_problem(await set_status(client, gift.coordinator, sid, "picked_up"), 409)
    assert slug(assert_problem(await receive(client, gift.recipient, sid, receipt), 409)) == "illegal-transition"
    # A stranger is refused before anything else.
    assert_problem(await receive(client, auth("frontline", org="org-elsewhere"), sid, receipt), 403)


async def test_feedback_follows_receipt_once_from_the_recipient(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth)
    sid = gift.shipment["id"]
    url = f"/v1/shipments/{sid}/feedback"
    feedback = {
        "rating": 5,
        "comment": "物资及时，谢谢",
        "beneficiaries_served": 280,
        "photo_urls": ["https://example.org/p/1.jpg"],
    }
    early = await client.post(url, headers=gift.recipient, json=feedback)
    assert slug(assert_problem(early, 409)) == "not-received-yet"
    await advance(client, gift.carrier, sid, "picked_up", "delivered")
    assert slug(assert_problem(await client.post(url, headers=gift.recipient, json=feedback), 409)) == (
        "not-received-yet"
    )
    s = await shipment(client, gift.recipient, sid)
    assert (await receive(client, gift.recipient, sid, full_receipt(s, s["handover_pin"]))).status_code == 200

    assert_problem(await client.post(url, headers=gift.recipient, json={**feedback, "rating": 6}), 422)
    assert_problem(await client.post(url, headers=gift.recipient, json={**feedback, "rating": 0}), 422)
    stranger = auth("frontline", org="org-elsewhere")
    assert_problem(await client.post(url, headers=stranger, json=feedback), 403)
    assert_problem(await client.post(url, headers=gift.carrier, json=feedback), 403)
    assert (await shipment(client, gift.recipient, sid))["feedback"] is None

    r = await client.post(url, headers=gift.recipient, json=feedback)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["rating"] == 5 and body["comment"] == "物资及时，谢谢" and body["beneficiaries_served"] == 280
    assert body["photo_urls"] == ["https://example.org/p/1.jpg"]
    second = await client.post(url, headers=gift.recipient, json={**feedback, "rating": 1})
    assert slug(assert_problem(second, 409)) == "feedback-exists"
    by_coordinator = await client.post(url, headers=gift.coordinator, json={**feedback, "rating": 2})
    assert slug(assert_problem(by_coordinator, 409)) == "feedback-exists"
    shown = (await shipment(client, gift.coordinator, sid))["feedback"]
    assert shown is not None and shown["rating"] == 5
    missing = await client.post(f"/v1/shipments/{uuid.uuid4()}/feedback", headers=gift.recipient, json=feedback)
    assert_problem(missing, 404)


async def test_manual_shipments_plan_what_is_left_of_accepted_proposals(
    client: httpx.AsyncClient, auth: TokenFactory, migrated: Settings, monkeypatch: pytest.MonkeyPatch, workers: None
) -> None:
    monkeypatch.setattr(migrated, "logistics_auto_shipments", False)
    gift = await accept_a_gift(client, auth)
    coordinator, recipient, site, need_id = gift.coordinator, gift.recipient, gift.site, gift.need["id"]
    proposals = {p["item_code"]: p for p in gift.proposals}
    rice, water = proposals[RICE]["id"], proposals[WATER]["id"]
    carrier = auth("logistics", org="org-carrier")
    first_body = {
        "lines": [{"proposal_id": rice, "quantity": 60}],
        "origin": {"label": "粮油公司仓库", "region_code": "310114"},
        "carrier": "顺丰速运",
        "legs": [{"origin": "粮油公司仓库", "destination": "浦东临时安置点"}],
        "note": "第一车",
    }

    async def planned_by_hand() -> httpx.Response | None:
        r = await client.post("/v1/shipments", headers=carrier, json=first_body)
        return None if r.status_code == 409 else r  # the accepted proposal has not reached logistics yet

    first = await eventually(planned_by_hand)
    assert first.status_code == 201, first.text
    one = first.json()
    assert first.headers["location"] == f"/v1/shipments/{one['id']}"
    assert one["status"] == "planned" and one["auto"] is False and one["carrier"] == "顺丰速运"
    assert one["origin"] == {"label": "粮油公司仓库", "region_code": "310114", "lat": None, "lon": None}
    assert one["destination_site_id"] == site["id"] and one["region_code"] == "310115"
    assert [(line["item_code"], line["quantity"], line["proposal_id"]) for line in one["lines"]] == [(RICE, 60, rice)]
    assert one["handover_pin"] is None  # the carrier does not see it
    assert (await shipment(client, recipient, one["id"]))["handover_pin"]

    too_much = await client.post(
        "/v1/shipments", headers=carrier, json={"lines": [{"proposal_id": rice, "quantity": 41}]}
    )
    body = assert_problem(too_much, 409)
    assert slug(body) == "proposal-not-shippable" and "40 of 100" in body["detail"], body

    async def planned_rest() -> httpx.Response | None:
        r = await client.post(
            "/v1/shipments", headers=coordinator, json={"lines": [{"proposal_id": rice}, {"proposal_id": water}]}
        )
        known = not (r.status_code == 409 and "known to logistics" in r.json()["detail"])
        return r if known else None  # the water proposal may still be on its way

    rest = await eventually(planned_rest)
    assert rest.status_code == 201, rest.text
    assert sorted((line["item_code"], line["quantity"]) for line in rest.json()["lines"]) == [(RICE, 40), (WATER, 240)]
    assert rest.json()["origin"]["lat"] == 31.3  # the lot's location by default
    for lines in ([{"proposal_id": rice}], [{"proposal_id": water, "quantity": 1}]):
        assert slug(
            assert_problem(await client.post("/v1/shipments", headers=carrier, json={"lines": lines}), 409)
        ) == ("proposal-not-shippable")
    listed = (await client.get(f"/v1/shipments?need_id={need_id}", headers=coordinator)).json()["items"]
    assert sorted(s["id"] for s in listed) == sorted([one["id"], rest.json()["id"]])


async def test_the_recipient_may_report_that_nothing_arrived(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth)
    sid = gift.shipment["id"]
    assert_problem(await set_status(client, gift.recipient, sid, "not_received"), 409)  # not on its way yet
    await advance(client, gift.carrier, sid, "picked_up", "in_transit")
    r = await set_status(client, gift.recipient, sid, "not_received", note="三天未到")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "not_received"
    assert all(line["quantity_returned"] == line["quantity"] for line in r.json()["lines"])
    assert (await shipment(client, gift.coordinator, sid))["history"][-1]["note"] == "三天未到"
    assert_problem(await set_status(client, gift.carrier, sid, "delivered"), 409)

    async def back() -> bool:
        need = (await client.get(f"/v1/needs/{gift.need['id']}", headers=gift.recipient)).json()
        lots = [
            (await client.get(f"/v1/lots/{lot['id']}", headers=gift.coordinator)).json() for lot in gift.offer["lots"]
        ]
        return (
            need["status"] == "open"
            and all(line["quantity_matched"] == 0 and line["quantity_in_transit"] == 0 for line in need["lines"])
            and all(lot["quantity_reserved"] == 0 and lot["quantity_shipped"] == 0 for lot in lots)
        )

    await eventually(back)
