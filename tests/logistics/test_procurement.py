"""Procurement against cash pledges: a pledge reaches logistics through the streams, drafts must be funded
exactly and from money that is there, orders spend it once (never beyond the pledge, even concurrently),
cancelling refunds it, and received goods become an in-kind offer in supply."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE, WATER
from tests.helpers.funds import record_payment
from tests.helpers.logistics import known_pledge, procurement_body
from tests.helpers.problems import assert_problem
from tests.helpers.supply import fund_pledge
from tests.helpers.waiting import eventually


def slug(body: dict[str, Any]) -> str:
    return str(body["type"]).rsplit(":", 1)[-1]


async def create(client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post("/v1/procurements", headers=headers, json=body)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v1/procurements/{r.json()['id']}"
    created: dict[str, Any] = r.json()
    return created


async def act(client: httpx.AsyncClient, headers: dict[str, str], procurement_id: str, verb: str) -> httpx.Response:
    return await client.post(f"/v1/procurements/{procurement_id}/{verb}", headers=headers)


async def ledger(client: httpx.AsyncClient, auth: TokenFactory, kind: str, **filters: str) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in {"kind": kind, **filters}.items())
    r = await client.get(f"/v1/ledger?{query}", headers=auth("coordinator"))
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def procurements(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = await client.get("/v1/procurements", headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_a_pledge_reaches_logistics_and_funds_a_draft(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    coordinator = auth("coordinator")
    offer = await fund_pledge(client, auth)
    await record_payment(client, auth, offer["id"], 100_000, wait=False)  # it spends only money received
    body = procurement_body(offer["id"], note="为浦东安置点采购大米")

    async def drafted() -> httpx.Response | None:
        r = await client.post("/v1/procurements", headers=coordinator, json=body)
        if r.status_code == 409:  # not heard of yet, or its payment not booked yet
            assert slug(assert_problem(r, 409)) in ("pledge-unavailable", "pledge-insufficient")
            return None
        return r

    r = await eventually(drafted)
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["status"] == "draft" and p["org"] == "org-hub" and p["currency"] == "CNY"
    assert p["total"] == 50_000 and p["region_code"] == "3101"
    assert p["lines"] == [{"item_code": RICE, "quantity": 10, "unit_price": 5_000, "amount": 50_000}]
    assert p["funding"] == [{"offer_id": offer["id"], "fund_id": None, "amount": 50_000, "overhead": 0}]
    assert p["supplier"]["name"] == "浦东粮油批发市场"
    assert p["goods_offer_id"] is None and p["ordered_at"] is None
    assert r.headers["etag"] == f'"{p["version"]}"'
    got = await client.get(f"/v1/procurements/{p['id']}", headers=coordinator)
    assert got.status_code == 200 and got.json() == p
    assert [x["id"] for x in await procurements(client, coordinator)] == [p["id"]]
    by_pledge = await client.get(f"/v1/procurements?offer_id={offer['id']}", headers=coordinator)
    assert [x["id"] for x in by_pledge.json()["items"]] == [p["id"]]
    # A draft spends nothing yet.
    assert await ledger(client, auth, "spent") == []
    pledged = await ledger(client, auth, "pledged", offer_id=offer["id"])
    assert [e["amount"] for e in pledged] == [100_000]
    assert_problem(await client.get(f"/v1/procurements/{uuid.uuid4()}", headers=coordinator), 404)


async def test_funding_must_equal_the_total(client: httpx.AsyncClient, auth: TokenFactory, workers: None) -> None:
    coordinator = auth("coordinator")
    offer = await known_pledge(client, auth)
    for amount in (49_999, 50_001):
        body = procurement_body(offer["id"])
        body["funding"] = [{"offer_id": offer["id"], "amount": amount}]
        assert_problem(await client.post("/v1/procurements", headers=coordinator, json=body), 422, context=str(amount))
    twice = procurement_body(offer["id"])
    twice["funding"] = [{"offer_id": offer["id"], "amount": 25_000}] * 2
    assert_problem(await client.post("/v1/procurements", headers=coordinator, json=twice), 422)
    unknown_item = procurement_body(offer["id"])
    unknown_item["lines"][0]["item_code"] = "food.unknown.thing"
    assert slug(assert_problem(await client.post("/v1/procurements", headers=coordinator, json=unknown_item), 422)) == (
        "unknown-item"
    )
    assert await procurements(client, coordinator) == []


async def test_a_pledge_that_is_not_there_or_not_cash_funds_nothing(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    coordinator = auth("coordinator")
    unknown = await client.post("/v1/procurements", headers=coordinator, json=procurement_body(str(uuid.uuid4())))
    assert slug(assert_problem(unknown, 409)) == "pledge-unavailable"
    donor = auth("donor", org="org-grain")
    row = (await client.post("/v1/donors", headers=donor, json={"name": "粮油公司", "kind": "company"})).json()
    goods = await client.post(
        "/v1/offers",
        headers=donor,
        json={"donor_id": row["id"], "kind": "in_kind", "lots": [{"item_code": RICE, "quantity": 5}]},
    )
    assert goods.status_code == 201, goods.text

    async def refused_as_goods() -> bool:
        r = await client.post("/v1/procurements", headers=coordinator, json=procurement_body(goods.json()["id"]))
        body = assert_problem(r, 409)
        assert slug(body) == "pledge-unavailable"
        return "not a cash pledge" in body["detail"]

    await eventually(refused_as_goods)
    assert await procurements(client, coordinator) == []


async def test_overspending_a_pledge_at_create_is_409_and_writes_nothing(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    coordinator = auth("coordinator")
    offer = await known_pledge(client, auth)
    r = await client.post(
        "/v1/procurements", headers=coordinator, json=procurement_body(offer["id"], quantity=1, unit_price=100_001)
    )
    body = assert_problem(r, 409)
    assert slug(body) == "pledge-insufficient" and body["available"] == 100_000, body
    assert await procurements(client, coordinator) == []
    assert await ledger(client, auth, "spent") == []
    # All of it is fine.
    exact = await create(client, coordinator, procurement_body(offer["id"], quantity=1, unit_price=100_000))
    assert exact["total"] == 100_000 and exact["status"] == "draft"


async def test_two_orders_never_spend_more_than_the_pledge(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    coordinator = auth("coordinator")
    offer = await known_pledge(client, auth)
    first = await create(client, coordinator, procurement_body(offer["id"], quantity=12))  # 60 000
    second = await create(client, coordinator, procurement_body(offer["id"], quantity=12))  # 60 000
    ordered = await act(client, coordinator, first["id"], "order")
    assert ordered.status_code == 200, ordered.text
    assert ordered.json()["status"] == "ordered" and ordered.json()["ordered_at"]
    refused = await act(client, coordinator, second["id"], "order")
    body = assert_problem(refused, 409)
    assert slug(body) == "pledge-insufficient" and body["available"] == 40_000, body
    still = (await client.get(f"/v1/procurements/{second['id']}", headers=coordinator)).json()
    assert still["status"] == "draft" and still["version"] == second["version"]
    spent = await ledger(client, auth, "spent")
    assert [(e["procurement_id"], e["offer_id"], e["amount"]) for e in spent] == [(first["id"], offer["id"], 60_000)]
    # Ordering twice is refused too, and spends nothing more.
    assert slug(assert_problem(await act(client, coordinator, first["id"], "order"), 409)) == "procurement-state"
    assert len(await ledger(client, auth, "spent")) == 1
    # What is left of the pledge still funds a new draft; more than that does not.
    assert (
        await client.post("/v1/procurements", headers=coordinator, json=procurement_body(offer["id"], quantity=8))
    ).status_code == 201
    assert_problem(
        await client.post("/v1/procurements", headers=coordinator, json=procurement_body(offer["id"], quantity=9)), 409
    )


async def test_concurrent_orders_spend_the_pledge_at_most_once(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    coordinator = auth("coordinator")
    offer = await known_pledge(client, auth)
    drafts = [
        await create(client, coordinator, procurement_body(offer["id"], quantity=3)) for _ in range(5)
    ]  # 15 000 each
    answers = await asyncio.gather(*(act(client, coordinator, d["id"], "order") for d in drafts))
    assert sorted(r.status_code for r in answers) == [200] * 5  # 75 000 of 100 000
    more = [
        await create(client, coordinator, procurement_body(offer["id"], quantity=2)) for _ in range(4)
    ]  # 10 000 each
    answers = await asyncio.gather(*(act(client, coordinator, d["id"], "order") for d in more))
    assert sorted(r.status_code for r in answers) == [200, 200, 409, 409], [r.text for r in answers]
    spent = await ledger(client, auth, "spent", offer_id=offer["id"])
    assert sum(e["amount"] for e in spent) == 95_000 and len(spent) == 7


async def test_cancelling_an_order_refunds_the_pledge(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    coordinator = auth("coordinator")
    offer = await known_pledge(client, auth)
    first = await create(client, coordinator, procurement_body(offer["id"], quantity=12))  # 60 000
    second = await create(client, coordinator, procurement_body(offer["id"], quantity=12))
    assert (await act(client, coordinator, first["id"], "order")).status_code == 200
    assert_problem(await act(client, coordinator, second["id"], "order"), 409)

    cancelled = await client.post(
        f"/v1/procurements/{first['id']}/cancel", headers=coordinator, json={"reason": "供应商缺货"}
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["cancelled_at"]
    assert "供应商缺货" in cancelled.json()["note"]
    refunded = await ledger(client, auth, "refunded")
    assert [(e["procurement_id"], e["offer_id"], e["amount"]) for e in refunded] == [(first["id"], offer["id"], 60_000)]
    # The money is there again.
    again = await act(client, coordinator, second["id"], "order")
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "ordered"
    assert sorted(e["procurement_id"] for e in await ledger(client, auth, "spent")) == sorted(
        [first["id"], second["id"]]
    )
    # A cancelled order stays cancelled and refunds once.
    assert slug(assert_problem(await act(client, coordinator, first["id"], "cancel"), 409)) == "procurement-state"
    assert slug(assert_problem(await act(client, coordinator, first["id"], "order"), 409)) == "procurement-state"
    assert len(await ledger(client, auth, "refunded")) == 1
    # A draft cancels without touching the ledger.
    draft = await create(client, coordinator, procurement_body(offer["id"], quantity=1))
    assert (await act(client, coordinator, draft["id"], "cancel")).json()["status"] == "cancelled"
    assert len(await ledger(client, auth, "refunded")) == 1


async def test_received_goods_become_an_in_kind_offer(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    coordinator = auth("coordinator")
    offer = await known_pledge(client, auth)
    body = procurement_body(offer["id"])
    body["lines"].append({"item_code": WATER, "quantity": 20, "unit_price": 2_500})
    body["funding"][0]["amount"] = 100_000
    p = await create(client, coordinator, body)
    assert p["total"] == 100_000
    assert slug(assert_problem(await act(client, coordinator, p["id"], "receive"), 409)) == "procurement-state"
    assert (await client.get(f"/v1/procurements/{p['id']}", headers=coordinator)).json()["status"] == "draft"
    assert (await act(client, coordinator, p["id"], "order")).status_code == 200

    r = await act(client, coordinator, p["id"], "receive")
    assert r.status_code == 200, r.text
    received = r.json()
    assert received["status"] == "received" and received["received_at"] and received["goods_offer_id"]
    goods = await client.get(f"/v1/offers/{received['goods_offer_id']}", headers=coordinator)
    assert goods.status_code == 200, goods.text
    g = goods.json()
    assert g["kind"] == "in_kind" and g["procurement_id"] == p["id"]
    assert g["donor_id"] == offer["donor_id"]
    assert sorted((lot["item_code"], lot["quantity"]) for lot in g["lots"]) == [(RICE, 10), (WATER, 20)]
    assert all(lot["region_code"] == "310115" and lot["lat"] == 31.2 for lot in g["lots"])
    assert g["restrictions"]["region_codes"] == ["3101"]
    # Receiving twice neither registers the goods again nor changes the order.
    assert slug(assert_problem(await act(client, coordinator, p["id"], "receive"), 409)) == "procurement-state"
    assert slug(assert_problem(await act(client, coordinator, p["id"], "cancel"), 409)) == "procurement-state"
    after = (await client.get(f"/v1/procurements/{p['id']}", headers=coordinator)).json()
    assert after["goods_offer_id"] == received["goods_offer_id"] and after["version"] == received["version"]
    # The bought goods are money spent, not a new in-kind gift.
    await asyncio.sleep(0.5)
    assert await ledger(client, auth, "in_kind_offered") == []
    assert [e["amount"] for e in await ledger(client, auth, "spent")] == [100_000]


async def test_only_coordinators_and_the_procurement_group_procure(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    offer = await known_pledge(client, auth)
    body = procurement_body(offer["id"])
    for who, headers in {
        "donor": auth("donor", org="org-fund"),
        "frontline": auth("frontline", org="org-shelter"),
        "carrier": auth("logistics", org="org-carrier"),
        "another working group": auth("working_group", org="org-p", group="medical"),
    }.items():
        assert_problem(await client.post("/v1/procurements", headers=headers, json=body), 403, context=who)
        assert_problem(await client.get("/v1/procurements", headers=headers), 403, context=who)
    assert await procurements(client, auth("coordinator")) == []
    buyer = auth("working_group", org="org-p", group="procurement")
    p = await create(client, buyer, body)
    assert p["org"] == "org-p" and p["status"] == "draft"
    donor = auth("donor", org="org-fund")
    for verb in ("order", "receive", "cancel"):
        assert_problem(await act(client, donor, p["id"], verb), 403, context=verb)
    assert_problem(await client.get(f"/v1/procurements/{p['id']}", headers=donor), 403)
    ordered = await act(client, buyer, p["id"], "order")
    assert ordered.status_code == 200, ordered.text
    assert [x["id"] for x in await procurements(client, buyer)] == [p["id"]]
    assert_problem(await client.get("/v1/ledger", headers=buyer), 403)


async def test_an_order_spends_all_its_pledges_or_none(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    coordinator = auth("coordinator")
    a = await known_pledge(client, auth, 100_000)
    b = await known_pledge(client, auth, 100_000)
    both = procurement_body(a["id"], quantity=14)  # 70 000: 10 000 from a, 60 000 from b
    both["funding"] = [{"offer_id": a["id"], "amount": 10_000}, {"offer_id": b["id"], "amount": 60_000}]
    x = await create(client, coordinator, both)
    y = await create(client, coordinator, procurement_body(b["id"], quantity=12))  # 60 000 from b
    assert (await act(client, coordinator, y["id"], "order")).status_code == 200
    body = assert_problem(await act(client, coordinator, x["id"], "order"), 409)
    assert slug(body) == "pledge-insufficient" and body["offer_id"] == b["id"] and body["available"] == 40_000
    # Nothing was taken from a either.
    assert [e["procurement_id"] for e in await ledger(client, auth, "spent")] == [y["id"]]
    whole_a = await create(client, coordinator, procurement_body(a["id"], quantity=20))  # 100 000
    assert (await act(client, coordinator, whole_a["id"], "order")).status_code == 200
    assert (await client.get(f"/v1/procurements/{x['id']}", headers=coordinator)).json()["status"] == "draft"


# --- a pledge outside any fund spends only money received -----------------------------------------------------


async def test_a_pledge_outside_any_fund_spends_only_money_received(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    coordinator = auth("coordinator")
    offer = await known_pledge(client, auth, 100_000, paid=0)
    refused = await client.post("/v1/procurements", headers=coordinator, json=procurement_body(offer["id"]))
    body = assert_problem(refused, 409)
    assert slug(body) == "pledge-insufficient" and body["offer_id"] == offer["id"] and body["available"] == 0, body
    assert f"Pledge {offer['id']} holds 0 CNY received and unspent; 50000 were asked for" in body["detail"]
    assert body["errors"] == [{"loc": ["body", "funding", 0, "amount"], "msg": "at most 0"}]
    assert await procurements(client, coordinator) == []

    await record_payment(client, auth, offer["id"], 30_000)
    above = await client.post("/v1/procurements", headers=coordinator, json=procurement_body(offer["id"], quantity=7))
    body = assert_problem(above, 409)
    assert slug(body) == "pledge-insufficient" and body["available"] == 30_000, body
    assert "30000 CNY received and unspent; 35000 were asked for" in body["detail"]
    # Up to the payment it pays; two drafts may each ask for it, but only one order takes it.
    first = await create(client, coordinator, procurement_body(offer["id"], quantity=6))  # 30 000
    second = await create(client, coordinator, procurement_body(offer["id"], quantity=6))
    assert (await act(client, coordinator, first["id"], "order")).status_code == 200
    body = assert_problem(await act(client, coordinator, second["id"], "order"), 409)
    assert slug(body) == "pledge-insufficient" and body["available"] == 0 and "received" in body["detail"], body
    assert [e["amount"] for e in await ledger(client, auth, "spent", offer_id=offer["id"])] == [30_000]
    # More money arrives: the waiting draft is ordered now.
    await record_payment(client, auth, offer["id"], 30_000)
    again = await act(client, coordinator, second["id"], "order")
    assert again.status_code == 200, again.text
    assert sorted(e["amount"] for e in await ledger(client, auth, "spent", offer_id=offer["id"])) == [30_000, 30_000]


async def test_concurrent_orders_spend_no_more_than_a_pledge_received(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    coordinator = auth("coordinator")
    offer = await known_pledge(client, auth, 100_000, paid=30_000)
    drafts = [await create(client, coordinator, procurement_body(offer["id"], quantity=2)) for _ in range(5)]
    answers = await asyncio.gather(*(act(client, coordinator, d["id"], "order") for d in drafts))
    assert sorted(r.status_code for r in answers) == [200, 200, 200, 409, 409], [r.text for r in answers]
    spent = await ledger(client, auth, "spent", offer_id=offer["id"])
    assert sum(e["amount"] for e in spent) == 30_000 and len(spent) == 3


async def test_an_overpaid_pledge_never_pays_more_than_it_promised(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    coordinator = auth("coordinator")
    offer = await known_pledge(client, auth, 50_000, paid=80_000)
    body = assert_problem(
        await client.post("/v1/procurements", headers=coordinator, json=procurement_body(offer["id"], quantity=11)), 409
    )
    assert slug(body) == "pledge-insufficient" and body["available"] == 50_000, body
    whole = await create(client, coordinator, procurement_body(offer["id"], quantity=10))  # 50 000: all it promised
    assert (await act(client, coordinator, whole["id"], "order")).status_code == 200
    # 30 000 of what arrived is still in its cash, but the promise is spent.
    body = assert_problem(
        await client.post("/v1/procurements", headers=coordinator, json=procurement_body(offer["id"], quantity=1)), 409
    )
    assert slug(body) == "pledge-insufficient" and body["available"] == 0 and body["offer_id"] == offer["id"], body
    assert [e["amount"] for e in await ledger(client, auth, "spent", offer_id=offer["id"])] == [50_000]
