"""The frontline's say: a site's users see the proposals for their own needs and decline one with a reason;
its line is matched again without that lot, and never gets it proposed again."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import NEAR_BEIJING, RICE
from tests.helpers.matching import allocation_run, open_proposals
from tests.helpers.needs import shelter_need
from tests.helpers.problems import assert_problem
from tests.helpers.supply import donor_offer
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
