"""The donor's tracking page in words: the Chinese page says everything in Chinese (units, verdicts, statuses,
site kinds), the English one pluralises its quantities, in-transit steps show where the carrier was and what it
noted, times are the recipient site's local time with the zone named; and the impact report's times to match
and to delivery in seconds."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from typing import Any

import httpx

from services.logistics import page
from shared.catalog import get_catalog, seed_items
from shared.vocabulary import SiteKind, Verdict
from tests.helpers.auth import TokenFactory
from tests.helpers.logistics import advance
from tests.helpers.scenario import Gift, ship_a_gift
from tests.helpers.waiting import eventually

RICE = "food.grain.rice"
WATER = "water.bottled.small_550ml"
CONCENTRATOR = "medical_device.oxygen.concentrator_5l"
HOPS = (("浦东新区物资分拨中心", "已到达分拨中心，等待装车"), ("川沙新镇街道", "末端配送中"))


def visible_text(markup: str) -> str:
    """What a reader sees of a page: no style block, no tags, entities decoded."""
    body = re.sub(r"<style>.*?</style>", " ", markup, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def assert_all_chinese(markup: str, *names: str) -> None:
    """Nothing in Latin letters on the page but the product's name, the link to the English page, the time
    zone's IANA id and the names given (items, sites, carriers' words: what people wrote, shown as written)."""
    text = visible_text(markup)
    for allowed in ("ReliefHub", "English", "Asia/Shanghai", *names):
        text = text.replace(allowed, " ")
    latin = re.findall(r"[A-Za-z]+", text)
    assert not latin, f"untranslated on the Chinese page: {sorted(set(latin))}"


async def moved_through_two_hubs(client: httpx.AsyncClient, gift: Gift) -> None:
    sid = gift.shipment["id"]
    await advance(client, gift.carrier, sid, "picked_up")
    for location, note in HOPS:
        r = await client.post(
            f"/v1/shipments/{sid}/status",
            headers=gift.carrier,
            json={"status": "in_transit", "location": location, "note": note},
        )
        assert r.status_code == 200, r.text
    await advance(client, gift.carrier, sid, "delivered")


async def short_receipt(client: httpx.AsyncClient, gift: Gift) -> None:
    """The site confirms all the rice and 200 of the 240 cartons of water."""
    sid = gift.shipment["id"]
    shipment = (await client.get(f"/v1/shipments/{sid}", headers=gift.recipient)).json()
    lines = [
        {
            "line_id": line["id"],
            "quantity_received": line["quantity"] if line["item_code"] == RICE else 200,
            **({"discrepancy_reason": "运输途中破损"} if line["item_code"] == WATER else {}),
        }
        for line in shipment["lines"]
    ]
    r = await client.post(
        f"/v1/shipments/{sid}/receipt", headers=gift.recipient, json={"pin": shipment["handover_pin"], "lines": lines}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "received_with_problem"


def at(step: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(step["at"])


async def test_in_transit_steps_show_where_the_carrier_was_and_what_it_noted(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth)
    await moved_through_two_hubs(client, gift)
    t = (await client.get(f"/v1/track/{gift.tracking_code}")).json()
    hops = [(s["location"], s["note"]) for s in t["timeline"] if s["kind"] == "in_transit"]
    assert hops == list(HOPS)
    offered = next(s for s in t["timeline"] if s["kind"] == "offered")
    assert offered["location"] is None and offered["note"] is None

    for lang, location, note in (("zh", "位置：", "备注："), ("en", "Location: ", "Note: ")):
        markup = (await client.get(f"/v1/track/{gift.tracking_code}?format=html&lang={lang}")).text
        steps = re.findall(r'<li class="step" data-kind="in_transit">(.*?)</li>', markup, re.S)
        assert len(steps) == 2, markup
        for step, (where, what) in zip(steps, HOPS, strict=True):
            assert f"{location}{where}" in step and f"{note}{what}" in step, step


async def test_the_chinese_page_says_everything_in_chinese(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth)
    await moved_through_two_hubs(client, gift)
    await short_receipt(client, gift)
    fb = await client.post(
        f"/v1/shipments/{gift.shipment['id']}/feedback",
        headers=gift.recipient,
        json={"rating": 5, "comment": "感谢捐赠", "beneficiaries_served": 1200},
    )
    assert fb.status_code == 201, fb.text
    markup = (await client.get(f"/v1/track/{gift.tracking_code}?format=html&lang=zh")).text
    catalog = get_catalog()
    names = [item.name.zh for item in (catalog.get(RICE), catalog.get(WATER)) if item is not None]
    assert_all_chinese(markup, *names, "浦东临时安置点", *(w for hop in HOPS for w in hop))
    text = visible_text(markup)
    # Units as measure words, the gift's status, the site's kind, the shortfall, numbers grouped.
    assert "大米 × 100 千克" in text and "× 240 箱" in text and "× 200 箱" in text, text
    assert "状态：进行中" in text and "（安置点，区划代码 310115）" in text
    assert "确认收货（有差异）" in text and "短缺 40" in text and "1,200 人受益" in text
    for word in ("kg", "carton", "shelter", "open", "received_with_problem", "UTC"):
        assert word not in text


async def test_a_working_groups_verdict_and_the_units_are_in_words(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    donor = auth("donor", org="org-devices")
    donor_row = (
        await client.post("/v1/donors", headers=donor, json={"name": "医疗器械公司", "kind": "company"})
    ).json()
    offer = await client.post(
        "/v1/offers",
        headers=donor,
        json={
            "donor_id": donor_row["id"],
            "kind": "in_kind",
            "lots": [{"item_code": CONCENTRATOR, "quantity": 1, "region_code": "310104"}],
        },
    )
    assert offer.status_code == 201, offer.text
    body = offer.json()
    verdict = await client.post(
        f"/v1/offers/{body['id']}/verification",
        headers=auth("working_group", org="wg-devices", group="medical_device"),
        json={"verdict": "verified", "notes": "注册证已核对"},
    )
    assert verdict.status_code == 200, verdict.text
    url = f"/v1/track/{body['tracking_code']}"

    async def verified() -> dict[str, Any] | None:
        r = await client.get(url)  # 404 until logistics has learnt of the offer
        t = r.json() if r.status_code == 200 else {"timeline": []}
        return t if any(s["kind"] == "verified" for s in t["timeline"]) else None

    t = await eventually(verified)
    step = next(s for s in t["timeline"] if s["kind"] == "verified")
    assert step["detail"]["verdict"] == "verified"
    assert step["items"][0]["unit"] == "unit"
    assert step["items"][0]["unit_name"] == {"zh": "台", "en": "unit"}
    zh = (await client.get(f"{url}?format=html&lang=zh")).text
    assert_all_chinese(zh, "5升医用制氧机")
    assert "核验通过" in visible_text(zh) and "× 1 台" in visible_text(zh)
    en = visible_text((await client.get(f"{url}?format=html&lang=en")).text)
    assert "Passed the check" in en and "Oxygen concentrator 5 L/min × 1 unit" in en and "Status: In progress" in en


async def test_english_quantities_are_singular_or_plural(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth, lines=((RICE, 100), (WATER, 1)))
    t = (await client.get(f"/v1/track/{gift.tracking_code}")).json()
    units = {i["item_code"]: i["unit_name"] for i in t["items"]}
    assert units == {RICE: {"zh": "千克", "en": "kg"}, WATER: {"zh": "箱", "en": "carton"}}
    en = visible_text((await client.get(f"/v1/track/{gift.tracking_code}?format=html&lang=en")).text)
    assert "Bottled water 550 ml (carton of 24) × 1 carton" in en and "Rice × 100 kg" in en, en
    assert "1 cartons" not in en and "0 sites reached" in en

    more = await ship_a_gift(client, auth, org="org-shelter-2", donor_org="org-grain-2")
    en = visible_text((await client.get(f"/v1/track/{more.tracking_code}?format=html&lang=en")).text)
    assert "× 240 cartons" in en, en


async def test_times_are_the_sites_local_time_with_the_zone_named(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth)
    t = (await client.get(f"/v1/track/{gift.tracking_code}")).json()
    assert t["time_zone"] == "Asia/Shanghai"
    first = t["timeline"][0]
    beijing = at(first) + timedelta(hours=8)  # the JSON keeps UTC; the page shows Beijing time
    for lang, zone in (("zh", "中国标准时间"), ("en", "China Standard Time")):
        markup = (await client.get(f"/v1/track/{gift.tracking_code}?format=html&lang={lang}")).text
        shown = re.findall(r'<time datetime="([^"]+)">([^<]+)</time>', markup)
        assert len(shown) == len(t["timeline"])
        stamp, words = shown[0]
        assert datetime.fromisoformat(stamp) == at(first) and stamp.endswith("+08:00"), stamp
        assert words == f"{beijing:%Y-%m-%d %H:%M} {zone}", words
        assert all(w.endswith(zone) for _, w in shown)
        assert f"{zone} (Asia/Shanghai)" in visible_text(markup)
        assert " UTC" not in visible_text(markup)

    # A site in Hong Kong: its own zone, named as such.
    hk = await ship_a_gift(client, auth, region_code="810001", org="org-hk", donor_org="org-hk-donor")
    t = (await client.get(f"/v1/track/{hk.tracking_code}")).json()
    assert t["time_zone"] == "Asia/Hong_Kong"
    markup = (await client.get(f"/v1/track/{hk.tracking_code}?format=html&lang=zh")).text
    assert "香港标准时间" in markup and "(Asia/Hong_Kong)" in markup


def test_every_word_the_page_may_show_has_both_languages() -> None:
    """Each unit of the seed catalog, each site kind, verdict and step: a Chinese word and an English one (a unit
    added later through the API is shown as it was given, the last assertion)."""
    for item in seed_items():
        assert item["unit"] in page.UNITS, f"{item['code']}: unit {item['unit']!r} has no words"
    for kind in SiteKind:
        assert kind in page.SITE_KINDS
    for verdict in Verdict:
        assert verdict in page.VERDICTS
    for table in (page.TITLES, page.STATUSES, page.VERDICTS, page.SITE_KINDS):
        for zh, en in table.values():
            assert re.search(r"[\u4e00-\u9fff]", zh) and not re.search(r"[\u4e00-\u9fff]", en)
    assert page.unit_name("piece", 1).en == "piece" and page.unit_name("piece", 2).en == "pieces"
    assert page.unit_name("piece", 0).en == "pieces" and page.unit_name("箱子", 3).en == "箱子"


async def test_impact_reports_the_times_in_seconds(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth)
    posted = datetime.fromisoformat(gift.need["created_at"])
    decided = []
    for p in gift.proposals:
        body = (await client.get(f"/v1/proposals/{p['id']}", headers=gift.coordinator)).json()
        decided.append(datetime.fromisoformat(body["decided_at"]))
    expected = (min(decided) - posted).total_seconds()

    async def counted() -> dict[str, Any] | None:
        r = await client.get("/v1/reports/impact?region_code=31&level=county", headers=gift.coordinator)
        body = r.json()
        return body if body["totals"]["time_to_match_seconds_p50"] is not None else None

    report = await eventually(counted)
    [pudong] = report["regions"]
    for figures in (report["totals"], pudong):
        seconds = figures["time_to_match_seconds_p50"]
        assert abs(seconds - expected) <= 0.051, (seconds, expected)
        assert figures["time_to_match_seconds_p90"] == seconds  # one need: every percentile is its time
        assert figures["time_to_match_hours_p50"] == round(seconds / 3600, 2)  # kept for clients that read it
        assert figures["time_to_delivery_seconds_p50"] is None  # nothing received yet
