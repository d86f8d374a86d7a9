"""The public accounts (公示): no token, rate-limited, JSON or a page in Chinese (the default) or English — goods by
category and by province, city and county, sites supported, people served by group, donors named only by the
public name they chose; and never a contact name, phone number, handover PIN or street address."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from reliefhub.gateway import Gateway
from shared.settings import Settings
from tests.helpers.accounts import Books, donor_books
from tests.helpers.auth import TokenFactory
from tests.helpers.browser import CSP_VIOLATION, chromium_path, dump_dom, serving
from tests.helpers.funds import create_fund, create_operation, pledge_into, record_payment
from tests.helpers.logistics import procurement_body
from tests.helpers.problems import assert_problem
from tests.helpers.supply import create_donor, offer_body
from tests.helpers.waiting import eventually

URL = "/v1/public/accounts"


@pytest.fixture
def chromium() -> str:
    return chromium_path()


async def _public_fund(client: httpx.AsyncClient, auth: TokenFactory) -> dict[str, Any]:
    """A public fund (5 % overhead): ¥2,000.00 pledged, ¥1,500.00 received, ¥400.00 of rice ordered; and a fund
    that is not public."""
    await create_fund(client, auth, name="内部周转基金", public=False)
    fund = await create_fund(client, auth, name="儿童关爱基金", public=True, overhead_share=0.05)
    pledge = await pledge_into(client, auth, fund["id"], 200_000)
    await record_payment(client, auth, pledge["id"], 150_000)
    body = procurement_body(pledge["id"], quantity=10, unit_price=4_000)
    drafted = await client.post("/v1/procurements", headers=auth("coordinator"), json=body)
    assert drafted.status_code == 201, drafted.text
    ordered = await client.post(f"/v1/procurements/{drafted.json()['id']}/order", headers=auth("coordinator"))
    assert ordered.status_code == 200, ordered.text
    return fund


async def _books_and_an_unnamed_donor(client: httpx.AsyncClient, auth: TokenFactory) -> Books:
    """`donor_books` of a donor that chose the public name 爱心人士, a company without one that offered rice in a
    relief operation, and `_public_fund`."""
    books = await donor_books(client, auth, public_name="爱心人士")
    books.fund = await _public_fund(client, auth)
    company = auth("donor", org="org-quiet")
    quiet = await create_donor(
        client, company, name="不愿具名的粮油公司", contact={"name": "孙经理", "phone": "13600002222"}
    )
    books.operation = await create_operation(client, auth)

    async def offered_in_operation() -> httpx.Response | None:  # 422 until supply has heard of the operation
        body = offer_body(quiet["id"], operation_id=books.operation["id"])  # 100 rice, matched nowhere yet
        r = await client.post("/v1/offers", headers=company, json=body)
        return r if r.status_code == 201 else None

    await eventually(offered_in_operation)

    async def offered() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(URL)).json()
        food = [g for g in body["goods"]["by_category"] if g["category"] == "food"]
        return body if food and food[0]["offered"] == 210 else None

    await eventually(offered)
    return books


def _no_secrets(text: str, books: Books) -> None:
    for secret in [*books.secrets(), "不愿具名的粮油公司", "孙经理", "13600002222"]:
        assert secret not in text, f"{secret!r} is shown to the public"


async def test_public_accounts_sum_goods_sites_people_and_named_donors_without_personal_data(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    books = await _books_and_an_unnamed_donor(client, auth)
    r = await client.get(URL)  # no token
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json"), r.text
    a = r.json()
    (food,) = a["goods"]["by_category"]
    # 100 kg given in kind and 10 kg bought, both received whole; another company's 100 kg only offered.
    assert food == {
        "category": "food",
        "name": {"zh": "食品", "en": "Food"},
        "offered": 210,
        "delivered": 110,
        "received": 110,
    }
    regions = {(g["level"], g["region_code"]): g for g in a["goods"]["by_region"]}
    assert set(regions) == {("province", "31"), ("city", "3101"), ("county", "310115"), ("county", "310104")}
    for key in (("province", "31"), ("city", "3101"), ("county", "310115")):
        assert (regions[key]["delivered"], regions[key]["received"]) == (110, 110), key
    # The quiet company's rice waits in Xuhui; the first gift's lot named no region (only where it lies).
    assert {k: v for k, v in regions[("county", "310104")].items() if k != "region_code"} == {
        "level": "county",
        "offered": 100,
        "delivered": 0,
        "received": 0,
    }
    assert regions[("province", "31")]["offered"] >= 100
    assert a["sites_supported"] == 1
    assert a["people_served"] == {"children": 30, "elderly": 120}
    assert a["donors"] == [{"name": "爱心人士", "gifts": 2}]
    # The public fund only: ¥400.00 committed to the order and its 5 % overhead out of ¥1,500.00 received.
    assert a["funds"] == [
        {
            "id": books.fund["id"],
            "name": "儿童关爱基金",
            "raised": 200_000,
            "received": 150_000,
            "spent": 40_000,
            "overhead": 2_000,
            "balance": 108_000,
            "currency": "CNY",
        }
    ]
    _no_secrets(r.text, books)
    # Nothing named in the JSON is a person: no `contact`, `phone`, `pin` or `address` member anywhere.
    keys = json.dumps(a)
    for member in ('"contact', '"phone', '"handover_pin"', '"address"', '"pin"'):
        assert member not in keys

    page = await client.get(URL, headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    _no_secrets(page.text, books)
    # The operation's accounts hold the quiet company's rice only; another operation's, nothing.
    op = (await client.get(URL, params={"operation_id": books.operation["id"]})).json()
    assert op["operation_id"] == books.operation["id"]
    assert [(g["category"], g["offered"], g["delivered"]) for g in op["goods"]["by_category"]] == [("food", 100, 0)]
    assert op["funds"] == [] and op["donors"] == [] and op["sites_supported"] == 0 and op["people_served"] == {}
    other = (await client.get(URL, params={"operation_id": str(uuid.uuid4())})).json()
    assert other["goods"] == {"by_category": [], "by_region": []} and other["donors"] == [] and other["funds"] == []
    assert other["sites_supported"] == 0 and other["people_served"] == {}


async def test_public_accounts_page_renders_in_headless_chromium_in_chinese_and_english(
    chromium: str, gateway: Gateway, client: httpx.AsyncClient, auth: TokenFactory, workers: None, tmp_path: Path
) -> None:
    books = await _books_and_an_unnamed_donor(client, auth)
    async with serving(gateway) as base:
        async with httpx.AsyncClient(timeout=10) as http:
            page = await http.get(f"{base}{URL}", headers={"Accept": "text/html"})
        assert page.status_code == 200 and page.headers["content-security-policy"].startswith("default-src 'none'")
        zh, zh_log = await dump_dom(chromium, f"{base}{URL}.html", tmp_path / "zh")
        en, en_log = await dump_dom(chromium, f"{base}{URL}?format=html&lang=en", tmp_path / "en")
    for log in (zh_log, en_log):
        assert CSP_VIOLATION not in log, log[-3000:]
    # Chinese by default, whatever the machine's locale.
    assert '<html lang="zh-CN">' in zh and "捐赠公示" in zh and 'id="goods-by-category"' in zh
    assert "食品" in zh and "区县" in zh and "310115" in zh and "老人" in zh and "儿童" in zh
    assert "爱心人士（2 笔）" in zh and "Public accounts" not in zh
    assert "儿童关爱基金" in zh and "¥1,080.00" in zh and "¥20.00" in zh and "内部周转基金" not in zh
    assert '<html lang="en">' in en and "Public accounts" in en and "Food" in en and "County" in en
    assert "elderly people" in en and "爱心人士 (2 gifts)" in en and "捐赠公示" not in en
    body = zh.split("<body>", 1)[1]
    assert 'data-category="food"' in body and body.count('data-region="') == 4
    for dom in (zh, en):
        _no_secrets(dom, books)


async def test_public_accounts_are_rate_limited_per_client(client: httpx.AsyncClient, migrated: Settings) -> None:
    limit = migrated.track_requests_per_minute
    started = int(time.time() // 60)
    answers: list[httpx.Response] = []
    while len(answers) <= 2 * limit + 1:
        r = await client.get(URL)
        answers.append(r)
        if r.status_code == 429:
            break
    body = assert_problem(answers[-1], 429, "rate-limited")
    assert body["status"] == 429 and 1 <= int(answers[-1].headers["retry-after"]) <= 60
    assert all(r.status_code == 200 for r in answers[:-1])
    if int(time.time() // 60) == started:
        assert len(answers) == limit + 1
    # The page shares the limit.
    if int(time.time() // 60) == started:
        assert_problem(await client.get(f"{URL}.html"), 429, "rate-limited")
