"""The item catalog and recipient sites, through HTTP: visibility of contacts, filters, pages, If-Match."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers.auth import TokenFactory
from tests.helpers.http import collect_pages
from tests.helpers.needs import create_need, create_site, site_body
from tests.helpers.problems import assert_problem, error_locs
from tests.helpers.streams import publish, read_events

# --- items -------------------------------------------------------------------------------------------


async def test_items_catalog_lists_everything_with_its_fields(client, auth: TokenFactory) -> None:
    r = await client.get("/v1/items", headers=auth("donor", org="org-donor"))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) > 50
    n95 = next(i for i in items if i["code"] == "ppe.mask.n95")
    assert n95["name"] == {"zh": "N95防护口罩(美国NIOSH标准)", "en": "N95 respirator (US NIOSH 42 CFR 84)"}
    assert n95["category"] == "ppe" and n95["unit"] == "piece" and n95["check_by"] == "medical_device"
    assert n95["base_unit"] == "piece" and {"unit": "box", "base_units": 20} in n95["packs"]
    assert n95["grade"] == "medical"
    # The Chinese standard is an item of its own, checked by the same working group.
    gb = next(i for i in items if i["code"] == "ppe.mask.gb19083")
    assert gb["name"]["en"] == "Medical protective mask (China GB 19083)" and gb["check_by"] == "medical_device"
    kn95 = next(i for i in items if i["code"] == "ppe.mask.kn95")
    assert kn95["substitutes"] == ["ppe.mask.n95", "ppe.mask.gb19083"] and kn95["check_by"] is None
    assert kn95["grade"] == "general"
    assert [r["factor"] for r in kn95["substitute_rules"]] == [1.0, 1.0]
    surgical = next(i for i in items if i["code"] == "ppe.mask.surgical")
    rule = next(r for r in surgical["substitute_rules"] if r["code"] == "ppe.mask.kn95")
    assert rule["not_for_site_kinds"] == ["hospital"]
    oximeter = next(i for i in items if i["code"] == "medical_device.monitor.pulse_oximeter")
    assert oximeter["substitutes"] == [] and oximeter["substitute_rules"] == []
    barrel = next(i for i in items if i["code"] == "water.barrel.l18_9")
    assert barrel["substitute_rules"] == [
        {"code": "water.bottled.large_5l", "factor": round(5 / 18.9, 6), "not_for_site_kinds": []}
    ]


async def test_items_filter_by_category(client, auth: TokenFactory) -> None:
    r = await client.get("/v1/items", headers=auth("frontline"), params={"category": "water"})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items and {i["category"] for i in items} == {"water"}
    assert "water.bottled.small_550ml" in {i["code"] for i in items}

    none = await client.get("/v1/items", headers=auth("frontline"), params={"category": "no-such-category"})
    assert none.status_code == 200 and none.json()["items"] == []


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (
            "口罩",
            {"ppe.mask.n95", "ppe.mask.gb19083", "ppe.mask.kn95", "ppe.mask.surgical", "ppe.mask.disposable_medical"},
        ),
        ("制氧机", {"medical_device.oxygen.concentrator_5l", "medical_device.oxygen.concentrator_10l"}),
        ("Oxygen Concentrator", {"medical_device.oxygen.concentrator_5l", "medical_device.oxygen.concentrator_10l"}),
        ("wheelchair", {"medical_device.mobility.wheelchair"}),
    ],
)
async def test_items_search_in_chinese_and_english(client, auth: TokenFactory, q: str, expected: set[str]) -> None:
    r = await client.get("/v1/items", headers=auth("frontline"), params={"q": q})
    assert r.status_code == 200, r.text
    assert {i["code"] for i in r.json()["items"]} == expected


async def test_items_category_and_q_combine(client, auth: TokenFactory) -> None:
    r = await client.get("/v1/items", headers=auth("frontline"), params={"category": "infant", "q": "diaper"})
    assert r.status_code == 200, r.text
    codes = {i["code"] for i in r.json()["items"]}
    assert codes == {"infant.diaper.nb", "infant.diaper.s", "infant.diaper.m", "infant.diaper.l", "infant.diaper.xl"}


async def test_items_need_a_token(client) -> None:
    r = await client.get("/v1/items")
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].lower().startswith("bearer")
    bad = await client.get("/v1/items", headers={"Authorization": "Bearer not-a-jwt"})
    assert_problem(bad, 401)


# --- create ------------------------------------------------------------------------------------------


async def test_frontline_creates_a_site_of_its_own_org(client, auth: TokenFactory) -> None:
    r = await client.post("/v1/sites", headers=auth("frontline", org="org-a"), json=site_body())
    assert r.status_code == 201, r.text
    site = r.json()
    assert site["org"] == "org-a" and site["version"] == 1
    assert site["name"] == "瑞金医院" and site["kind"] == "hospital" and site["region_code"] == "310101"
    assert site["contact_phone"] == "+86 138 0000 0000" and site["contact_name"] == "王医生"
    assert r.headers["location"] == f"/v1/sites/{site['id']}"
    assert r.headers["etag"] == '"1"'

    got = await client.get(r.headers["location"], headers=auth("frontline", org="org-a"))
    assert got.status_code == 200 and got.json()["id"] == site["id"]


async def test_frontline_may_name_its_own_org(client, auth: TokenFactory) -> None:
    r = await client.post("/v1/sites", headers=auth("frontline", org="org-a"), json=site_body(org="org-a"))
    assert r.status_code == 201, r.text
    assert r.json()["org"] == "org-a"


async def test_coordinator_creates_a_site_for_another_org(client, auth: TokenFactory) -> None:
    r = await client.post("/v1/sites", headers=auth("coordinator", org="org-hub"), json=site_body(org="org-b"))
    assert r.status_code == 201, r.text
    assert r.json()["org"] == "org-b"
    # the owning org now sees it as its own (contacts shown)
    got = await client.get(f"/v1/sites/{r.json()['id']}", headers=auth("frontline", org="org-b"))
    assert got.json()["contact_phone"] == "+86 138 0000 0000"


async def test_frontline_may_not_create_a_site_for_another_org(client, auth: TokenFactory) -> None:
    r = await client.post("/v1/sites", headers=auth("frontline", org="org-a"), json=site_body(org="org-b"))
    assert_problem(r, 403)
    listed = await client.get("/v1/sites", headers=auth("coordinator"))
    assert listed.json()["items"] == []


async def test_donor_may_not_create_a_site(client, auth: TokenFactory) -> None:
    r = await client.post("/v1/sites", headers=auth("donor", org="org-donor"), json=site_body())
    assert_problem(r, 403)


@pytest.mark.parametrize(
    ("over", "loc"),
    [
        ({"region_code": "31010"}, ["body", "region_code"]),
        ({"region_code": "910101"}, ["body", "region_code"]),
        ({"region_code": "31010a"}, ["body", "region_code"]),
        ({"lat": 90.5}, ["body", "lat"]),
        ({"lon": -181}, ["body", "lon"]),
        ({"kind": "castle"}, ["body", "kind"]),
        ({"contact_phone": "call me"}, ["body", "contact_phone"]),
        ({"name": "   "}, ["body", "name"]),
        ({"colour": "red"}, ["body", "colour"]),
    ],
)
async def test_site_validation_errors_are_problem_json(client, auth: TokenFactory, over: dict, loc: list) -> None:
    r = await client.post("/v1/sites", headers=auth("frontline", org="org-a"), json=site_body(**over))
    body = assert_problem(r, 422)
    assert loc in error_locs(body)


async def test_site_missing_required_fields(client, auth: TokenFactory) -> None:
    r = await client.post("/v1/sites", headers=auth("frontline"), json={"name": "x"})
    locs = error_locs(assert_problem(r, 422))
    assert ["body", "kind"] in locs and ["body", "region_code"] in locs


# --- get ---------------------------------------------------------------------------------------------


async def test_contacts_hidden_from_other_orgs(client, auth: TokenFactory) -> None:
    site = await create_site(client, auth("frontline", org="org-a"))
    url = f"/v1/sites/{site['id']}"

    for headers in (auth("frontline", org="org-a"), auth("coordinator", org="org-hub")):
        r = await client.get(url, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["contact_name"] == "王医生" and r.json()["contact_phone"] == "+86 138 0000 0000"

    for headers in (auth("frontline", org="org-b"), auth("donor", org="org-donor"), auth("logistics", org="org-a2")):
        r = await client.get(url, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["contact_name"] is None and body["contact_phone"] is None
        assert body["name"] == "瑞金医院" and body["address"] == "上海市黄浦区瑞金二路197号"
        assert "138 0000" not in r.text


async def test_contacts_hidden_in_lists_too(client, auth: TokenFactory) -> None:
    await create_site(client, auth("frontline", org="org-a"))
    other = await client.get("/v1/sites", headers=auth("donor", org="org-donor"))
    assert other.status_code == 200
    assert [s["contact_phone"] for s in other.json()["items"]] == [None]
    assert "138 0000" not in other.text
    own = await client.get("/v1/sites", headers=auth("frontline", org="org-a"))
    assert [s["contact_phone"] for s in own.json()["items"]] == ["+86 138 0000 0000"]


async def test_get_unknown_site_is_404(client, auth: TokenFactory) -> None:
    r = await client.get(f"/v1/sites/{uuid.uuid4()}", headers=auth("frontline"))
    body = assert_problem(r, 404)
    assert body["type"].endswith("site-not-found")
    bad = await client.get("/v1/sites/not-a-uuid", headers=auth("frontline"))
    assert_problem(bad, 422)


async def test_get_site_needs_a_token(client, auth: TokenFactory) -> None:
    site = await create_site(client, auth("frontline"))
    assert_problem(await client.get(f"/v1/sites/{site['id']}"), 401)


# --- list --------------------------------------------------------------------------------------------


async def _seed_sites(client, auth: TokenFactory) -> dict[str, str]:
    a, b, coord = auth("frontline", org="org-a"), auth("frontline", org="org-b"), auth("coordinator")
    made = {
        "sh-hospital": await create_site(client, a, name="上海医院", region_code="310101"),
        "sh-shelter": await create_site(client, a, name="上海安置点", kind="shelter", region_code="310104"),
        "hb-hospital": await create_site(client, b, name="武汉医院", region_code="420102"),
        "hb-school": await create_site(client, b, name="武汉学校", kind="school", region_code="420103"),
        "hn-shelter": await create_site(client, coord, name="郑州安置点", kind="shelter", region_code="410105"),
    }
    return {k: v["id"] for k, v in made.items()}


async def test_list_sites_newest_first(client, auth: TokenFactory) -> None:
    ids = await _seed_sites(client, auth)
    r = await client.get("/v1/sites", headers=auth("coordinator"))
    assert r.status_code == 200, r.text
    assert [s["id"] for s in r.json()["items"]] == list(reversed(ids.values()))
    assert r.json()["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"region_code": "31"}, {"sh-hospital", "sh-shelter"}),
        ({"region_code": "3101"}, {"sh-hospital", "sh-shelter"}),
        ({"region_code": "310104"}, {"sh-shelter"}),
        ({"region_code": "42"}, {"hb-hospital", "hb-school"}),
        ({"region_code": "11"}, set()),
        ({"kind": "shelter"}, {"sh-shelter", "hn-shelter"}),
        ({"kind": "school"}, {"hb-school"}),
        ({"org": "org-a"}, {"sh-hospital", "sh-shelter"}),
        ({"org": "org-hub"}, {"hn-shelter"}),
        ({"org": "org-b", "kind": "hospital"}, {"hb-hospital"}),
        ({"region_code": "4", "kind": "shelter"}, None),
    ],
)
async def test_list_sites_filters(client, auth: TokenFactory, params: dict, expected: set[str] | None) -> None:
    ids = await _seed_sites(client, auth)
    r = await client.get("/v1/sites", headers=auth("frontline", org="org-z"), params=params)
    if expected is None:  # a one-digit prefix is refused
        assert "region_code" in str(error_locs(assert_problem(r, 422)))
        return
    assert r.status_code == 200, r.text
    by_id = {v: k for k, v in ids.items()}
    assert {by_id[s["id"]] for s in r.json()["items"]} == expected


async def test_list_sites_rejects_bad_filters(client, auth: TokenFactory) -> None:
    h = auth("frontline")
    assert_problem(await client.get("/v1/sites", headers=h, params={"kind": "castle"}), 422)
    assert_problem(await client.get("/v1/sites", headers=h, params={"region_code": "31a"}), 422)
    assert_problem(await client.get("/v1/sites", headers=h, params={"limit": 0}), 422)
    assert_problem(await client.get("/v1/sites", headers=h, params={"limit": 501}), 422)
    body = assert_problem(await client.get("/v1/sites", headers=h, params={"cursor": "garbage!!"}), 422)
    assert ["query", "cursor"] in error_locs(body)


async def test_list_sites_paginates_without_duplicates_or_omissions(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    made = [(await create_site(client, h, name=f"站点{i}", region_code=f"3101{i:02d}"))["id"] for i in range(7)]
    await create_site(client, auth("frontline", org="org-b"), region_code="420101")

    ids, pages = await collect_pages(client, "/v1/sites", h, {"org": "org-a"})
    assert pages == 4
    assert ids == list(reversed(made))
    assert len(set(ids)) == 7

    all_ids, pages = await collect_pages(client, "/v1/sites", h, {}, limit=3)
    assert pages == 3 and len(all_ids) == len(set(all_ids)) == 8


async def test_list_sites_exact_multiple_of_limit_ends_cleanly(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    for i in range(4):
        await create_site(client, h, name=f"站点{i}")
    ids, pages = await collect_pages(client, "/v1/sites", h, {})
    assert len(set(ids)) == 4 and pages == 2


# --- update ------------------------------------------------------------------------------------------


async def test_patch_site_with_if_match(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    url = f"/v1/sites/{site['id']}"
    got = await client.get(url, headers=h)
    etag = got.headers["etag"]
    assert etag == '"1"'

    r = await client.patch(url, headers={**h, "If-Match": etag}, json={"name": "瑞金医院北院", "lat": 31.3})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "瑞金医院北院" and r.json()["lat"] == 31.3 and r.json()["version"] == 2
    assert r.json()["kind"] == "hospital" and r.json()["contact_phone"] == "+86 138 0000 0000"
    assert r.headers["etag"] == '"2"' != etag

    again = await client.get(url, headers=h)
    assert again.headers["etag"] == '"2"' and again.json()["name"] == "瑞金医院北院"
    assert again.json()["updated_at"] >= site["updated_at"]


async def test_patch_site_without_if_match_is_428(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    r = await client.patch(f"/v1/sites/{site['id']}", headers=h, json={"name": "新名字"})
    assert_problem(r, 428)
    assert (await client.get(f"/v1/sites/{site['id']}", headers=h)).json()["name"] == "瑞金医院"


async def test_patch_site_with_stale_etag_is_412(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    url = f"/v1/sites/{site['id']}"
    first = await client.patch(url, headers={**h, "If-Match": '"1"'}, json={"name": "第一次"})
    assert first.status_code == 200, first.text
    stale = await client.patch(url, headers={**h, "If-Match": '"1"'}, json={"name": "第二次"})
    assert_problem(stale, 412)
    got = await client.get(url, headers=h)
    assert got.json()["name"] == "第一次" and got.headers["etag"] == '"2"'


async def test_patch_site_of_another_org_is_403(client, auth: TokenFactory) -> None:
    site = await create_site(client, auth("frontline", org="org-a"))
    url = f"/v1/sites/{site['id']}"
    r = await client.patch(url, headers={**auth("frontline", org="org-b"), "If-Match": '"1"'}, json={"name": "x"})
    assert_problem(r, 403)
    coord = await client.patch(url, headers={**auth("coordinator"), "If-Match": '"1"'}, json={"kind": "shelter"})
    assert coord.status_code == 200, coord.text
    assert coord.json()["kind"] == "shelter" and coord.json()["org"] == "org-a"


async def test_patch_site_validation_and_unknown(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    url = f"/v1/sites/{site['id']}"
    for body, loc in (
        ({"region_code": "00000"}, ["body", "region_code"]),
        ({"lat": -91}, ["body", "lat"]),
        ({"org": "org-b"}, ["body", "org"]),
    ):
        r = await client.patch(url, headers={**h, "If-Match": '"1"'}, json=body)
        assert loc in error_locs(assert_problem(r, 422))
    missing = await client.patch(f"/v1/sites/{uuid.uuid4()}", headers={**h, "If-Match": '"1"'}, json={"name": "x"})
    assert_problem(missing, 404)
    assert (await client.get(url, headers=h)).headers["etag"] == '"1"'


async def test_patch_site_null_required_field_is_ignored_not_stored(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    url = f"/v1/sites/{site['id']}"
    r = await client.patch(url, headers={**h, "If-Match": '"1"'}, json={"name": None, "contact_phone": None})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "瑞金医院" and r.json()["contact_phone"] is None


async def test_moving_a_site_moves_its_active_needs(client, auth: TokenFactory, gateway, redis) -> None:
    """Needs keep a copy of the site's region for filters and roll-ups: a corrected region follows."""
    owner = auth("frontline", org="org-move")
    site = await create_site(client, owner, region_code="310101")
    active = await create_need(client, owner, site["id"])
    closed = await create_need(client, owner, site["id"], {"item_code": "food.grain.rice", "quantity": 5})
    await client.post(f"/v1/needs/{closed['id']}/close", headers=owner, json={"reason": "done"})
    etag = (await client.get(f"/v1/sites/{site['id']}", headers=owner)).headers["etag"]
    r = await client.patch(
        f"/v1/sites/{site['id']}", headers={**owner, "If-Match": etag}, json={"region_code": "320102"}
    )
    assert r.status_code == 200, r.text
    moved = (await client.get("/v1/needs?region_code=3201", headers=owner)).json()["items"]
    assert [n["id"] for n in moved] == [active["id"]]
    assert (await client.get(f"/v1/needs/{closed['id']}", headers=owner)).json()["region_code"] == "310101"
    await publish(gateway, "needs")
    updated = [e for e in await read_events(redis, "needs.events") if e["type"] == "reliefhub.needs.need.updated"]
    assert [e["data"]["region_code"] for e in updated] == ["320102"]
