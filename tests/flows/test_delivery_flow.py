"""After the match, across every service over HTTP and the streams: need → offer → allocation → accept →
shipment → status updates → receipt with the PIN (one line short) → feedback. The need ends partly
fulfilled with the short quantity open (and matched) again, the lot's shipped quantity is corrected, the
donor's tracking page shows every step and the impact report counts it."""

from __future__ import annotations

from typing import Any

import httpx

from shared.catalog import get_catalog
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE, WATER
from tests.helpers.funds import record_payment
from tests.helpers.needs import create_need, create_site
from tests.helpers.scenario import ship_a_gift
from tests.helpers.supply import create_donor, create_pledge
from tests.helpers.waiting import eventually


async def test_a_gift_from_offer_to_feedback(client: httpx.AsyncClient, auth: TokenFactory, workers: None) -> None:
    gift = await ship_a_gift(client, auth, lines=((RICE, 100), (WATER, 240)))
    shipment = gift.shipment
    sid = shipment["id"]
    assert shipment["status"] == "planned" and shipment["auto"] is True
    assert {(line["item_code"], line["quantity"]) for line in shipment["lines"]} == {(RICE, 100), (WATER, 240)}
    assert shipment["destination_site_id"] == gift.site["id"] and shipment["region_code"] == "310115"
    assert shipment["handover_pin"] and len(shipment["handover_pin"]) == 6  # the recipient listed it
    pin = shipment["handover_pin"]

    # Matching's acceptance shows on the need before anything moves.
    async def need_is(status: str) -> dict[str, Any] | None:
        body = (await client.get(f"/v1/needs/{gift.need['id']}", headers=gift.recipient)).json()
        return body if body["status"] == status else None

    await eventually(lambda: need_is("matched"))

    # The carrier moves it through a regional sub-center.
    await client.patch(
        f"/v1/shipments/{sid}",
        headers={**gift.carrier, "If-Match": f'"{shipment["version"]}"'},
        json={
            "carrier": "顺丰速运",
            "legs": [
                {"origin": "宝山仓库", "destination": "浦东分拨中心", "carrier": "顺丰速运"},
                {"origin": "浦东分拨中心", "destination": "浦东临时安置点"},
            ],
        },
    )
    for status, location, leg in (
        ("picked_up", "宝山仓库", 0),
        ("in_transit", "浦东分拨中心", 0),
        ("in_transit", "张江镇", 1),
        ("delivered", "浦东临时安置点", 1),
    ):
        r = await client.post(
            f"/v1/shipments/{sid}/status",
            headers=gift.carrier,
            json={"status": status, "location": location, "note": f"{status} at {location}", "leg": leg},
        )
        assert r.status_code == 200, r.text
        if status == "picked_up":
            in_transit = await eventually(lambda: need_is("in_transit"))
            assert {line["quantity_in_transit"] for line in in_transit["lines"]} == {100, 240}
            lot = await eventually(lambda: _lot_with(client, gift, RICE, "quantity_shipped", 100))
            assert lot["quantity_reserved"] == 100

    # The site confirms with the PIN: rice complete, water 40 short.
    receipt = await client.post(
        f"/v1/shipments/{sid}/receipt",
        headers=gift.recipient,
        json={
            "pin": pin,
            "lines": [
                {"item_code": RICE, "quantity_received": 100},
                {"item_code": WATER, "quantity_received": 200, "discrepancy_reason": "两箱破损 two cases crushed"},
            ],
        },
    )
    assert receipt.status_code == 200, receipt.text
    received = receipt.json()
    assert received["status"] == "received_with_problem"
    water_line = next(line for line in received["lines"] if line["item_code"] == WATER)
    assert water_line["quantity_received"] == 200 and water_line["quantity_returned"] == 40
    assert [h["status"] for h in received["history"]] == [
        "planned",
        "picked_up",
        "in_transit",
        "in_transit",
        "delivered",
        "received_with_problem",
    ]
    full = [{"item_code": RICE, "quantity_received": 100}, {"item_code": WATER, "quantity_received": 240}]
    again = await client.post(f"/v1/shipments/{sid}/receipt", headers=gift.recipient, json={"pin": pin, "lines": full})
    assert again.status_code == 409  # settled: a second receipt changes nothing

    feedback = await client.post(
        f"/v1/shipments/{sid}/feedback",
        headers=gift.recipient,
        json={
            "rating": 4,
            "comment": "大米很及时，水少了两箱",
            "beneficiaries_served": 280,
            "photo_urls": ["https://photos.example.org/shelter/1.jpg"],
        },
    )
    assert feedback.status_code == 201, feedback.text

    # The need: rice fulfilled, water 200 of 240 delivered; the 40 are open again — status open.
    async def settled() -> dict[str, Any] | None:
        body = (await client.get(f"/v1/needs/{gift.need['id']}", headers=gift.recipient)).json()
        lines = {line["item_code"]: line for line in body["lines"]}
        return body if lines[WATER]["quantity_delivered"] == 200 else None

    need = await eventually(settled)
    lines = {line["item_code"]: line for line in need["lines"]}
    assert lines[RICE]["quantity_delivered"] == 100 and lines[RICE]["quantity_matched"] == 100
    assert lines[WATER]["quantity_matched"] == 200 and lines[WATER]["quantity_in_transit"] == 0
    assert need["status"] == "open"

    # The lot: shipped corrected to what arrived, the 40 back in stock...
    lot = await eventually(lambda: _lot_with(client, gift, WATER, "quantity_delivered", 200))
    assert lot["quantity_shipped"] == 200 and lot["quantity_reserved"] == 200 and lot["quantity_available"] == 40

    # ...and matching sees the open 40 again and proposes them.
    async def reproposed() -> list[dict[str, Any]] | None:
        r = await client.get(f"/v1/proposals?need_id={gift.need['id']}&status=proposed", headers=gift.coordinator)
        items = r.json()["items"]
        return items or None

    [proposal] = await eventually(reproposed)
    assert proposal["quantity"] == 40 and proposal["lot_id"] == lot["id"]

    # The donor's public tracking page shows every step, without personal data.
    track = await client.get(f"/v1/track/{gift.tracking_code}")
    assert track.status_code == 200, track.text
    body = track.json()
    kinds = [step["kind"] for step in body["timeline"]]
    for kind in ("offered", "allocated", "planned", "picked_up", "in_transit", "delivered", "received_with_problem"):
        assert kind in kinds, kinds
    assert kinds[-1] == "feedback" and kinds.index("offered") < kinds.index("allocated") < kinds.index("planned")
    allocated = [s for s in body["timeline"] if s["kind"] == "allocated"]
    assert {s["site"]["name"] for s in allocated} == {"浦东临时安置点"}
    assert allocated[0]["site"] == {"name": "浦东临时安置点", "kind": "shelter", "region_code": "310115"}
    fb = body["timeline"][-1]["detail"]
    assert fb["rating"] == 4 and fb["beneficiaries_served"] == 280
    assert body["summary"] == {
        "quantity_offered": 340,
        "quantity_allocated": 340,
        "quantity_shipped": 340,
        "quantity_received": 300,
        "sites": 1,
        "amount_pledged": None,
        "amount_spent": None,
    }
    for private in ("张三", "13800000000", "121.54", "31.22"):
        assert private not in track.text
    page = await client.get(f"/v1/track/{gift.tracking_code}", headers={"Accept": "text/html"})
    assert page.headers["content-type"].startswith("text/html")
    assert "浦东临时安置点" in page.text and "受助方反馈" in page.text

    # The impact report counts it, by county under Shanghai.
    catalog = get_catalog()
    value = 100 * catalog.get(RICE).unit_value_fen + 200 * catalog.get(WATER).unit_value_fen  # type: ignore[union-attr]

    async def reported() -> dict[str, Any] | None:
        r = await client.get("/v1/reports/impact?region_code=31&level=county", headers=gift.coordinator)
        body = r.json()
        return body if body["totals"]["beneficiaries"] == 280 else None

    report = await eventually(reported)
    [pudong] = report["regions"]
    assert pudong["region_code"] == "310115"
    assert pudong["goods_value_delivered"] == value and pudong["sites_supported"] == 1
    assert pudong["needs"] == 1 and pudong["quantity_needed"] == 340 and pudong["quantity_delivered"] == 300
    assert pudong["fill_rate"] == round(300 / 340, 4)
    assert pudong["time_to_match_hours_p50"] is not None and pudong["time_to_delivery_hours_p50"] is not None
    rice, water = catalog.get(RICE), catalog.get(WATER)
    assert rice is not None and water is not None
    assert report["goods_value_offered"] == 100 * rice.unit_value_fen + 240 * water.unit_value_fen


async def _lot_with(
    client: httpx.AsyncClient, gift: Any, item_code: str, field: str, value: int
) -> dict[str, Any] | None:
    lot = next(lot for lot in gift.offer["lots"] if lot["item_code"] == item_code)
    body = (await client.get(f"/v1/lots/{lot['id']}", headers=gift.coordinator)).json()
    return dict(body) if body[field] == value else None


async def test_a_cash_pledge_buys_goods_that_reach_a_site(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    """Two cash pledges fund one purchase; the goods become a lot, are matched, shipped and received, and the
    first donor's tracking page follows the money to the site."""
    coordinator, donor = auth("coordinator"), auth("donor", org="org-fund")
    recipient, carrier = auth("frontline", org="org-clinic"), auth("logistics", org="org-carrier")
    fund = await create_donor(client, donor, name="某慈善基金会", kind="foundation")
    pledges = [await create_pledge(client, donor, fund["id"], amount) for amount in (60_000, 30_000)]
    for pledge in pledges:  # outside any fund, a pledge spends only money received
        await record_payment(client, auth, pledge["id"], pledge["amount"], wait=False)
    site = await create_site(
        client, recipient, name="崇明区社区卫生服务中心", kind="hospital", region_code="310151", lat=31.62, lon=121.4
    )
    need = await create_need(
        client,
        recipient,
        site["id"],
        {"item_code": "hygiene.body.soap", "quantity": 300},
        title="消毒液",
        urgency="critical",
    )
    body = {
        "supplier": {"name": "上海某日化厂", "region_code": "310113", "lat": 31.4, "lon": 121.49},
        "lines": [{"item_code": "hygiene.body.soap", "quantity": 300, "unit_price": 250}],
        "funding": [{"offer_id": pledges[0]["id"], "amount": 50_000}, {"offer_id": pledges[1]["id"], "amount": 25_000}],
        "region_code": "31",
        "need_id": need["id"],
    }

    async def drafted() -> httpx.Response | None:
        r = await client.post("/v1/procurements", headers=coordinator, json=body)
        return r if r.status_code == 201 else None  # 409 until logistics has heard of both pledges and payments

    procurement = (await eventually(drafted)).json()
    assert procurement["status"] == "draft" and procurement["total"] == 75_000
    ordered = await client.post(f"/v1/procurements/{procurement['id']}/order", headers=coordinator)
    assert ordered.status_code == 200 and ordered.json()["status"] == "ordered", ordered.text
    received = await client.post(f"/v1/procurements/{procurement['id']}/receive", headers=coordinator)
    assert received.status_code == 200, received.text
    goods_offer_id = received.json()["goods_offer_id"]
    goods = (await client.get(f"/v1/offers/{goods_offer_id}", headers=coordinator)).json()
    assert goods["donor_id"] == fund["id"] and goods["procurement_id"] == procurement["id"]
    assert goods["lots"][0]["quantity"] == 300 and goods["restrictions"]["region_codes"] == ["31"]

    async def proposed() -> list[dict[str, Any]] | None:
        r = await client.get(f"/v1/proposals?need_id={need['id']}&status=proposed", headers=coordinator)
        return r.json()["items"] or None

    [proposal] = await eventually(proposed)
    assert proposal["offer_id"] == goods_offer_id and proposal["quantity"] == 300
    assert (await client.post(f"/v1/proposals/{proposal['id']}/accept", headers=coordinator)).status_code == 200

    async def planned() -> dict[str, Any] | None:
        items = (await client.get(f"/v1/shipments?need_id={need['id']}", headers=recipient)).json()["items"]
        return items[0] if items else None

    shipment = await eventually(planned)
    assert shipment["origin"]["region_code"] == "310113"
    for status in ("picked_up", "delivered"):
        r = await client.post(f"/v1/shipments/{shipment['id']}/status", headers=carrier, json={"status": status})
        assert r.status_code == 200, r.text
    r = await client.post(
        f"/v1/shipments/{shipment['id']}/receipt",
        headers=recipient,
        json={
            "pin": shipment["handover_pin"],
            "lines": [{"item_code": "hygiene.body.soap", "quantity_received": 300}],
        },
    )
    assert r.status_code == 200 and r.json()["status"] == "received", r.text
    fulfilled = await eventually(lambda: _need_status(client, need["id"], recipient, "fulfilled"))
    assert fulfilled["lines"][0]["quantity_delivered"] == 300

    track = (await client.get(f"/v1/track/{pledges[0]['tracking_code']}")).json()
    kinds = [s["kind"] for s in track["timeline"]]
    assert kinds[:3] == ["offered", "procurement_ordered", "procurement_received"], kinds
    assert {"allocated", "picked_up", "delivered", "received"} <= set(kinds)
    ordered_step = track["timeline"][1]
    assert ordered_step["amount"] == 50_000 and ordered_step["detail"]["supplier"] == "上海某日化厂"
    assert track["summary"]["amount_pledged"] == 60_000 and track["summary"]["amount_spent"] == 50_000
    assert track["summary"]["quantity_received"] == 300 and track["summary"]["sites"] == 1

    # Money in and out, once each; the purchased goods are not counted as an in-kind gift: they go into stock
    # against the purchase (goods_received), whose money moved from committed to spent on receipt.
    ledger = (await client.get("/v1/ledger?limit=100", headers=coordinator)).json()["items"]
    booked = sorted((e["kind"], e["amount"]) for e in ledger)
    value = 300 * get_catalog().get("hygiene.body.soap").unit_value_fen  # type: ignore[union-attr]
    money = [("pledged", 60_000), ("pledged", 30_000), ("payment_received", 60_000), ("payment_received", 30_000)]
    money += [("spent", 50_000), ("spent", 25_000)]
    goods = [("in_kind_delivered", value), ("goods_received", 50_000), ("goods_received", 25_000)]
    assert booked == sorted([*money, *goods, ("goods_received", value)])
    for transaction in ledger:  # each balances, in money and in goods
        assert sum(p["amount"] for p in transaction["entries"]) == 0, transaction
        assert sum(p["quantity"] or 0 for p in transaction["entries"]) == 0, transaction

    async def reported() -> dict[str, Any] | None:
        r = await client.get("/v1/reports/impact?region_code=31&level=city", headers=coordinator)
        body = r.json()
        return dict(body) if body["totals"]["fill_rate"] == 1.0 else None  # logistics hears of it a moment later

    report = await eventually(reported)
    assert report["money_raised"] == 90_000 and report["goods_value_offered"] == 0
    regions = {r["region_code"]: r for r in report["regions"]}
    assert regions["31"]["money_spent"] == 75_000  # the order was for "31": all of Shanghai
    assert regions["3101"]["goods_value_delivered"] == value and regions["3101"]["sites_supported"] == 1
    assert report["totals"]["money_spent"] == 75_000 and report["totals"]["fill_rate"] == 1.0


async def _need_status(
    client: httpx.AsyncClient, need_id: str, headers: dict[str, str], status: str
) -> dict[str, Any] | None:
    body = (await client.get(f"/v1/needs/{need_id}", headers=headers)).json()
    return dict(body) if body["status"] == status else None
