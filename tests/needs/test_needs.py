"""Needs through HTTP: intake, duplicates and merging, filters and pages, edits, verification, closing,
re-confirmation and the staleness sweep."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.worker import run_job_once
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import N95, QUILT, RICE, WATER
from tests.helpers.http import collect_pages
from tests.helpers.needs import create_need, create_site, need_body
from tests.helpers.problems import assert_problem, error_locs
from tests.helpers.streams import runtime

# --- create ------------------------------------------------------------------------------------------


async def test_create_need(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h, region_code="310104")
    needed_by = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    r = await client.post(
        "/v1/needs",
        headers=h,
        json=need_body(
            site["id"],
            {"item_code": N95, "quantity": 500},
            {"item_code": RICE, "quantity": 200, "unit": "bag", "notes": "25kg 袋装"},
            title="隔离病房物资",
            urgency="high",
            beneficiaries=120,
            needed_by=needed_by.isoformat(),
        ),
    )
    assert r.status_code == 201, r.text
    need = r.json()
    assert r.headers["location"] == f"/v1/needs/{need['id']}"
    assert r.headers["etag"] == '"1"'
    assert need["site_id"] == site["id"] and need["org"] == "org-a" and need["region_code"] == "310104"
    assert need["title"] == "隔离病房物资" and need["urgency"] == "high" and need["beneficiaries"] == 120
    assert datetime.fromisoformat(need["needed_by"]) == needed_by
    assert need["status"] == "open" and need["verification"] == "unverified"
    assert need["duplicate_of"] is None and need["close_reason"] is None and need["version"] == 1
    n95, rice = need["lines"]
    assert (n95["item_code"], n95["quantity"], n95["unit"], n95["notes"]) == (N95, 500, "piece", None)
    # Bags are a pack of the item: converted on intake to its base unit (25 kg a bag).
    assert (rice["item_code"], rice["quantity"], rice["unit"], rice["notes"]) == (RICE, 5000, "kg", "25kg 袋装")
    assert all(line["quantity_matched"] == 0 and line["quantity_delivered"] == 0 for line in need["lines"])

    got = await client.get(r.headers["location"], headers=auth("donor", org="org-donor"))
    assert got.status_code == 200 and got.headers["etag"] == '"1"'
    assert got.json() == need


async def test_line_unit_defaults_from_catalog(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    need = await create_need(
        client,
        h,
        site["id"],
        {"item_code": WATER, "quantity": 3},
        {"item_code": QUILT, "quantity": 4},
        {"item_code": "medical_device.oxygen.concentrator_5l", "quantity": 1},
    )
    assert [line["unit"] for line in need["lines"]] == ["carton", "piece", "unit"]


async def test_line_units_are_converted_to_base_units_on_intake(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    need = await create_need(
        client,
        h,
        site["id"],
        {"item_code": N95, "quantity": 3, "unit": "carton"},
        {"item_code": N95, "quantity": 7, "unit": "box"},
        {"item_code": WATER, "quantity": 2, "unit": "pallet"},
    )
    assert [(x["quantity"], x["unit"]) for x in need["lines"]] == [(1200, "piece"), (140, "piece"), (120, "carton")]


async def test_a_unit_that_is_neither_the_items_nor_a_pack_is_422_naming_the_allowed(
    client, auth: TokenFactory
) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    r = await client.post(
        "/v1/needs",
        headers=h,
        json=need_body(
            site["id"], {"item_code": N95, "quantity": 5}, {"item_code": RICE, "quantity": 2, "unit": "barrel"}
        ),
    )
    problem = assert_problem(r, 422, "unknown-unit")
    assert error_locs(problem) == [["body", "lines", 1, "unit"]]
    assert "kg, bag" in problem["errors"][0]["msg"] and "'barrel'" in problem["detail"]


async def test_coordinator_may_post_for_any_site(client, auth: TokenFactory) -> None:
    site = await create_site(client, auth("frontline", org="org-a"))
    need = await create_need(client, auth("coordinator", org="org-hub"), site["id"])
    assert need["org"] == "org-a"


async def test_unknown_item_code_is_422_and_nothing_created(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    r = await client.post(
        "/v1/needs",
        headers=h,
        json=need_body(
            site["id"], {"item_code": N95, "quantity": 1}, {"item_code": "ppe.mask.unobtainium", "quantity": 1}
        ),
    )
    body = assert_problem(r, 422)
    assert body["type"].endswith("unknown-item") and "ppe.mask.unobtainium" in body["detail"]
    assert error_locs(body) == [["body", "lines", 1, "item_code"]]
    assert (await client.get("/v1/needs", headers=h)).json()["items"] == []


@pytest.mark.parametrize(
    ("over", "loc"),
    [
        ({"lines": [{"item_code": N95, "quantity": 0}]}, ["body", "lines", 0, "quantity"]),
        ({"lines": [{"item_code": N95, "quantity": -5}]}, ["body", "lines", 0, "quantity"]),
        ({"lines": []}, ["body", "lines"]),
        ({"urgency": "whenever"}, ["body", "urgency"]),
        ({"needed_by": "2030-01-01T00:00:00"}, ["body", "needed_by"]),
        ({"beneficiaries": -1}, ["body", "beneficiaries"]),
        ({"title": ""}, ["body", "title"]),
        ({"status": "fulfilled"}, ["body", "status"]),
        ({"site_id": "not-a-uuid"}, ["body", "site_id"]),
    ],
)
async def test_need_validation_errors(client, auth: TokenFactory, over: dict, loc: list) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    r = await client.post("/v1/needs", headers=h, json=need_body(site["id"], **over))
    assert loc in error_locs(assert_problem(r, 422))


async def test_frontline_may_not_post_to_another_orgs_site(client, auth: TokenFactory) -> None:
    site = await create_site(client, auth("frontline", org="org-a"))
    r = await client.post("/v1/needs", headers=auth("frontline", org="org-b"), json=need_body(site["id"]))
    assert assert_problem(r, 403)["type"].endswith("not-your-site")
    assert (await client.get("/v1/needs", headers=auth("coordinator"))).json()["items"] == []


async def test_donor_may_not_post_needs(client, auth: TokenFactory) -> None:
    site = await create_site(client, auth("frontline", org="org-a"))
    assert_problem(await client.post("/v1/needs", headers=auth("donor", org="org-a"), json=need_body(site["id"])), 403)


async def test_need_for_unknown_site_is_404(client, auth: TokenFactory) -> None:
    r = await client.post("/v1/needs", headers=auth("frontline"), json=need_body(str(uuid.uuid4())))
    assert assert_problem(r, 404)["type"].endswith("site-not-found")


async def test_get_unknown_need_is_404(client, auth: TokenFactory) -> None:
    r = await client.get(f"/v1/needs/{uuid.uuid4()}", headers=auth("frontline"))
    assert assert_problem(r, 404)["type"].endswith("need-not-found")


async def test_needs_need_a_token(client, auth: TokenFactory) -> None:
    site = await create_site(client, auth("frontline"))
    assert_problem(await client.post("/v1/needs", json=need_body(site["id"])), 401)
    assert_problem(await client.get("/v1/needs"), 401)


async def test_idempotency_key_replays_the_first_response(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    key = {"Idempotency-Key": "need-abc-1"}
    first = await client.post("/v1/needs", headers={**h, **key}, json=need_body(site["id"]))
    second = await client.post("/v1/needs", headers={**h, **key}, json=need_body(site["id"]))
    assert first.status_code == second.status_code == 201, second.text
    assert first.json()["id"] == second.json()["id"]
    assert len((await client.get("/v1/needs", headers=h)).json()["items"]) == 1


# --- duplicates --------------------------------------------------------------------------------------


async def test_second_need_for_same_item_is_flagged_duplicate(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    other_site = await create_site(client, h, name="另一家医院")
    first = await create_need(client, h, site["id"], {"item_code": N95, "quantity": 100})
    second = await create_need(
        client, h, site["id"], {"item_code": RICE, "quantity": 5}, {"item_code": N95, "quantity": 50}
    )
    assert second["duplicate_of"] == first["id"] and second["id"] != first["id"]
    assert second["status"] == "open"

    unrelated = await create_need(client, h, site["id"], {"item_code": WATER, "quantity": 5})
    assert unrelated["duplicate_of"] is None
    elsewhere = await create_need(client, h, other_site["id"], {"item_code": N95, "quantity": 5})
    assert elsewhere["duplicate_of"] is None

    got = await client.get(f"/v1/needs/{first['id']}", headers=h)
    assert got.json()["duplicate_of"] is None and got.json()["version"] == 1


async def test_closed_need_is_no_twin(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    first = await create_need(client, h, site["id"])
    closed = await client.post(f"/v1/needs/{first['id']}/close", headers=h, json={"reason": "已收到"})
    assert closed.status_code == 200, closed.text
    second = await create_need(client, h, site["id"])
    assert second["duplicate_of"] is None


async def test_merge_into_open_twin(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    first = await create_need(
        client, h, site["id"], {"item_code": N95, "quantity": 100}, urgency="normal", beneficiaries=50
    )
    soon = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    r = await client.post(
        "/v1/needs",
        headers=h,
        params={"on_duplicate": "merge"},
        json=need_body(
            site["id"],
            {"item_code": N95, "quantity": 40},
            {"item_code": RICE, "quantity": 10},
            urgency="critical",
            beneficiaries=80,
            needed_by=soon.isoformat(),
        ),
    )
    assert r.status_code == 200, r.text
    merged = r.json()
    assert merged["id"] == first["id"]
    assert r.headers["location"] == f"/v1/needs/{first['id']}"
    assert merged["version"] == 2 and r.headers["etag"] == '"2"'
    assert merged["urgency"] == "critical" and merged["beneficiaries"] == 80
    assert datetime.fromisoformat(merged["needed_by"]) == soon
    assert [(line["item_code"], line["quantity"]) for line in merged["lines"]] == [(N95, 140), (RICE, 10)]

    listed = (await client.get("/v1/needs", headers=h)).json()["items"]
    assert [n["id"] for n in listed] == [first["id"]]
    got = (await client.get(f"/v1/needs/{first['id']}", headers=h)).json()
    assert got["lines"] == merged["lines"] and got["version"] == 2


async def test_merge_never_lowers_urgency(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    first = await create_need(client, h, site["id"], urgency="high")
    r = await client.post(
        "/v1/needs", headers=h, params={"on_duplicate": "merge"}, json=need_body(site["id"], urgency="low")
    )
    assert r.status_code == 200, r.text
    assert r.json()["id"] == first["id"] and r.json()["urgency"] == "high"
    assert r.json()["lines"][0]["quantity"] == 200


async def test_merge_without_twin_creates(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    r = await client.post("/v1/needs", headers=h, params={"on_duplicate": "merge"}, json=need_body(site["id"]))
    assert r.status_code == 201, r.text
    assert r.json()["duplicate_of"] is None
    bad = await client.post("/v1/needs", headers=h, params={"on_duplicate": "ignore"}, json=need_body(site["id"]))
    assert ["query", "on_duplicate"] in error_locs(assert_problem(bad, 422))


# --- list --------------------------------------------------------------------------------------------


async def _seed_needs(client, auth: TokenFactory) -> dict[str, dict]:
    a, b = auth("frontline", org="org-a"), auth("frontline", org="org-b")
    sh = await create_site(client, a, region_code="310101")
    hb = await create_site(client, b, region_code="420102", kind="shelter")
    made = {
        "sh-n95": await create_need(client, a, sh["id"], {"item_code": N95, "quantity": 1}, urgency="critical"),
        "sh-rice": await create_need(client, a, sh["id"], {"item_code": RICE, "quantity": 1}, urgency="low"),
        "hb-n95": await create_need(
            client, b, hb["id"], {"item_code": N95, "quantity": 1}, {"item_code": QUILT, "quantity": 2}
        ),
        "hb-water": await create_need(client, b, hb["id"], {"item_code": WATER, "quantity": 1}, urgency="critical"),
    }
    closed = await client.post(f"/v1/needs/{made['sh-rice']['id']}/close", headers=a, json={"reason": "不需要了"})
    assert closed.status_code == 200, closed.text
    return {"sh": sh, "hb": hb, **made}


async def test_list_needs_newest_first(client, auth: TokenFactory) -> None:
    seeded = await _seed_needs(client, auth)
    r = await client.get("/v1/needs", headers=auth("donor", org="org-donor"))
    assert r.status_code == 200, r.text
    assert [n["id"] for n in r.json()["items"]] == [
        seeded[k]["id"] for k in ("hb-water", "hb-n95", "sh-rice", "sh-n95")
    ]
    assert all(n["lines"] for n in r.json()["items"])


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "open"}, {"sh-n95", "hb-n95", "hb-water"}),
        ({"status": "closed"}, {"sh-rice"}),
        ({"status": "expired"}, set()),
        ({"site_id": "sh"}, {"sh-n95", "sh-rice"}),
        ({"region_code": "42"}, {"hb-n95", "hb-water"}),
        ({"region_code": "310101"}, {"sh-n95", "sh-rice"}),
        ({"region_code": "3102"}, set()),
        ({"item_code": N95}, {"sh-n95", "hb-n95"}),
        ({"item_code": QUILT}, {"hb-n95"}),
        ({"urgency": "critical"}, {"sh-n95", "hb-water"}),
        ({"urgency": "normal"}, {"hb-n95"}),
        ({"urgency": "critical", "region_code": "31", "status": "open"}, {"sh-n95"}),
        ({"item_code": N95, "site_id": "hb"}, {"hb-n95"}),
    ],
)
async def test_list_needs_filters(client, auth: TokenFactory, params: dict, expected: set[str]) -> None:
    seeded = await _seed_needs(client, auth)
    if "site_id" in params:
        params = {**params, "site_id": seeded[params["site_id"]]["id"]}
    r = await client.get("/v1/needs", headers=auth("coordinator"), params=params)
    assert r.status_code == 200, r.text
    by_id = {v["id"]: k for k, v in seeded.items()}
    assert {by_id[n["id"]] for n in r.json()["items"]} == expected


@pytest.mark.parametrize(
    "params",
    [{"status": "done"}, {"urgency": "asap"}, {"site_id": "x"}, {"region_code": "3"}, {"region_code": "3101011"}],
)
async def test_list_needs_rejects_bad_filters(client, auth: TokenFactory, params: dict) -> None:
    r = await client.get("/v1/needs", headers=auth("coordinator"), params=params)
    assert ["query", next(iter(params))] in error_locs(assert_problem(r, 422))


async def test_list_needs_paginates(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    other = await create_site(client, h, name="另一处", region_code="420102")
    made = [(await create_need(client, h, site["id"], title=f"需求{i}"))["id"] for i in range(5)]
    await create_need(client, h, other["id"])

    ids, pages = await collect_pages(client, "/v1/needs", h, {"site_id": site["id"]})
    assert ids == list(reversed(made)) and pages == 3
    ids, pages = await collect_pages(client, "/v1/needs", h, {"item_code": N95}, limit=1)
    assert len(ids) == len(set(ids)) == 6 and pages == 6


# --- update ------------------------------------------------------------------------------------------


async def test_patch_need_replaces_lines(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    need = await create_need(
        client, h, site["id"], {"item_code": N95, "quantity": 10}, {"item_code": RICE, "quantity": 5}
    )
    url = f"/v1/needs/{need['id']}"
    etag = (await client.get(url, headers=h)).headers["etag"]
    r = await client.patch(
        url,
        headers={**h, "If-Match": etag},
        json={
            "title": "改后的标题",
            "urgency": "critical",
            "lines": [{"item_code": WATER, "quantity": 7, "notes": "急"}],
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["etag"] == '"2"' and body["version"] == 2
    assert body["title"] == "改后的标题" and body["urgency"] == "critical"
    assert [(x["item_code"], x["quantity"], x["unit"], x["notes"]) for x in body["lines"]] == [
        (WATER, 7, "carton", "急")
    ]
    assert datetime.fromisoformat(body["confirmed_at"]) >= datetime.fromisoformat(need["confirmed_at"])
    got = (await client.get(url, headers=h)).json()
    assert got["lines"] == body["lines"]
    assert (await client.get("/v1/needs", headers=h, params={"item_code": N95})).json()["items"] == []


async def test_patch_need_keeps_lines_when_not_sent(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    need = await create_need(client, h, site["id"])
    r = await client.patch(f"/v1/needs/{need['id']}", headers={**h, "If-Match": '"1"'}, json={"beneficiaries": 9})
    assert r.status_code == 200, r.text
    assert r.json()["beneficiaries"] == 9 and r.json()["lines"] == need["lines"]


async def test_patch_need_preconditions(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    need = await create_need(client, h, site["id"])
    url = f"/v1/needs/{need['id']}"
    assert_problem(await client.patch(url, headers=h, json={"title": "x"}), 428)
    assert_problem(await client.patch(url, headers={**h, "If-Match": '"7"'}, json={"title": "x"}), 412)
    other = {**auth("frontline", org="org-b"), "If-Match": '"1"'}
    assert_problem(await client.patch(url, headers=other, json={"title": "x"}), 403)
    missing = await client.patch(f"/v1/needs/{uuid.uuid4()}", headers={**h, "If-Match": '"1"'}, json={"title": "x"})
    assert_problem(missing, 404)
    unknown = await client.patch(
        url, headers={**h, "If-Match": '"1"'}, json={"lines": [{"item_code": "nope", "quantity": 1}]}
    )
    assert error_locs(assert_problem(unknown, 422)) == [["body", "lines", 0, "item_code"]]
    extra = await client.patch(url, headers={**h, "If-Match": '"1"'}, json={"status": "fulfilled"})
    assert ["body", "status"] in error_locs(assert_problem(extra, 422))

    got = await client.get(url, headers=h)
    assert got.headers["etag"] == '"1"' and got.json()["title"] == need["title"]
    assert got.json()["lines"] == need["lines"]


async def test_patch_closed_need_is_409(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    need = await create_need(client, h, site["id"])
    url = f"/v1/needs/{need['id']}"
    assert (await client.post(f"{url}/close", headers=h, json={"reason": "够了"})).status_code == 200
    etag = (await client.get(url, headers=h)).headers["etag"]
    r = await client.patch(url, headers={**h, "If-Match": etag}, json={"title": "再改"})
    assert assert_problem(r, 409)["type"].endswith("need-not-open")


async def test_patch_lines_refused_once_matched(client, auth: TokenFactory, engine: AsyncEngine) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    need = await create_need(client, h, site["id"])
    async with engine.begin() as conn:  # what matching would have recorded
        await conn.execute(
            text("UPDATE needs.need_line SET quantity_matched = 10 WHERE need_id = :id"), {"id": need["id"]}
        )
    url = f"/v1/needs/{need['id']}"
    r = await client.patch(url, headers={**h, "If-Match": '"1"'}, json={"lines": [{"item_code": RICE, "quantity": 1}]})
    assert assert_problem(r, 409)["type"].endswith("need-already-matched")
    ok = await client.patch(url, headers={**h, "If-Match": '"1"'}, json={"title": "只改标题"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["lines"][0]["quantity_matched"] == 10


# --- verify, close, confirm --------------------------------------------------------------------------


async def test_coordinator_verifies(client, auth: TokenFactory) -> None:
    site = await create_site(client, auth("frontline", org="org-a"))
    need = await create_need(client, auth("frontline", org="org-a"), site["id"])
    r = await client.post(f"/v1/needs/{need['id']}/verify", headers=auth("coordinator"), json={"verdict": "verified"})
    assert r.status_code == 200, r.text
    assert r.json()["verification"] == "verified" and r.json()["verification_reason"] is None
    assert r.json()["version"] == 2 and r.headers["etag"] == '"2"' and r.json()["status"] == "open"


async def test_rejection_stores_reason(client, auth: TokenFactory) -> None:
    site = await create_site(client, auth("frontline", org="org-a"))
    need = await create_need(client, auth("frontline", org="org-a"), site["id"])
    r = await client.post(
        f"/v1/needs/{need['id']}/verify",
        headers=auth("coordinator"),
        json={"verdict": "rejected", "reason": "电话核实：该医院未提出此需求"},
    )
    assert r.status_code == 200, r.text
    got = (await client.get(f"/v1/needs/{need['id']}", headers=auth("frontline", org="org-a"))).json()
    assert got["verification"] == "rejected" and got["verification_reason"] == "电话核实：该医院未提出此需求"


async def test_only_coordinators_verify(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    need = await create_need(client, h, site["id"])
    url = f"/v1/needs/{need['id']}/verify"
    for headers in (h, auth("donor", org="org-a"), auth("working_group", org="wg", group="medical_device")):
        assert_problem(await client.post(url, headers=headers, json={"verdict": "verified"}), 403)
    bad = await client.post(url, headers=auth("coordinator"), json={"verdict": "maybe"})
    assert ["body", "verdict"] in error_locs(assert_problem(bad, 422))
    got = (await client.get(f"/v1/needs/{need['id']}", headers=h)).json()
    assert got["verification"] == "unverified" and got["version"] == 1
    assert_problem(
        await client.post(
            f"/v1/needs/{uuid.uuid4()}/verify", headers=auth("coordinator"), json={"verdict": "verified"}
        ),
        404,
    )


async def test_close_by_owner_then_again_is_409(client, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    need = await create_need(client, h, site["id"])
    url = f"/v1/needs/{need['id']}/close"
    assert_problem(await client.post(url, headers=auth("frontline", org="org-b"), json={"reason": "x"}), 403)
    assert ["body", "reason"] in error_locs(assert_problem(await client.post(url, headers=h, json={}), 422))
    r = await client.post(url, headers=h, json={"reason": "  已从别处获得  "})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed" and r.json()["close_reason"] == "已从别处获得" and r.json()["version"] == 2
    again = await client.post(url, headers=h, json={"reason": "再关一次"})
    assert assert_problem(again, 409)["type"].endswith("need-not-open")
    got = (await client.get(f"/v1/needs/{need['id']}", headers=h)).json()
    assert got["close_reason"] == "已从别处获得" and got["version"] == 2


async def test_coordinator_closes_any_need(client, auth: TokenFactory) -> None:
    site = await create_site(client, auth("frontline", org="org-a"))
    need = await create_need(client, auth("frontline", org="org-a"), site["id"])
    r = await client.post(f"/v1/needs/{need['id']}/close", headers=auth("coordinator"), json={"reason": "重复登记"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed" and r.json()["close_reason"] == "重复登记"
    verify = await client.post(
        f"/v1/needs/{need['id']}/verify", headers=auth("coordinator"), json={"verdict": "verified"}
    )
    assert_problem(verify, 409)


async def test_confirm_refreshes_confirmed_at(client, auth: TokenFactory, engine: AsyncEngine) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    need = await create_need(client, h, site["id"])
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE needs.need SET confirmed_at = now() - interval '10 days' WHERE id = :id"), {"id": need["id"]}
        )
    url = f"/v1/needs/{need['id']}"
    assert_problem(await client.post(f"{url}/confirm", headers=auth("frontline", org="org-b")), 403)
    before = datetime.fromisoformat((await client.get(url, headers=h)).json()["confirmed_at"])
    assert before < datetime.now(UTC) - timedelta(days=9)
    r = await client.post(f"{url}/confirm", headers=h)
    assert r.status_code == 200, r.text
    assert datetime.fromisoformat(r.json()["confirmed_at"]) > datetime.now(UTC) - timedelta(minutes=1)
    assert r.json()["version"] == 2 and r.headers["etag"] == '"2"'

    await client.post(f"{url}/close", headers=h, json={"reason": "done"})
    assert_problem(await client.post(f"{url}/confirm", headers=h), 409)


# --- staleness ---------------------------------------------------------------------------------------


async def _run_expiry(gateway) -> int | None:
    rt = runtime(gateway, "needs")
    job = next(j for j in rt.spec.jobs if j.name == "expire-stale-needs")
    return await run_job_once(rt, job)


async def test_stale_needs_expire(client, auth: TokenFactory, engine: AsyncEngine, gateway) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    overdue = await create_need(client, h, site["id"], {"item_code": N95, "quantity": 1}, needed_by=past)
    unconfirmed = await create_need(client, h, site["id"], {"item_code": RICE, "quantity": 1})
    reconfirmed = await create_need(client, h, site["id"], {"item_code": WATER, "quantity": 1})
    fresh = await create_need(
        client,
        h,
        site["id"],
        {"item_code": QUILT, "quantity": 1},
        needed_by=(datetime.now(UTC) + timedelta(days=2)).isoformat(),
    )
    closed = await create_need(client, h, site["id"], {"item_code": "hygiene.body.soap", "quantity": 1}, needed_by=past)
    assert (await client.post(f"/v1/needs/{closed['id']}/close", headers=h, json={"reason": "x"})).status_code == 200
    days = runtime(gateway, "needs").settings.need_confirm_days
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE needs.need SET confirmed_at = now() - make_interval(days => :d) WHERE id = ANY(:ids)"),
            {"d": days + 1, "ids": [uuid.UUID(unconfirmed["id"]), uuid.UUID(reconfirmed["id"])]},
        )
        await conn.execute(text("DELETE FROM needs.outbox_event"))
    assert (await client.post(f"/v1/needs/{reconfirmed['id']}/confirm", headers=h)).status_code == 200

    assert await _run_expiry(gateway) == 2

    async def status(need: dict) -> tuple[str, int]:
        got = (await client.get(f"/v1/needs/{need['id']}", headers=h)).json()
        return got["status"], got["version"]

    assert await status(overdue) == ("expired", 2)
    assert await status(unconfirmed) == ("expired", 2)
    assert await status(reconfirmed) == ("open", 2)
    assert await status(fresh) == ("open", 1)
    assert await status(closed) == ("closed", 2)
    got = (await client.get(f"/v1/needs/{overdue['id']}", headers=h)).json()
    assert got["close_reason"] and "expired" in got["close_reason"]

    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT subject, envelope FROM needs.outbox_event WHERE type = 'reliefhub.needs.need.expired'")
            )
        ).all()
    assert {r.subject for r in rows} == {overdue["id"], unconfirmed["id"]}
    for row in rows:
        assert row.envelope["data"]["status"] == "expired" and row.envelope["data"]["id"] == row.subject
        assert row.envelope["data"]["version"] == 2 and row.envelope["data"]["lines"]

    assert await _run_expiry(gateway) == 0
    listed = await client.get("/v1/needs", headers=h, params={"status": "expired"})
    assert {n["id"] for n in listed.json()["items"]} == {overdue["id"], unconfirmed["id"]}
    edit = await client.patch(f"/v1/needs/{overdue['id']}", headers={**h, "If-Match": '"2"'}, json={"title": "x"})
    assert_problem(edit, 409)
