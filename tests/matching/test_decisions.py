"""Decisions on proposals over HTTP: accept (all or less, idempotently, reserving in supply), reject, expiry,
the lot taken meanwhile (cancel and re-match), auto-accept, and the roll-up into the need."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import NEAR_BEIJING
from tests.helpers.db import rows
from tests.helpers.http import get_json
from tests.helpers.matching import allocation_run, put_policy
from tests.helpers.needs import shelter_need
from tests.helpers.problems import assert_problem
from tests.helpers.streams import project, run_job
from tests.helpers.supply import donor_offer, get_lot, reserve
from tests.helpers.waiting import eventually

DECISIONS = (
    "SELECT action, quantity, override, reason, actor FROM matching.decision WHERE proposal_id = :p ORDER BY created_at"
)
RESERVATIONS = "SELECT quantity, status FROM supply.reservation WHERE reference = :r"


async def proposed(client, auth: TokenFactory, gateway, *, lot: dict[str, Any] | None = None) -> dict[str, Any]:
    """One open proposal: 60 rice near Pudong for a need of 100 (by default)."""
    await shelter_need(client, auth)
    await donor_offer(client, auth, lot or {})
    await project(gateway)
    (proposal,) = (await allocation_run(client, auth))["proposals"]
    out: dict[str, Any] = proposal
    return out


async def test_accepting_less_reserves_less_and_records_an_override(
    client, auth: TokenFactory, gateway, engine
) -> None:
    coordinator = auth("coordinator", sub="coord-li")
    proposal = await proposed(client, auth, gateway)
    assert proposal["quantity"] == 60
    accept = f"/v1/proposals/{proposal['id']}/accept"

    assert_problem(await client.post(accept, headers=coordinator, json={"quantity": 61}), 422)
    assert_problem(await client.post(accept, headers=coordinator, json={"quantity": 0}), 422)
    assert_problem(await client.post(accept, headers=auth("logistics"), json={"quantity": 40}), 403)
    assert (await get_lot(client, coordinator, proposal["lot_id"]))["quantity_reserved"] == 0

    r = await client.post(accept, headers=coordinator, json={"quantity": 40})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["quantity"], body["accepted_quantity"]) == ("accepted", 60, 40)
    assert body["reservation_id"] and body["decided_by"] == "coord-li" and body["auto"] is False
    assert r.headers["ETag"] == '"2"'
    assert (await get_lot(client, coordinator, proposal["lot_id"]))["quantity_reserved"] == 40
    assert await rows(engine, RESERVATIONS, r=proposal["id"]) == [{"quantity": 40, "status": "active"}]
    assert await rows(engine, DECISIONS, p=proposal["id"]) == [
        {"action": "accept", "quantity": 40, "override": True, "reason": "accepted 40 of 60", "actor": "coord-li"}
    ]
    fetched = await get_json(client, f"/v1/proposals/{proposal['id']}", coordinator)
    assert fetched["status"] == "accepted" and fetched["accepted_quantity"] == 40


async def test_rejecting_records_the_reason(client, auth: TokenFactory, gateway, engine) -> None:
    coordinator = auth("coordinator", sub="coord-wang")
    proposal = await proposed(client, auth, gateway)
    reject = f"/v1/proposals/{proposal['id']}/reject"

    assert_problem(await client.post(reject, headers=coordinator, json={"reason": "  "}), 422)
    assert_problem(await client.post(reject, headers=coordinator, json={}), 422)
    r = await client.post(reject, headers=coordinator, json={"reason": "该批大米已霉变"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["reason"], body["decided_by"]) == ("rejected", "该批大米已霉变", "coord-wang")
    assert body["accepted_quantity"] is None and body["reservation_id"] is None
    assert await rows(engine, DECISIONS, p=proposal["id"]) == [
        {"action": "reject", "quantity": 60, "override": True, "reason": "该批大米已霉变", "actor": "coord-wang"}
    ]
    assert (await get_lot(client, coordinator, proposal["lot_id"]))["quantity_reserved"] == 0


async def test_only_open_proposals_take_a_decision(client, auth: TokenFactory, gateway, engine) -> None:
    coordinator = auth("coordinator")
    proposal = await proposed(client, auth, gateway)
    base = f"/v1/proposals/{proposal['id']}"
    assert (await client.post(f"{base}/reject", headers=coordinator, json={"reason": "不需要"})).status_code == 200

    assert_problem(await client.post(f"{base}/accept", headers=coordinator), 409, "proposal-not-open")
    assert_problem(
        await client.post(f"{base}/reject", headers=coordinator, json={"reason": "again"}), 409, "proposal-not-open"
    )
    assert (await get_lot(client, coordinator, proposal["lot_id"]))["quantity_reserved"] == 0
    assert [d["action"] for d in await rows(engine, DECISIONS, p=proposal["id"])] == ["reject"]

    unknown = f"/v1/proposals/{uuid.uuid4()}"
    assert_problem(await client.post(f"{unknown}/accept", headers=coordinator), 404, "proposal-not-found")
    assert_problem(await client.post(f"{unknown}/reject", headers=coordinator, json={"reason": "x"}), 404)
    assert_problem(await client.get(unknown, headers=coordinator), 404, "proposal-not-found")


async def test_expired_proposals_are_refused_and_marked_by_the_job(client, auth: TokenFactory, gateway, engine) -> None:
    coordinator = auth("coordinator")
    proposal = await proposed(client, auth, gateway)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE matching.proposal SET expires_at = now() - interval '1 minute' WHERE id = :p"),
            {"p": proposal["id"]},
        )
    base = f"/v1/proposals/{proposal['id']}"

    detail = assert_problem(await client.post(f"{base}/accept", headers=coordinator), 409, "proposal-not-open")[
        "detail"
    ]
    assert "expired" in detail
    assert_problem(await client.post(f"{base}/reject", headers=coordinator, json={"reason": "late"}), 409)
    assert (await get_lot(client, coordinator, proposal["lot_id"]))["quantity_reserved"] == 0
    assert await rows(engine, RESERVATIONS, r=proposal["id"]) == []

    assert await run_job(gateway, "matching", "expire-proposals") == 1
    assert await run_job(gateway, "matching", "expire-proposals") == 0
    body = await get_json(client, base, coordinator)
    assert (body["status"], body["reason"], body["decided_by"]) == ("expired", "not decided in time", "matching")
    assert await rows(engine, DECISIONS, p=proposal["id"]) == [
        {"action": "expire", "quantity": 60, "override": False, "reason": None, "actor": "matching"}
    ]
    assert_problem(await client.post(f"{base}/accept", headers=coordinator), 409, "proposal-not-open")


async def test_a_lot_taken_meanwhile_cancels_and_rematches_the_line(
    client, auth: TokenFactory, gateway, engine
) -> None:
    coordinator = auth("coordinator", sub="coord-zhao")
    need = await shelter_need(client, auth, {"item_code": "food.grain.rice", "quantity": 50})
    taken = (await donor_offer(client, auth, {"quantity": 50}))["lots"][0]
    spare = (await donor_offer(client, auth, {"quantity": 50, **NEAR_BEIJING}))["lots"][0]
    await project(gateway)
    (proposal,) = (await allocation_run(client, auth))["proposals"]
    assert (proposal["lot_id"], proposal["quantity"]) == (taken["id"], 50)

    # Someone else reserves the whole lot directly in supply, under another reference, and matching has not
    # heard of it yet: the 409 itself makes matching ask supply, so the re-run does not offer the lot again.
    r = await reserve(client, coordinator, taken["id"], 50, "field-team-7")
    assert r.status_code == 201, r.text

    r = await client.post(f"/v1/proposals/{proposal['id']}/accept", headers=coordinator)
    body = assert_problem(r, 409, "lot-taken")
    assert body["proposal_status"] == "cancelled"

    cancelled = await get_json(client, f"/v1/proposals/{proposal['id']}", coordinator)
    assert cancelled["status"] == "cancelled" and cancelled["reason"].startswith("lot taken")
    assert cancelled["reservation_id"] is None and cancelled["decided_by"] == "coord-zhao"
    assert [d["action"] for d in await rows(engine, DECISIONS, p=proposal["id"])] == ["cancel"]
    assert await rows(engine, RESERVATIONS, r=proposal["id"]) == []

    runs = (await get_json(client, "/v1/allocation-runs", coordinator))["items"]
    assert [x["trigger"] for x in runs] == ["retry", "manual"]
    retry = await get_json(client, f"/v1/allocation-runs/{runs[0]['id']}", coordinator)
    assert retry["counts"]["lines"] == 1
    assert [(p["need_id"], p["lot_id"], p["quantity"]) for p in retry["proposals"]] == [(need["id"], spare["id"], 50)]
    assert (await get_lot(client, coordinator, taken["id"]))["quantity_reserved"] == 50


async def test_auto_accept_above_the_policy_threshold(client, auth: TokenFactory, gateway, engine) -> None:
    coordinator = auth("coordinator")
    r = await client.get("/v1/policy", headers=coordinator)
    body = {k: v for k, v in r.json().items() if k not in ("version", "created_at", "created_by")}
    r = await client.put(
        "/v1/policy", headers={**coordinator, "If-Match": r.headers["ETag"]}, json={**body, "auto_accept_score": 0}
    )
    assert r.status_code == 200, r.text

    await shelter_need(client, auth)
    lot = (await donor_offer(client, auth))["lots"][0]
    await project(gateway)
    run = await allocation_run(client, auth)
    (proposal,) = run["proposals"]
    assert (proposal["status"], proposal["auto"], proposal["accepted_quantity"]) == ("accepted", True, 60)
    assert proposal["reservation_id"] and proposal["decided_by"] == "matching"
    assert proposal["policy_version"] == 2

    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == 60
    assert await rows(engine, RESERVATIONS, r=proposal["id"]) == [{"quantity": 60, "status": "active"}]
    assert await rows(engine, DECISIONS, p=proposal["id"]) == [
        {"action": "accept", "quantity": 60, "override": False, "reason": None, "actor": "matching"}
    ]
    stored = await get_json(client, f"/v1/proposals/{proposal['id']}", coordinator)
    assert stored["status"] == "accepted" and stored["auto"] is True


async def test_continuous_matching_auto_accepts_once_its_run_committed(
    client, auth: TokenFactory, engine, workers: None
) -> None:
    """A continuous run commits its proposals first, then auto-accepts them (each accept in transactions of its
    own): the run's locks are not held while supply reserves."""
    await put_policy(client, auth, auto_accept_score=0)
    need = await shelter_need(client, auth)
    lot = (await donor_offer(client, auth))["lots"][0]
    coordinator = auth("coordinator")

    async def accepted() -> dict[str, Any] | None:
        page = await get_json(client, "/v1/proposals", coordinator, need_id=need["id"], status="accepted")
        return page["items"][0] if page["items"] else None

    proposal = await eventually(accepted, seconds=30)
    assert (proposal["auto"], proposal["decided_by"], proposal["accepted_quantity"]) == (True, "matching", 60)
    run = await get_json(client, f"/v1/allocation-runs/{proposal['run_id']}", coordinator)
    assert run["trigger"] in ("continuous", "periodic")
    assert await rows(engine, RESERVATIONS, r=proposal["id"]) == [{"quantity": 60, "status": "active"}]
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == 60
    assert await rows(engine, DECISIONS, p=proposal["id"]) == [
        {"action": "accept", "quantity": 60, "override": False, "reason": None, "actor": "matching"}
    ]


async def test_accepting_twice_returns_the_same_reservation(client, auth: TokenFactory, gateway, engine) -> None:
    coordinator = auth("coordinator")
    proposal = await proposed(client, auth, gateway)
    accept = f"/v1/proposals/{proposal['id']}/accept"

    first = await client.post(accept, headers=coordinator)
    assert first.status_code == 200, first.text
    assert first.json()["accepted_quantity"] == 60
    second = await client.post(accept, headers=coordinator)
    assert second.status_code == 200, second.text
    assert second.json()["reservation_id"] == first.json()["reservation_id"]
    assert second.json()["accepted_quantity"] == 60

    assert (await get_lot(client, coordinator, proposal["lot_id"]))["quantity_reserved"] == 60
    assert await rows(engine, RESERVATIONS, r=proposal["id"]) == [{"quantity": 60, "status": "active"}]
    assert await rows(engine, DECISIONS, p=proposal["id"]) == [
        {"action": "accept", "quantity": 60, "override": False, "reason": None, "actor": "user-org-hub"}
    ]


async def test_acceptance_rolls_up_into_the_need(client, auth: TokenFactory, workers: None) -> None:
    coordinator = auth("coordinator")
    frontline = auth("frontline", org="org-shelter")
    need = await shelter_need(client, auth)
    await donor_offer(client, auth)

    async def open_proposals() -> list[dict[str, Any]]:
        page = await get_json(client, "/v1/proposals", coordinator, need_id=need["id"], status="proposed")
        return list(page["items"])

    (proposal,) = await eventually(open_proposals)
    r = await client.post(f"/v1/proposals/{proposal['id']}/accept", headers=coordinator, json={"quantity": 45})
    assert r.status_code == 200, r.text

    async def rolled_up() -> dict[str, Any] | None:
        body: dict[str, Any] = await get_json(client, f"/v1/needs/{need['id']}", frontline)
        return body if body["lines"][0]["quantity_matched"] else None

    rolled = await eventually(rolled_up)
    assert rolled["lines"][0]["quantity_matched"] == 45
    assert rolled["status"] == "matched"
