"""Matching's HTTP surface over a projection fed by the real streams: candidates with their score breakdown,
allocation runs, the versioned policy, proposal lists and KPIs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.matching.policy import DEFAULT_WEIGHTS, FACTORS
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import BEIJING, N95, NEAR_BEIJING, NEAR_SHANGHAI, RICE, WATER, substitutable_item
from tests.helpers.http import get_json
from tests.helpers.matching import allocation_run, put_policy
from tests.helpers.needs import shelter_need
from tests.helpers.problems import assert_problem
from tests.helpers.streams import project
from tests.helpers.supply import donor_offer

HANGZHOU = {"lat": 30.27, "lon": 120.15, "region_code": "330106"}


def assert_explained(item: dict[str, Any]) -> None:
    assert set(item["factors"]) == set(FACTORS)
    assert item["score"] == pytest.approx(sum(item["factors"].values()), abs=0.01)


async def candidates(client, auth: TokenFactory, line_id: str) -> dict[str, Any]:
    body: dict[str, Any] = await get_json(client, "/v1/candidates", auth("coordinator"), need_line_id=line_id)
    return body


async def test_candidates_rank_feasible_lots_best_first(client, auth: TokenFactory, gateway) -> None:
    need = await shelter_need(client, auth)
    line_id = need["lines"][0]["id"]
    near = (await donor_offer(client, auth, NEAR_SHANGHAI))["lots"][0]
    far = (await donor_offer(client, auth, NEAR_BEIJING))["lots"][0]
    allowed = await donor_offer(
        client, auth, HANGZHOU, restrictions={"region_codes": ["31"], "site_kinds": ["shelter", "school"]}
    )
    other_region = await donor_offer(client, auth, NEAR_SHANGHAI, restrictions={"region_codes": ["11", "3102"]})
    other_kind = await donor_offer(client, auth, NEAR_SHANGHAI, restrictions={"site_kinds": ["hospital"]})
    await project(gateway)

    body = await candidates(client, auth, line_id)
    assert body["need_line_id"] == line_id and body["remaining"] == 100 and body["policy_version"] == 1
    ids = [c["lot_id"] for c in body["items"]]
    assert ids == [near["id"], allowed["lots"][0]["id"], far["id"]]
    assert other_region["lots"][0]["id"] not in ids and other_kind["lots"][0]["id"] not in ids
    scores = [c["score"] for c in body["items"]]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 3
    distances = [c["distance_km"] for c in body["items"]]
    assert distances[0] < 20 < distances[1] < 300 < distances[2]
    for c in body["items"]:
        assert_explained(c)
        assert c["substitute"] is False and c["factors"]["substitute"] == 0
        assert c["item_code"] == RICE and c["available"] == 60
    # The lots differ only in where they are: the distance factor alone orders them.
    first, _, last = body["items"]
    assert {f for f in FACTORS if first["factors"][f] != last["factors"][f]} == {"distance"}


async def test_substitutes_are_candidates_with_a_negative_substitute_factor(
    client, auth: TokenFactory, gateway
) -> None:
    item, substitute = substitutable_item()
    need = await shelter_need(client, auth, {"item_code": item, "quantity": 10})
    exact = (await donor_offer(client, auth, {"item_code": item, "quantity": 10}))["lots"][0]
    alike = (await donor_offer(client, auth, {"item_code": substitute, "quantity": 10}))["lots"][0]
    unrelated = (await donor_offer(client, auth, {"item_code": RICE, "quantity": 10}))["lots"][0]
    await project(gateway)

    items = (await candidates(client, auth, need["lines"][0]["id"]))["items"]
    assert [c["lot_id"] for c in items] == [exact["id"], alike["id"]]
    assert unrelated["id"] not in [c["lot_id"] for c in items]
    best, sub = items
    assert (best["substitute"], sub["substitute"]) == (False, True)
    assert sub["item_code"] == substitute
    assert best["factors"]["substitute"] == 0 and sub["factors"]["substitute"] < 0
    assert best["score"] - sub["score"] == pytest.approx(-sub["factors"]["substitute"], abs=0.01)
    for c in items:
        assert_explained(c)


async def test_an_unverified_medical_device_lot_waits_for_its_working_group(
    client, auth: TokenFactory, gateway
) -> None:
    need = await shelter_need(client, auth, {"item_code": N95, "quantity": 200}, kind="hospital")
    offer = await donor_offer(client, auth, {"item_code": N95, "quantity": 500})
    await project(gateway)
    line_id = need["lines"][0]["id"]
    assert (await candidates(client, auth, line_id))["items"] == []
    assert (await allocation_run(client, auth))["counts"]["lots"] == 0

    r = await client.post(
        f"/v1/offers/{offer['id']}/verification",
        headers=auth("working_group", org="wg", group="medical_device"),
        json={"verdict": "verified"},
    )
    assert r.status_code == 200, r.text
    await project(gateway)
    items = (await candidates(client, auth, line_id))["items"]
    assert [c["lot_id"] for c in items] == [offer["lots"][0]["id"]]


async def test_candidates_unknown_line_and_roles(client, auth: TokenFactory, gateway) -> None:
    need = await shelter_need(client, auth)
    await project(gateway)
    line_id = need["lines"][0]["id"]

    assert_problem(
        await client.get("/v1/candidates", headers=auth("coordinator"), params={"need_line_id": str(uuid.uuid4())}),
        404,
        "need-line-not-found",
    )
    assert_problem(await client.get("/v1/candidates", headers=auth("coordinator"), params={"need_line_id": "x"}), 422)
    for role in ("donor", "frontline"):
        r = await client.get("/v1/candidates", headers=auth(role), params={"need_line_id": line_id})
        assert_problem(r, 403, "forbidden")
    for role in ("logistics", "working_group"):
        r = await client.get("/v1/candidates", headers=auth(role), params={"need_line_id": line_id})
        assert r.status_code == 200, r.text
    for role in ("logistics", "donor"):
        assert_problem(await client.post("/v1/allocation-runs", headers=auth(role), json={}), 403, "forbidden")


async def test_allocation_runs_propose_keep_and_supersede(client, auth: TokenFactory, gateway) -> None:
    coordinator = auth("coordinator")
    rice_need = await shelter_need(client, auth, {"item_code": RICE, "quantity": 100})
    water_need = await shelter_need(client, auth, {"item_code": WATER, "quantity": 20}, org="org-school")
    rice_lot = (await donor_offer(client, auth, {"quantity": 60}))["lots"][0]
    water_lot = (await donor_offer(client, auth, {"item_code": WATER, "quantity": 30}))["lots"][0]
    await project(gateway)

    r = await client.post("/v1/allocation-runs", headers=coordinator, json={"scope": {"region_code": "31"}})
    assert r.status_code == 201, r.text
    run = r.json()
    assert r.headers["Location"] == f"/v1/allocation-runs/{run['id']}"
    assert run["trigger"] == "manual" and run["status"] == "completed" and run["policy_version"] == 1
    assert run["scope"] == {"region_code": "31", "item_codes": None}
    counts = run["counts"]
    assert {k: counts[k] for k in ("lines", "lots", "pairs", "proposals", "units", "kept")} == {
        "lines": 2,
        "lots": 2,
        "pairs": 2,
        "proposals": 2,
        "units": 80,
        "kept": 0,
    }
    assert {"candidates_ms", "solve_ms", "total_ms"} <= set(run["timings"])
    assert all(v >= 0 for v in run["timings"].values())
    assert run["timings"]["total_ms"] >= run["timings"]["solve_ms"]
    got = {(p["need_id"], p["lot_id"], p["quantity"]) for p in run["proposals"]}
    assert got == {(rice_need["id"], rice_lot["id"], 60), (water_need["id"], water_lot["id"], 20)}
    for p in run["proposals"]:
        assert p["status"] == "proposed" and p["run_id"] == run["id"] and p["policy_version"] == 1
        assert_explained(p)
    # Each unit is worth its score plus its tier's value: the objective counts both.
    assert run["objective"] > sum(p["score"] * p["quantity"] for p in run["proposals"]) > 0

    fetched = await get_json(client, f"/v1/allocation-runs/{run['id']}", coordinator)
    assert fetched["objective"] == run["objective"] and fetched["counts"] == counts
    assert {p["id"] for p in fetched["proposals"]} == {p["id"] for p in run["proposals"]}
    assert_problem(await client.get(f"/v1/allocation-runs/{uuid.uuid4()}", headers=coordinator), 404)

    again = await allocation_run(client, auth, region_code="31")
    assert again["id"] != run["id"]
    assert (again["counts"]["kept"], again["counts"]["proposals"], again["counts"]["superseded"]) == (2, 0, 0)
    assert {p["id"] for p in again["proposals"]} == {p["id"] for p in run["proposals"]}

    only_water = await allocation_run(client, auth, item_codes=[WATER])
    assert only_water["counts"]["lines"] == 1 and only_water["counts"]["kept"] == 1
    assert [p["need_id"] for p in only_water["proposals"]] == [water_need["id"]]

    # The situation changes: a Beijing need now competes for the rice, and the tiers spread it.
    beijing_need = await shelter_need(client, auth, {"item_code": RICE, "quantity": 50}, where=BEIJING, org="org-bj")
    await project(gateway)
    changed = await allocation_run(client, auth, item_codes=[RICE])
    assert changed["counts"]["lines"] == 2 and changed["counts"]["superseded"] == 1
    by_need = {p["need_id"]: p["quantity"] for p in changed["proposals"]}
    assert set(by_need) == {rice_need["id"], beijing_need["id"]} and sum(by_need.values()) == 60
    assert by_need[beijing_need["id"]] >= 13  # at least its first tier (a quarter of 50, rounded up)
    old = next(p for p in run["proposals"] if p["need_id"] == rice_need["id"])
    old = await get_json(client, f"/v1/proposals/{old['id']}", coordinator)
    assert old["status"] == "cancelled" and old["reason"] == f"superseded by run {changed['id']}"

    listed = await get_json(client, "/v1/allocation-runs", coordinator)
    assert [x["id"] for x in listed["items"]] == [changed["id"], only_water["id"], again["id"], run["id"]]
    assert all(x["proposals"] == [] for x in listed["items"])


async def test_policy_is_versioned_and_validated(client, auth: TokenFactory) -> None:
    coordinator = auth("coordinator", sub="coord-7")
    r = await client.get("/v1/policy", headers=auth("logistics"))
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == '"1"'
    policy = r.json()
    assert policy["version"] == 1 and policy["weights"] == DEFAULT_WEIGHTS
    assert policy["tiers"] == [
        {"share": 0.25, "value": 400},
        {"share": 0.25, "value": 150},
        {"share": 0.5, "value": 40},
    ]
    assert policy["auto_accept_score"] is None
    body = {k: v for k, v in policy.items() if k not in ("version", "created_at", "created_by")}

    assert_problem(await client.put("/v1/policy", headers=coordinator, json=body), 428)
    assert_problem(await client.put("/v1/policy", headers={**coordinator, "If-Match": '"7"'}, json=body), 412)
    assert_problem(await client.put("/v1/policy", headers=auth("logistics", If_Match='"1"'), json=body), 403)
    current = {**coordinator, "If-Match": '"1"'}
    invalid = [
        {**body, "weights": {**body["weights"], "popularity": 5}},
        {**body, "tiers": [{"share": 0.5, "value": 400}, {"share": 0.25, "value": 100}]},
        {**body, "tiers": [{"share": 0.5, "value": 100}, {"share": 0.5, "value": 400}]},
    ]
    for bad in invalid:
        detail = assert_problem(await client.put("/v1/policy", headers=current, json=bad), 422, "invalid-policy")[
            "detail"
        ]
        assert detail
    assert_problem(
        await client.put("/v1/policy", headers=current, json={**body, "speed_kmh": -1}), 422, "invalid-request"
    )
    assert (await get_json(client, "/v1/policy", coordinator))["version"] == 1

    r = await client.put("/v1/policy", headers=current, json={**body, "weights": {"distance": 40.0}})
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == '"2"'
    updated = r.json()
    assert updated["version"] == 2 and updated["created_by"] == "coord-7"
    assert updated["weights"] == {**DEFAULT_WEIGHTS, "distance": 40.0}  # unnamed factors keep their defaults
    assert (await get_json(client, "/v1/policy", coordinator))["version"] == 2
    assert_problem(await client.put("/v1/policy", headers=current, json=body), 412)


async def test_policy_weights_decide_which_lot_wins(client, auth: TokenFactory, gateway) -> None:
    need = await shelter_need(client, auth, {"item_code": RICE, "quantity": 50})
    near = (await donor_offer(client, auth, {"quantity": 50}))["lots"][0]
    # Far away, but expiring in ten days: expiry pressure favours it, distance does not.
    soon = (datetime.now(UTC) + timedelta(days=10)).isoformat()
    far = (await donor_offer(client, auth, {"quantity": 50, **NEAR_BEIJING, "expires_at": soon}))["lots"][0]
    await project(gateway)
    line_id = need["lines"][0]["id"]

    first = await allocation_run(client, auth)
    assert [(p["lot_id"], p["quantity"], p["policy_version"]) for p in first["proposals"]] == [(near["id"], 50, 1)]
    assert [c["lot_id"] for c in (await candidates(client, auth, line_id))["items"]] == [near["id"], far["id"]]

    # Any gain replaces an open proposal under this policy (the default asks for more than 5%).
    await put_policy(client, auth, weights={**DEFAULT_WEIGHTS, "distance": 0.0}, replace_gain_threshold=0.0)
    second = await allocation_run(client, auth)
    assert second["policy_version"] == 2
    assert [(p["lot_id"], p["quantity"], p["policy_version"]) for p in second["proposals"]] == [(far["id"], 50, 2)]
    assert second["proposals"][0]["factors"]["distance"] == 0
    ranked = await candidates(client, auth, line_id)
    assert ranked["policy_version"] == 2 and [c["lot_id"] for c in ranked["items"]] == [far["id"], near["id"]]
    old = await get_json(client, f"/v1/proposals/{first['proposals'][0]['id']}", auth("coordinator"))
    assert old["status"] == "cancelled" and old["replaced_by"] == second["proposals"][0]["id"]
    assert f"run {second['id']} found an allocation worth" in old["replaced_reason"]

    await put_policy(client, auth, weights={**DEFAULT_WEIGHTS, "distance": 100.0})
    third = await allocation_run(client, auth)
    assert [(p["lot_id"], p["policy_version"]) for p in third["proposals"]] == [(near["id"], 3)]


async def test_proposal_filters_and_pagination(client, auth: TokenFactory, gateway) -> None:
    coordinator = auth("coordinator")
    shanghai = await shelter_need(client, auth, {"item_code": RICE, "quantity": 50})
    beijing = await shelter_need(client, auth, {"item_code": RICE, "quantity": 50}, where=BEIJING, org="org-bj")
    sh_offer = await donor_offer(client, auth, {"quantity": 50})
    bj_offer = await donor_offer(client, auth, {"quantity": 50, **NEAR_BEIJING})
    await project(gateway)
    run = await allocation_run(client, auth)
    pairs = {(p["need_id"], p["offer_id"]) for p in run["proposals"]}
    assert pairs == {(shanghai["id"], sh_offer["id"]), (beijing["id"], bj_offer["id"])}
    sh_id = next(p["id"] for p in run["proposals"] if p["need_id"] == shanghai["id"])
    bj_id = next(p["id"] for p in run["proposals"] if p["need_id"] == beijing["id"])

    async def ids(**params: Any) -> list[str]:
        return [p["id"] for p in (await get_json(client, "/v1/proposals", coordinator, **params))["items"]]

    assert set(await ids()) == {sh_id, bj_id}
    assert await ids(need_id=shanghai["id"]) == [sh_id]
    assert await ids(offer_id=bj_offer["id"]) == [bj_id]
    assert await ids(need_line_id=beijing["lines"][0]["id"]) == [bj_id]
    assert await ids(region_code="31") == [sh_id]
    assert await ids(region_code="1101") == [bj_id]
    assert await ids(region_code="44") == []
    assert set(await ids(status="proposed")) == {sh_id, bj_id}
    assert await ids(need_id=shanghai["id"], offer_id=bj_offer["id"]) == []

    r = await client.post(f"/v1/proposals/{bj_id}/reject", headers=coordinator, json={"reason": "路远"})
    assert r.status_code == 200, r.text
    assert await ids(status="rejected") == [bj_id]
    assert await ids(status="proposed") == [sh_id]

    first = await get_json(client, "/v1/proposals", coordinator, limit=1)
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = await get_json(client, "/v1/proposals", coordinator, limit=1, cursor=first["next_cursor"])
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    assert {first["items"][0]["id"], second["items"][0]["id"]} == {sh_id, bj_id}

    assert_problem(await client.get("/v1/proposals", headers=coordinator, params={"status": "maybe"}), 422)
    assert_problem(await client.get("/v1/proposals", headers=coordinator, params={"region_code": "3"}), 422)
    assert_problem(await client.get("/v1/proposals", headers=auth("donor")), 403)


async def test_matching_kpis_by_region_level(client, auth: TokenFactory, gateway) -> None:
    coordinator = auth("coordinator")
    await shelter_need(client, auth, {"item_code": RICE, "quantity": 100})
    await shelter_need(
        client,
        auth,
        {"item_code": RICE, "quantity": 40},
        where={"region_code": "310104", "lat": 31.18, "lon": 121.43},
        org="org-xh",
    )
    await shelter_need(client, auth, {"item_code": RICE, "quantity": 50}, where=BEIJING, org="org-bj")
    await donor_offer(client, auth, {"quantity": 60})
    await project(gateway)
    run = await allocation_run(client, auth, region_code="310115")
    (proposal,) = run["proposals"]
    r = await client.post(f"/v1/proposals/{proposal['id']}/accept", headers=coordinator)
    assert r.status_code == 200, r.text

    async def kpis(**params: Any) -> dict[str, dict[str, Any]]:
        body = await get_json(client, "/v1/matching-kpis", coordinator, **params)
        assert body["level"] == params.get("level", 6)
        return {k["region_code"]: k for k in body["items"]}

    provinces = await kpis(level=2)
    assert set(provinces) == {"11", "31"}
    assert {k: provinces["31"][k] for k in ("lines", "quantity", "matched", "matched_lines")} == {
        "lines": 2,
        "quantity": 140,
        "matched": 60,
        "matched_lines": 1,
    }
    assert provinces["31"]["fill_rate"] == round(60 / 140, 4)
    assert (provinces["11"]["quantity"], provinces["11"]["matched"], provinces["11"]["fill_rate"]) == (50, 0, 0.0)
    assert provinces["11"]["median_time_to_match_seconds"] is None
    assert provinces["31"]["median_time_to_match_seconds"] >= 0

    assert set(await kpis(level=4)) == {"1101", "3101"}
    counties = await kpis()
    assert set(counties) == {"110105", "310104", "310115"}
    assert counties["310115"]["fill_rate"] == 0.6 and counties["310104"]["fill_rate"] == 0.0
    assert set(await kpis(level=6, region_code="31")) == {"310104", "310115"}
    assert set(await kpis(level=2, region_code="3101")) == {"31"}
    assert await kpis(level=4, region_code="44") == {}

    for level in (1, 3, 8):
        assert_problem(await client.get("/v1/matching-kpis", headers=coordinator, params={"level": level}), 422)
    assert_problem(await client.get("/v1/matching-kpis", headers=coordinator, params={"region_code": "x1"}), 422)
    assert_problem(await client.get("/v1/matching-kpis", headers=auth("frontline")), 403)
