"""The donor statement (捐赠人服务): every gift of a donor and where each yuan and unit went, as JSON and as a
printable page in Chinese and English, for the donor's own organisation and coordinators only."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers.accounts import Books, donor_books
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE
from tests.helpers.funds import create_fund, pledge_into, record_payment
from tests.helpers.http import get_json
from tests.helpers.problems import assert_problem
from tests.helpers.supply import create_donor
from tests.helpers.waiting import eventually


def _gifts(statement: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    by_kind = {g["kind"]: g for g in statement["gifts"]}
    assert len(statement["gifts"]) == 2 and set(by_kind) == {"in_kind", "cash"}
    return by_kind["in_kind"], by_kind["cash"]


def _check_in_kind(gift: dict[str, Any], books: Books) -> None:
    assert gift["offer_id"] == books.gift["id"] and gift["status"] == "open"
    assert [(i["item_code"], i["quantity"]) for i in gift["items"]] == [(RICE, 100)]
    assert gift["amount_received"] is None and gift["purchases"] == []
    (shipment,) = gift["shipments"]
    assert shipment["shipment_id"] == books.shipments[0]["id"] and shipment["status"] == "received"
    assert shipment["site"] == {"name": "川沙安置点", "kind": "shelter", "region_code": "310115"}
    assert [(x["item"]["item_code"], x["item"]["quantity"], x["quantity_received"]) for x in shipment["lines"]] == [
        (RICE, 100, 100)
    ]
    (receipt,) = gift["receipts"]
    assert (receipt["status"], receipt["quantity_received"], receipt["quantity_short"]) == ("received", 100, 0)
    (feedback,) = gift["feedback"]
    assert feedback["rating"] == 5 and feedback["beneficiaries_served"] == 150
    assert feedback["served_by_group"] == {"elderly": 120, "children": 30}
    assert (gift["quantity_shipped"], gift["quantity_received"], gift["sites"]) == (100, 100, 1)


def _check_cash(gift: dict[str, Any], books: Books) -> None:
    assert gift["offer_id"] == books.pledge["id"] and gift["currency"] == "CNY"
    assert (gift["amount_pledged"], gift["amount_spent"]) == (100_000, 50_000)
    assert gift["amount_received"] == 60_000  # the payment recorded against it
    (purchase,) = gift["purchases"]
    assert purchase["procurement_id"] == books.procurement["id"] and purchase["status"] == "received"
    assert (purchase["amount"], purchase["order_total"], purchase["supplier"]) == (50_000, 50_000, "浦东粮油批发市场")
    assert [(i["item_code"], i["quantity"]) for i in purchase["items"]] == [(RICE, 10)]
    # The rice it bought, followed to the site.
    (shipment,) = gift["shipments"]
    assert shipment["shipment_id"] == books.shipments[1]["id"] and shipment["status"] == "received"
    assert [(x["item"]["quantity"], x["quantity_received"]) for x in shipment["lines"]] == [(10, 10)]
    assert [r["quantity_received"] for r in gift["receipts"]] == [10] and gift["feedback"] == []
    assert (gift["quantity_shipped"], gift["quantity_received"], gift["sites"]) == (10, 10, 1)


async def test_statement_follows_each_gift_to_the_site_as_json_and_pages(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    books = await donor_books(client, auth, donor_org="org-giver", public_name="爱心人士")
    url = f"/v1/donors/{books.donor_row['id']}/statement"
    for headers in (books.donor, books.coordinator, auth("frontline", org="org-giver")):
        r = await client.get(url, headers=headers)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/json")
    s = r.json()
    assert s["donor_id"] == books.donor_row["id"] and s["org"] == "org-giver" and s["public_name"] == "爱心人士"
    assert s["money"] == [{"currency": "CNY", "pledged": 100_000, "received": 60_000, "spent": 50_000}]
    in_kind, cash = _gifts(s)
    _check_in_kind(in_kind, books)
    _check_cash(cash, books)

    # The printable page: Chinese by default, English on asking; the same figures in both.
    zh = await client.get(url, headers={**books.donor, "Accept": "text/html"})
    assert zh.status_code == 200 and zh.headers["content-type"].startswith("text/html")
    assert zh.headers["content-security-policy"].startswith("default-src 'none'")
    page = zh.text
    assert '<html lang="zh-CN">' in page and "捐赠人对账单" in page and "逐笔捐赠去向" in page
    assert (
        "1,000.00" in page
        and "600.00" in page
        and "500.00" in page
        and "浦东粮油批发市场" in page
        and "川沙安置点" in page
    )
    assert "大米 × 100 千克" in page and "大米 × 10 千克" in page and "已签收" in page and "★★★★★" in page
    assert "老人 120" in page and "儿童 30" in page and "Donor statement" not in page
    en = await client.get(f"{url}.html?lang=en", headers=books.donor)
    assert en.status_code == 200, en.text
    page = en.text
    assert '<html lang="en">' in page and "Donor statement" in page and "Where each gift went" in page
    assert "1,000.00" in page and "Rice × 100 kg" in page and "elderly people 120" in page and "received" in page
    assert "捐赠人对账单" not in page
    # The recipient's handover PIN is never on a donor's statement.
    for pin in books.pins:
        assert pin not in zh.text and pin not in en.text and pin not in r.text


async def test_statement_is_refused_to_another_donor_organisation(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    own, coordinator = auth("donor", org="org-giver"), auth("coordinator")
    donor = await create_donor(client, own, name="某粮油公司")
    url = f"/v1/donors/{donor['id']}/statement"

    async def known() -> dict[str, Any] | None:  # logistics learns donors from supply's events
        r = await client.get(url, headers=coordinator)
        return r.json() if r.status_code == 200 else None

    assert (await eventually(known))["gifts"] == []
    assert (await client.get(url, headers=own)).status_code == 200
    for headers in (auth("donor", org="org-rival"), auth("frontline", org="org-shelter"), auth("logistics")):
        assert_problem(await client.get(url, headers=headers), 403)
        assert_problem(await client.get(f"{url}.html", headers=headers), 403)
    assert_problem(await client.get(url), 401)
    unknown = await client.get("/v1/donors/00000000-0000-4000-8000-0000000000ff/statement", headers=coordinator)
    assert_problem(unknown, 404, "donor-not-found")


async def test_a_pledge_into_a_fund_shows_the_fund_s_figures(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    fund = await create_fund(client, auth, name="儿童关爱基金", overhead_share=0)
    pledge = await pledge_into(client, auth, fund["id"], 80_000)
    await record_payment(client, auth, pledge["id"], 30_000)
    url = f"/v1/donors/{pledge['donor_id']}/statement"
    s = await get_json(client, url, auth("coordinator"))
    (gift,) = s["gifts"]
    assert (gift["fund_id"], gift["amount_pledged"], gift["amount_received"]) == (fund["id"], 80_000, 30_000)
    assert gift["fund"] == {
        "id": fund["id"],
        "name": "儿童关爱基金",
        "raised": 80_000,
        "received": 30_000,
        "spent": 0,
        "overhead": 0,
        "balance": 30_000,
        "currency": "CNY",
    }
    page = (await client.get(f"{url}.html", headers=auth("coordinator"))).text
    assert "捐入专项基金 <b>儿童关爱基金</b>" in page and "结余 ¥300.00" in page
