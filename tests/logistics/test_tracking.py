"""Public tracking: no token, no personal data, JSON or a page in Chinese or English, and a per-client rate
limit."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from typing import Any

import httpx

from shared.settings import Settings
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE, WATER
from tests.helpers.funds import record_payment
from tests.helpers.logistics import advance, full_receipt, procurement_body
from tests.helpers.needs import PUDONG_SHELTER, create_need, create_site
from tests.helpers.problems import assert_problem
from tests.helpers.scenario import ship_a_gift
from tests.helpers.supply import fund_pledge
from tests.helpers.waiting import eventually

PERSONAL = ("张三", "13800000000", "121.54")


def slug(body: dict[str, Any]) -> str:
    return str(body["type"]).rsplit(":", 1)[-1]


def no_personal_data(text: str) -> None:
    for secret in PERSONAL:
        assert secret not in text, f"{secret!r} is shown to the public"


async def test_unknown_code_is_404_without_a_token(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/track/NoSuchGiftCode123")
    assert slug(assert_problem(r, 404)) == "tracking-code-not-found"
    html = await client.get("/v1/track/NoSuchGiftCode123", headers={"Accept": "text/html"})
    assert_problem(html, 404)


async def test_malformed_code_is_422(client: httpx.AsyncClient) -> None:
    for code in ("short", "a" * 65, "bad%20code%21"):
        assert_problem(await client.get(f"/v1/track/{code}"), 422, context=code)
    assert_problem(await client.get("/v1/track/NoSuchGiftCode123?lang=fr"), 422)
    assert_problem(await client.get("/v1/track/NoSuchGiftCode123?format=xml"), 422)


async def test_timeline_and_page_name_the_site_but_no_person(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth)
    r = await client.get(f"/v1/track/{gift.tracking_code}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    no_personal_data(r.text)
    t = r.json()
    assert t["kind"] == "in_kind"
    assert sorted((i["item_code"], i["quantity"]) for i in t["items"]) == [(RICE, 100), (WATER, 240)]
    kinds = [step["kind"] for step in t["timeline"]]
    assert kinds[0] == "offered", kinds
    assert kinds.count("allocated") == 2 and "planned" in kinds, kinds
    times = [step["at"] for step in t["timeline"]]
    assert times == sorted(times)
    allocated = [step for step in t["timeline"] if step["kind"] == "allocated"]
    assert sorted((s["items"][0]["item_code"], s["items"][0]["quantity"]) for s in allocated) == [
        (RICE, 100),
        (WATER, 240),
    ]
    for step in allocated:
        assert step["site"] == {"name": "浦东临时安置点", "kind": "shelter", "region_code": "310115"}
        assert step["title"] == {"zh": "匹配到需求", "en": "Matched to a need"}
    assert t["summary"]["quantity_offered"] == 340 and t["summary"]["quantity_allocated"] == 340
    assert t["summary"]["quantity_shipped"] == 0 and t["summary"]["quantity_received"] == 0
    # The tracking code is for the public: a token is not needed, and another offer's code shows nothing of it.
    code = gift.tracking_code
    other = await client.get(f"/v1/track/{code[:-1]}{'A' if code[-1] != 'A' else 'B'}")
    assert_problem(other, 404)

    # Browsers get a page, in Chinese unless they ask for English.
    url = f"/v1/track/{gift.tracking_code}"
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    zh = await client.get(url, headers=browser)
    assert zh.status_code == 200, zh.text
    assert zh.headers["content-type"].startswith("text/html")
    page = zh.text
    assert '<html lang="zh-CN">' in page and 'id="timeline"' in page
    assert "您的捐赠去向" in page and "匹配到需求" in page and "登记捐赠" in page
    assert "浦东临时安置点" in page and "安置点" in page and "大米" in page
    assert page.count('data-kind="allocated"') == 2 and 'data-kind="offered"' in page
    no_personal_data(page)

    en = await client.get(f"{url}?lang=en", headers=browser)
    assert en.status_code == 200 and en.headers["content-type"].startswith("text/html")
    assert '<html lang="en">' in en.text
    assert "Where your gift went" in en.text and "Matched to a need" in en.text and "Rice" in en.text
    assert "匹配到需求" not in en.text
    no_personal_data(en.text)

    by_header = await client.get(url, headers={**browser, "Accept-Language": "en-GB,en;q=0.9"})
    assert "Matched to a need" in by_header.text
    forced = await client.get(f"{url}?format=html")
    assert forced.headers["content-type"].startswith("text/html") and "匹配到需求" in forced.text
    as_json = await client.get(f"{url}?format=json", headers=browser)
    assert as_json.headers["content-type"].startswith("application/json")
    assert as_json.json()["timeline"][0]["kind"] == "offered"


async def test_the_page_has_a_strict_content_security_policy(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth)
    page = await client.get(f"/v1/track/{gift.tracking_code}", headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = dict(d.strip().split(" ", 1) for d in page.headers["content-security-policy"].split(";"))
    assert policy.pop("style-src").startswith("'sha256-")
    assert policy == {
        "default-src": "'none'",
        "img-src": "'self' data:",
        "frame-ancestors": "'none'",
        "base-uri": "'none'",
        "form-action": "'none'",
    }
    # The hash allows exactly the page's own style block (and the page has no other, nor a style attribute).
    styles = re.findall(r"<style>(.*?)</style>", page.text, re.S)
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert len(styles) == 1 and page.headers["content-security-policy"].count(f"'sha256-{digest}'") == 1
    assert " style=" not in page.text and "<script" not in page.text
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY" and page.headers["referrer-policy"] == "no-referrer"
    assert page.headers.get_list("x-content-type-options") == ["nosniff"]

    as_json = await client.get(f"/v1/track/{gift.tracking_code}")
    assert as_json.headers["x-content-type-options"] == "nosniff"


async def test_timeline_follows_the_gift_to_the_recipients_feedback(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth)
    sid = gift.shipment["id"]
    await advance(client, gift.carrier, sid, "picked_up", "in_transit", "delivered")
    s = (await client.get(f"/v1/shipments/{sid}", headers=gift.recipient)).json()
    assert (
        await client.post(
            f"/v1/shipments/{sid}/receipt", headers=gift.recipient, json=full_receipt(s, s["handover_pin"])
        )
    ).status_code == 200
    fb = await client.post(
        f"/v1/shipments/{sid}/feedback",
        headers=gift.recipient,
        json={"rating": 4, "comment": '大米很好<script>alert("x")</script>', "beneficiaries_served": 300},
    )
    assert fb.status_code == 201, fb.text
    r = await client.get(f"/v1/track/{gift.tracking_code}")
    assert r.status_code == 200, r.text
    no_personal_data(r.text)
    t = r.json()
    kinds = [step["kind"] for step in t["timeline"]]
    for kind in ("offered", "allocated", "planned", "picked_up", "in_transit", "delivered", "received", "feedback"):
        assert kind in kinds, kinds
    assert kinds[-1] == "feedback"
    received = next(step for step in t["timeline"] if step["kind"] == "received")
    assert received["site"]["name"] == "浦东临时安置点"
    assert sorted((i["item_code"], i["quantity"]) for i in received["items"]) == [(RICE, 100), (WATER, 240)]
    feedback = t["timeline"][-1]
    assert feedback["detail"]["rating"] == 4 and feedback["detail"]["beneficiaries_served"] == 300
    summary = t["summary"]
    assert (summary["quantity_shipped"], summary["quantity_received"], summary["sites"]) == (340, 340, 1)
    # The page shows the recipient's words as text, never as markup.
    page = (await client.get(f"/v1/track/{gift.tracking_code}?format=html")).text
    assert "大米很好&lt;script&gt;" in page and "<script>" not in page
    assert page.count('data-kind="feedback"') == 1 and "★★★★☆" in page and "300 人受益" in page
    no_personal_data(page)


async def test_tracking_is_rate_limited_per_client(client: httpx.AsyncClient, migrated: Settings) -> None:
    limit = migrated.track_requests_per_minute
    assert limit == 60
    url = "/v1/track/NoSuchGiftCode123"
    started = int(time.time() // 60)
    answers: list[httpx.Response] = []
    while len(answers) <= 2 * limit + 1:
        r = await client.get(url)
        answers.append(r)
        if r.status_code == 429:
            break
    limited, limited_window = answers[-1], int(time.time() // 60)
    body = assert_problem(limited, 429)
    assert slug(body) == "rate-limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert all(r.status_code in (200, 404) for r in answers[:-1]), {r.status_code for r in answers}
    assert len(answers) > limit
    if int(time.time() // 60) == started:  # no minute boundary in between: exactly the limit passed
        assert len(answers) == limit + 1
    else:
        assert len(answers) <= 2 * limit + 1
    # Still limited for the rest of that minute, whatever the code and the format.
    again = await client.get("/v1/track/AnotherCode123", headers={"Accept": "text/html"})
    if int(time.time() // 60) == limited_window:
        assert slug(assert_problem(again, 429)) == "rate-limited"


async def test_a_cash_pledge_shows_what_it_bought_and_where_it_went(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    coordinator, recipient = auth("coordinator"), auth("frontline", org="org-shelter")
    site = await create_site(client, recipient, **PUDONG_SHELTER)
    need = await create_need(
        client, recipient, site["id"], {"item_code": RICE, "quantity": 10}, title="大米", urgency="high"
    )
    pledge = await fund_pledge(client, auth, 100_000)
    await record_payment(client, auth, pledge["id"], 100_000)  # a pledge outside any fund spends what it received
    code = pledge["tracking_code"]
    order = procurement_body(pledge["id"], quantity=10)

    async def drafted() -> httpx.Response | None:
        r = await client.post("/v1/procurements", headers=coordinator, json=order)
        return None if r.status_code == 409 else r

    p = (await eventually(drafted)).json()
    assert (await client.post(f"/v1/procurements/{p['id']}/order", headers=coordinator)).status_code == 200
    assert (await client.post(f"/v1/procurements/{p['id']}/receive", headers=coordinator)).status_code == 200

    async def proposed() -> list[dict[str, Any]]:
        r = await client.get(f"/v1/proposals?need_id={need['id']}&status=proposed", headers=coordinator)
        return list(r.json()["items"])

    proposal = (await eventually(proposed))[0]
    assert (await client.post(f"/v1/proposals/{proposal['id']}/accept", headers=coordinator)).status_code == 200

    async def planned() -> list[dict[str, Any]]:
        r = await client.get(f"/v1/shipments?need_id={need['id']}", headers=recipient)
        return list(r.json()["items"])

    shipment = (await eventually(planned))[0]
    carrier = auth("logistics", org="org-carrier")
    await advance(client, carrier, shipment["id"], "picked_up", "delivered")
    got = await client.post(
        f"/v1/shipments/{shipment['id']}/receipt",
        headers=recipient,
        json=full_receipt(shipment, shipment["handover_pin"]),
    )
    assert got.status_code == 200, got.text

    r = await client.get(f"/v1/track/{code}")
    assert r.status_code == 200, r.text
    no_personal_data(r.text)
    t = r.json()
    assert t["kind"] == "cash" and t["currency"] == "CNY"
    kinds = [step["kind"] for step in t["timeline"]]
    for kind in ("offered", "procurement_ordered", "procurement_received", "allocated", "picked_up", "received"):
        assert kind in kinds, kinds
    assert kinds.index("offered") < kinds.index("procurement_ordered") < kinds.index("procurement_received")
    assert kinds.index("procurement_received") < kinds.index("allocated") < kinds.index("received")
    ordered = next(step for step in t["timeline"] if step["kind"] == "procurement_ordered")
    assert ordered["amount"] == 50_000 and ordered["detail"]["supplier"] == "浦东粮油批发市场"
    allocated = next(step for step in t["timeline"] if step["kind"] == "allocated")
    assert allocated["site"]["name"] == "浦东临时安置点"
    summary = t["summary"]
    assert summary["amount_pledged"] == 100_000 and summary["amount_spent"] == 50_000
    assert summary["quantity_received"] == 10 and summary["sites"] == 1
    page = await client.get(f"/v1/track/{code}", headers={"Accept": "text/html"})
    assert "善款采购下单" in page.text and "500.00" in page.text and "1,000.00" in page.text
    no_personal_data(page.text)
