"""A purchase names where its goods go, and every funding pledge's restrictions are checked against those sites
and the purchase's items (409 `restriction-violated`, one entry per broken rule); the goods are credited to every
paying pledge in proportion to what it paid, on the order and on each pledge's tracking page."""

from __future__ import annotations

from typing import Any

import httpx

from services.logistics.shares import split
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE, SHANGHAI, WATER
from tests.helpers.logistics import draft, known_pledge, procurement_body
from tests.helpers.needs import create_need, create_site
from tests.helpers.problems import assert_problem
from tests.helpers.waiting import eventually

NURSING_HOMES = {"site_kinds": ["nursing_home"]}


def slug(body: dict[str, Any]) -> str:
    return str(body["type"]).rsplit(":", 1)[-1]


async def site(client: httpx.AsyncClient, auth: TokenFactory, kind: str) -> dict[str, Any]:
    return await create_site(client, auth("frontline", org="org-shelter"), kind=kind, name=f"{kind} 上海", **SHANGHAI)


async def ledger_spent(client: httpx.AsyncClient, auth: TokenFactory, offer_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/ledger?kind=spent&offer_id={offer_id}", headers=auth("coordinator"))
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_a_nursing_home_pledge_pays_for_a_nursing_home_and_not_for_a_hospital(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    coordinator = auth("coordinator")
    pledge = await known_pledge(client, auth, restrictions=NURSING_HOMES)
    hospital, home = await site(client, auth, "hospital"), await site(client, auth, "nursing_home")

    refused = await draft(client, auth, procurement_body(pledge["id"], destination={"site_id": hospital["id"]}))
    problem = assert_problem(refused, 409)
    assert slug(problem) == "restriction-violated"
    assert problem["errors"] == [
        {
            "loc": ["body", "funding", 0, "offer_id"],
            "msg": f"pledge {pledge['id']}: site_kinds: a hospital site is not one of nursing_home",
        }
    ]
    listed = await client.get(f"/v1/procurements?offer_id={pledge['id']}", headers=coordinator)
    assert listed.json()["items"] == []  # nothing written

    r = await draft(client, auth, procurement_body(pledge["id"], destination={"site_id": home["id"]}))
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["destination"]["site_id"] == home["id"]
    assert (await client.post(f"/v1/procurements/{p['id']}/order", headers=coordinator)).status_code == 200
    received = await client.post(f"/v1/procurements/{p['id']}/receive", headers=coordinator)
    assert received.status_code == 200, received.text
    goods = (await client.get(f"/v1/offers/{received.json()['goods_offer_id']}", headers=coordinator)).json()
    # The goods carry the pledge's rules and go where they were bought for.
    assert goods["restrictions"]["site_kinds"] == ["nursing_home"]
    assert goods["restrictions"]["site_ids"] == [home["id"]]


async def test_needs_as_destination_and_the_old_need_id_field_are_checked_too(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    frontline = auth("frontline", org="org-shelter")
    hospital = await site(client, auth, "hospital")
    need = await create_need(client, frontline, hospital["id"], {"item_code": RICE, "quantity": 100})
    pledge = await known_pledge(client, auth, restrictions=NURSING_HOMES)
    for body in (
        procurement_body(pledge["id"], destination={"need_ids": [need["id"]]}),
        procurement_body(pledge["id"], need_id=need["id"]),
    ):
        problem = assert_problem(await draft(client, auth, body), 409)
        assert slug(problem) == "restriction-violated"
        assert [e["msg"].split(": ", 1)[1] for e in problem["errors"]] == [
            "site_kinds: a hospital site is not one of nursing_home"
        ]
    free = await known_pledge(client, auth)
    r = await draft(client, auth, procurement_body(free["id"], need_id=need["id"]))
    assert r.status_code == 201, r.text
    assert r.json()["destination"]["need_ids"] == [need["id"]] and r.json()["need_id"] == need["id"]
    both = procurement_body(free["id"], need_id=need["id"], destination={"site_id": hospital["id"]})
    assert_problem(await client.post("/v1/procurements", headers=auth("coordinator"), json=both), 422)


async def test_an_item_category_pledge_buys_only_that_category_and_each_broken_rule_is_named(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    home = await site(client, auth, "nursing_home")
    food_in_beijing = await known_pledge(client, auth, restrictions={"item_codes": ["food."], "region_codes": ["11"]})
    water = procurement_body(food_in_beijing["id"], destination={"site_id": home["id"]})
    water["lines"] = [{"item_code": WATER, "quantity": 20, "unit_price": 2_500}]
    problem = assert_problem(await draft(client, auth, water), 409)
    assert slug(problem) == "restriction-violated"
    msgs = [e["msg"] for e in problem["errors"]]
    assert msgs == [
        f"pledge {food_in_beijing['id']}: region_codes: 310115 is outside 11",
        f"pledge {food_in_beijing['id']}: item_codes: {WATER} is not one of food.",
    ]
    food = await known_pledge(client, auth, restrictions={"item_codes": ["food."]})
    assert (
        await draft(client, auth, procurement_body(food["id"], destination={"site_id": home["id"]}))
    ).status_code == 201
    water["funding"][0]["offer_id"] = food["id"]
    assert [e["msg"].split(": ", 1)[1] for e in assert_problem(await draft(client, auth, water), 409)["errors"]] == [
        f"item_codes: {WATER} is not one of food."
    ]


async def test_ordering_checks_the_restrictions_again(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    """A pledge's restrictions may change after the draft (PATCH /v1/offers): the order is checked anew."""
    donor = auth("donor", org="org-fund")
    hospital = await site(client, auth, "hospital")
    pledge = await known_pledge(client, auth)
    r = await draft(client, auth, procurement_body(pledge["id"], destination={"site_id": hospital["id"]}))
    assert r.status_code == 201, r.text
    p = r.json()
    current = (await client.get(f"/v1/offers/{pledge['id']}", headers=donor)).json()
    patched = await client.patch(
        f"/v1/offers/{pledge['id']}",
        headers={**donor, "If-Match": f'"{current["version"]}"'},
        json={"restrictions": NURSING_HOMES},
    )
    assert patched.status_code == 200, patched.text
    coordinator = auth("coordinator")
    again = procurement_body(pledge["id"], destination={"site_id": hospital["id"]})

    async def learnt() -> bool:  # logistics has the new restrictions once a second draft is refused
        r = await client.post("/v1/procurements", headers=coordinator, json=again)
        assert r.status_code in (201, 409), r.text
        return r.status_code == 409 and slug(r.json()) == "restriction-violated"

    await eventually(learnt)
    ordered = await client.post(f"/v1/procurements/{p['id']}/order", headers=coordinator)
    problem = assert_problem(ordered, 409)
    assert slug(problem) == "restriction-violated"
    assert (
        problem["errors"][0]["msg"] == f"pledge {pledge['id']}: site_kinds: a hospital site is not one of nursing_home"
    )
    assert await ledger_spent(client, auth, pledge["id"]) == []
    after = (await client.get(f"/v1/procurements/{p['id']}", headers=coordinator)).json()
    assert after["status"] == "draft"


async def test_two_pledges_paying_one_purchase_are_each_credited_their_share(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    coordinator = auth("coordinator")
    home = await site(client, auth, "nursing_home")
    big, small = await known_pledge(client, auth, 70_000), await known_pledge(client, auth, 30_000)
    body = procurement_body(big["id"], destination={"site_id": home["id"]})
    body["lines"].append({"item_code": WATER, "quantity": 20, "unit_price": 2_500})  # 50,000 rice + 50,000 water
    body["funding"] = [{"offer_id": big["id"], "amount": 70_000}, {"offer_id": small["id"], "amount": 30_000}]
    r = await draft(client, auth, body)
    assert r.status_code == 201, r.text
    p = r.json()
    assert (await client.post(f"/v1/procurements/{p['id']}/order", headers=coordinator)).status_code == 200
    received = await client.post(f"/v1/procurements/{p['id']}/receive", headers=coordinator)
    assert received.status_code == 200, received.text
    assert received.json()["attribution"] == [
        {
            "offer_id": big["id"],
            "fund_id": None,
            "amount": 70_000,
            "items": [{"item_code": RICE, "quantity": 7}, {"item_code": WATER, "quantity": 14}],
        },
        {
            "offer_id": small["id"],
            "fund_id": None,
            "amount": 30_000,
            "items": [{"item_code": RICE, "quantity": 3}, {"item_code": WATER, "quantity": 6}],
        },
    ]
    goods = (await client.get(f"/v1/offers/{received.json()['goods_offer_id']}", headers=coordinator)).json()
    assert big["id"] in goods["note"] and small["id"] in goods["note"]

    for pledge, amount, rice, water in ((big, 70_000, 7, 14), (small, 30_000, 3, 6)):
        t = await client.get(f"/v1/track/{pledge['tracking_code']}")
        assert t.status_code == 200, t.text
        step = next(s for s in t.json()["timeline"] if s["kind"] == "procurement_received")
        assert step["amount"] == amount
        assert [(i["item_code"], i["quantity"]) for i in step["items"]] == [(RICE, rice), (WATER, water)]
        assert t.json()["summary"]["amount_spent"] == amount


def test_shares_add_up_to_each_line_exactly() -> None:
    assert split(10, [1, 1, 1]) == [4, 3, 3]
    assert split(7, [50_000, 30_000, 20_000]) == [4, 2, 1]
    assert split(1, [1, 3]) == [0, 1]
    assert all(sum(split(q, [3, 5, 7])) == q for q in range(50))


async def test_a_pledge_for_the_elderly_pays_only_for_needs_that_serve_them(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    frontline = auth("frontline", org="org-shelter")
    home = await site(client, auth, "nursing_home")
    rice = {"item_code": RICE, "quantity": 100}
    elderly = await create_need(client, frontline, home["id"], rice, beneficiary_groups={"elderly": 40})
    children = await create_need(client, frontline, home["id"], rice, beneficiary_groups={"children": 12})
    pledge = await known_pledge(client, auth, restrictions={"beneficiary_groups": ["elderly"]})

    async def groups_known() -> httpx.Response | None:  # the need may be known before its groups are
        r = await draft(client, auth, procurement_body(pledge["id"], destination={"need_ids": [elderly["id"]]}))
        return r if r.status_code == 201 else None

    assert (await eventually(groups_known)).status_code == 201
    problem = assert_problem(
        await draft(client, auth, procurement_body(pledge["id"], destination={"need_ids": [children["id"]]})), 409
    )
    assert [e["msg"] for e in problem["errors"]] == [
        f"pledge {pledge['id']}: beneficiary_groups: the destination serves none of elderly"
    ]
