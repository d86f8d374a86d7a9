"""The frontline's say: a site's users see the proposals for their own needs and decline one with a reason;
its line is matched again without that lot, and never gets it proposed again."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.matching.events import on_logistics_event
from shared.events.envelope import CloudEvent
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import NEAR_BEIJING, RICE, WATER
from tests.helpers.db import rows
from tests.helpers.logistics import advance
from tests.helpers.matching import allocation_run, open_proposals
from tests.helpers.needs import shelter_need
from tests.helpers.problems import assert_problem
from tests.helpers.streams import project, runtime
from tests.helpers.supply import donor_offer, get_lot, reserve
from tests.helpers.waiting import eventually


async def test_the_site_declines_a_proposal_and_its_line_is_matched_without_that_lot(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    need = await shelter_need(client, auth, {"item_code": RICE, "quantity": 30}, org="org-site")
    near = (await donor_offer(client, auth, {"quantity": 30}))["lots"][0]
    far = (await donor_offer(client, auth, {"quantity": 30, **NEAR_BEIJING}))["lots"][0]

    async def proposed() -> list[dict[str, Any]] | None:
        return await open_proposals(client, auth, need) or None

    (first,) = await eventually(proposed, seconds=30)
    assert first["lot_id"] == near["id"]

    # The site's frontline sees it; another organisation's frontline sees nothing of it.
    mine = await client.get("/v1/proposals", headers=auth("frontline", org="org-site"))
    assert mine.status_code == 200 and [p["id"] for p in mine.json()["items"]] == [first["id"]]
    theirs = await client.get("/v1/proposals", headers=auth("frontline", org="org-elsewhere"))
    assert theirs.status_code == 200 and theirs.json()["items"] == []

    url = f"/v1/proposals/{first['id']}/decline"
    body = {"reason": "that warehouse's rice was flooded"}
    assert_problem(await client.post(url, headers=auth("frontline", org="org-elsewhere"), json=body), 403)
    assert_problem(await client.post(url, headers=auth("donor"), json=body), 403)
    assert_problem(await client.post(url, headers=auth("frontline", org="org-site"), json={"reason": " "}), 422)
    r = await client.post(url, headers=auth("frontline", org="org-site"), json=body)
    assert r.status_code == 200, r.text
    assert (
        r.json()["status"] == "rejected"
        and r.json()["reason"] == "declined by the site: that warehouse's rice was flooded"
    )
    assert_problem(await client.post(url, headers=auth("frontline", org="org-site"), json=body), 409)
    detail = (await client.get(f"/v1/proposals/{first['id']}", headers=auth("coordinator"))).json()
    assert [(d["action"], d["actor"]) for d in detail["decisions"]][-1][0] == "decline"

    # Matched again, without the declined lot: the far one now.
    async def reproposed() -> list[dict[str, Any]] | None:
        found = [p for p in await open_proposals(client, auth, need) if p["id"] != first["id"]]
        return found or None

    (second,) = await eventually(reproposed, seconds=30)
    assert second["lot_id"] == far["id"] and second["quantity"] == 30
    # Nor does a global run bring the declined lot back, whatever it gains.
    r = await client.post(f"/v1/proposals/{second['id']}/reject", headers=auth("coordinator"), json=body)
    assert r.status_code == 200, r.text
    run = await allocation_run(client, auth)
    assert all(p["lot_id"] != near["id"] for p in run["proposals"] if p["need_id"] == need["id"])
    candidates = await client.get(
        "/v1/candidates", headers=auth("coordinator"), params={"need_line_id": need["lines"][0]["id"]}
    )
    assert near["id"] not in [c["lot_id"] for c in candidates.json()["items"]]


async def _accepted_on_a_shipment(
    client: httpx.AsyncClient, auth: TokenFactory, need: dict[str, Any], count: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The need's `count` open proposals, accepted by a coordinator, once logistics has planned them all on one
    automatic shipment; the proposals (by item) and the shipment."""

    async def proposed() -> list[dict[str, Any]] | None:
        found = await open_proposals(client, auth, need)
        return found if len(found) == count else None

    proposals = sorted(await eventually(proposed, seconds=30), key=lambda p: str(p["item_code"]))
    for p in proposals:
        r = await client.post(f"/v1/proposals/{p['id']}/accept", headers=auth("coordinator"), json={})
        assert r.status_code == 200 and r.json()["status"] == "accepted", r.text

    async def planned() -> dict[str, Any] | None:
        r = await client.get("/v1/shipments", headers=auth("coordinator"), params={"need_id": need["id"]})
        items = r.json()["items"]
        return items[0] if len(items) == 1 and len(items[0]["lines"]) == count else None

    return proposals, await eventually(planned, seconds=30)


async def test_an_accepted_proposal_declined_before_pick_up_gives_its_goods_back_once(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    near = await donor_offer(client, auth, {"quantity": 40}, {"item_code": WATER, "quantity": 20})
    rice_lot, water_lot = near["lots"]
    far = (await donor_offer(client, auth, {"quantity": 30, **NEAR_BEIJING}))["lots"][0]
    # Someone else's hold on the same lot: a second release of the proposal's would eat into it.
    held = await reserve(client, auth("coordinator"), rice_lot["id"], 5, reference="hub-reserve")
    assert held.status_code == 201, held.text
    need = await shelter_need(
        client, auth, {"item_code": RICE, "quantity": 30}, {"item_code": WATER, "quantity": 20}, org="org-site"
    )
    (rice, water), shipment = await _accepted_on_a_shipment(client, auth, need, 2)
    assert rice["lot_id"] == rice_lot["id"] and water["lot_id"] == water_lot["id"]
    assert (await get_lot(client, auth("coordinator"), rice_lot["id"]))["quantity_reserved"] == 35

    url = f"/v1/proposals/{rice['id']}/decline"
    body = {"reason": "the county sent rice already"}
    assert_problem(await client.post(url, headers=auth("frontline", org="org-elsewhere"), json=body), 403)
    assert (await get_lot(client, auth("coordinator"), rice_lot["id"]))["quantity_reserved"] == 35
    r = await client.post(url, headers=auth("frontline", org="org-site"), json=body)
    assert r.status_code == 200, r.text
    assert (
        r.json()["status"] == "rejected" and r.json()["reason"] == "declined by the site: the county sent rice already"
    )
    # A repeated decline is refused and changes nothing.
    assert_problem(
        await client.post(url, headers=auth("frontline", org="org-site"), json=body), 409, "proposal-not-open"
    )

    # The shipment keeps the water line only; the rice lot's hold is gone, the hand-made one stays.
    after = (await client.get(f"/v1/shipments/{shipment['id']}", headers=auth("coordinator"))).json()
    assert after["status"] == "planned" and [line["proposal_id"] for line in after["lines"]] == [water["id"]]
    rice_after = await get_lot(client, auth("coordinator"), rice_lot["id"])
    assert rice_after["quantity_reserved"] == 5 and rice_after["quantity_available"] == 35
    # A redelivered withdrawal (matching retrying) changes nothing more.
    again = await client.post(
        f"/v1/shipments/proposals/{rice['id']}/withdraw", headers=auth("admin"), json={"reason": "retry"}
    )
    assert again.status_code == 200, again.text
    assert again.json() == {"proposal_id": rice["id"], "shipments_updated": [], "shipments_cancelled": []}
    assert (await client.get(f"/v1/shipments/{shipment['id']}", headers=auth("coordinator"))).json()["version"] == (
        after["version"]
    )

    # The line is matched again, from the far lot and never from the declined one.
    async def reproposed() -> dict[str, Any] | None:
        found = [p for p in await open_proposals(client, auth, need) if p["item_code"] == RICE]
        return found[0] if found else None

    again = await eventually(reproposed, seconds=30)
    assert again["lot_id"] == far["id"] and again["quantity"] == 30
    run = await allocation_run(client, auth)
    assert all(p["lot_id"] != rice_lot["id"] for p in run["proposals"] if p["need_id"] == need["id"])
    # Released exactly once, however the events settle.
    assert (await get_lot(client, auth("coordinator"), rice_lot["id"]))["quantity_reserved"] == 5

    # Declining the last line's proposal cancels the shipment.
    r = await client.post(
        f"/v1/proposals/{water['id']}/decline", headers=auth("frontline", org="org-site"), json={"reason": "enough"}
    )
    assert r.status_code == 200, r.text
    after = (await client.get(f"/v1/shipments/{shipment['id']}", headers=auth("coordinator"))).json()
    assert after["status"] == "cancelled" and after["lines"] == []
    assert (await get_lot(client, auth("coordinator"), water_lot["id"]))["quantity_reserved"] == 0


async def test_an_accepted_proposal_picked_up_cannot_be_declined(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    lot = (await donor_offer(client, auth, {"quantity": 30}))["lots"][0]
    need = await shelter_need(client, auth, {"item_code": RICE, "quantity": 30}, org="org-site")
    (proposal,), shipment = await _accepted_on_a_shipment(client, auth, need, 1)
    await advance(client, auth("logistics"), shipment["id"], "picked_up")

    r = await client.post(
        f"/v1/proposals/{proposal['id']}/decline", headers=auth("frontline", org="org-site"), json={"reason": "late"}
    )
    assert_problem(r, 409, "already-picked-up")
    detail = (await client.get(f"/v1/proposals/{proposal['id']}", headers=auth("coordinator"))).json()
    assert detail["status"] == "accepted" and detail["decisions"][-1]["action"] == "accept"
    assert (await get_lot(client, auth("coordinator"), lot["id"]))["quantity_reserved"] == 30
    after = (await client.get(f"/v1/shipments/{shipment['id']}", headers=auth("coordinator"))).json()
    assert after["status"] == "picked_up" and len(after["lines"]) == 1


async def test_a_decline_marks_only_its_line_and_lot_for_continuous_matching(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any, engine: AsyncEngine
) -> None:
    """Not the whole item group: its continuous run reads only the component of the line and the lot."""
    need = await shelter_need(client, auth, {"item_code": RICE, "quantity": 30}, org="org-site")
    lot = (await donor_offer(client, auth, {"quantity": 30}))["lots"][0]
    await project(gateway)
    (proposal,) = (await allocation_run(client, auth))["proposals"]
    async with engine.begin() as conn:  # what the projections marked is not what this test looks at
        await conn.execute(text("DELETE FROM matching.dirty_member"))
        await conn.execute(text("DELETE FROM matching.dirty_scope"))

    r = await client.post(
        f"/v1/proposals/{proposal['id']}/decline", headers=auth("frontline", org="org-site"), json={"reason": "spoilt"}
    )
    assert r.status_code == 200, r.text
    assert await rows(engine, "SELECT item_code FROM matching.dirty_scope") == [{"item_code": RICE}]
    marked = await rows(engine, "SELECT item_code, kind, member_id::text FROM matching.dirty_member ORDER BY kind")
    assert marked == [
        {"item_code": RICE, "kind": "line", "member_id": need["lines"][0]["id"]},
        {"item_code": RICE, "kind": "lot", "member_id": lot["id"]},
    ]


async def test_goods_given_back_mark_only_their_line_and_lot(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any, engine: AsyncEngine
) -> None:
    """A shipment line that came short opens its need line again: only the line's (and its lot's) component is
    re-run by continuous matching, not the whole item group."""
    need = await shelter_need(client, auth, {"item_code": RICE, "quantity": 30}, org="org-site")
    lot = (await donor_offer(client, auth, {"quantity": 30}))["lots"][0]
    await project(gateway)
    (proposal,) = (await allocation_run(client, auth))["proposals"]
    r = await client.post(f"/v1/proposals/{proposal['id']}/accept", headers=auth("coordinator"), json={})
    assert r.status_code == 200, r.text
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM matching.dirty_member"))
        await conn.execute(text("DELETE FROM matching.dirty_scope"))

    line = {"id": str(uuid.uuid4()), "proposal_id": proposal["id"], "quantity_returned": 10}
    shipment = {"id": str(uuid.uuid4()), "version": 3, "lines": [line]}
    event = CloudEvent(source="/reliefhub/logistics", type="reliefhub.logistics.shipment.received", data=shipment)
    async with runtime(gateway, "matching").sessionmaker() as session, session.begin():
        await on_logistics_event(session, event)
    got = (await client.get(f"/v1/proposals/{proposal['id']}", headers=auth("coordinator"))).json()
    assert got["quantity_returned"] == 10
    assert await rows(engine, "SELECT item_code FROM matching.dirty_scope") == [{"item_code": RICE}]
    marked = await rows(engine, "SELECT item_code, kind, member_id::text FROM matching.dirty_member ORDER BY kind")
    assert marked == [
        {"item_code": RICE, "kind": "line", "member_id": need["lines"][0]["id"]},
        {"item_code": RICE, "kind": "lot", "member_id": lot["id"]},
    ]
