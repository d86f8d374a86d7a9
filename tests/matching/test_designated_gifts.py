"""Designated in-kind gifts (定向捐赠) through the API: a gift given for a site, a need, a beneficiary group or an
item category is a candidate, and is proposed, only where its donor allowed it, however near or urgent the rest."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import BEIJING, NEAR_SHANGHAI, RICE, SHANGHAI, WATER
from tests.helpers.http import get_json
from tests.helpers.matching import allocation_run, open_proposals
from tests.helpers.needs import create_need, create_site, shelter_need
from tests.helpers.problems import assert_problem
from tests.helpers.streams import project
from tests.helpers.supply import donor_offer
from tests.helpers.waiting import eventually


async def candidate_lots(client: httpx.AsyncClient, auth: TokenFactory, line_id: str) -> list[str]:
    body = await get_json(client, "/v1/candidates", auth("coordinator"), need_line_id=line_id)
    return [c["lot_id"] for c in body["items"]]


async def proposed_lots(client: httpx.AsyncClient, auth: TokenFactory, need: dict[str, Any]) -> dict[str, list[str]]:
    """The need's open proposals: the lots proposed for each of its lines."""
    out: dict[str, list[str]] = {}
    for p in await open_proposals(client, auth, need):
        out.setdefault(p["need_line_id"], []).append(p["lot_id"])
    return out


async def test_a_gift_designated_to_a_site_goes_to_that_site_only(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any
) -> None:
    # Site A is far from the gift and its need is normal; site B is next to it and critical.
    far = await shelter_need(client, auth, {"item_code": RICE, "quantity": 40}, where=BEIJING, urgency="normal")
    near = await shelter_need(client, auth, {"item_code": RICE, "quantity": 40}, where=SHANGHAI, urgency="critical")
    gift = (await donor_offer(client, auth, {"quantity": 40}, restrictions={"site_ids": [far["site_id"]]}))["lots"][0]
    anyone = (await donor_offer(client, auth, {"quantity": 40, **NEAR_SHANGHAI}))["lots"][0]
    await project(gateway)

    far_line, near_line = far["lines"][0]["id"], near["lines"][0]["id"]
    assert gift["id"] in await candidate_lots(client, auth, far_line)
    near_candidates = await candidate_lots(client, auth, near_line)
    assert near_candidates == [anyone["id"]]

    await allocation_run(client, auth)
    assert await proposed_lots(client, auth, far) == {far_line: [gift["id"]]}
    assert await proposed_lots(client, auth, near) == {near_line: [anyone["id"]]}


async def test_a_gift_designated_to_a_need_goes_to_its_lines_only(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any
) -> None:
    headers = auth("frontline", org="org-shelter")
    site = await create_site(client, headers, kind="shelter", **SHANGHAI)
    lines = ({"item_code": RICE, "quantity": 30}, {"item_code": WATER, "quantity": 20})
    designated = await create_need(client, headers, site["id"], *lines, urgency="normal")
    other = await create_need(client, headers, site["id"], *lines, urgency="critical")
    gift = await donor_offer(
        client,
        auth,
        {"item_code": RICE, "quantity": 30},
        {"item_code": WATER, "quantity": 20},
        restrictions={"need_ids": [designated["id"]]},
    )
    await project(gateway)

    rice, water = (lot["id"] for lot in gift["lots"])
    for line, lot in zip(designated["lines"], (rice, water), strict=True):
        assert await candidate_lots(client, auth, line["id"]) == [lot]
    for line in other["lines"]:
        assert await candidate_lots(client, auth, line["id"]) == []

    await allocation_run(client, auth)
    assert await proposed_lots(client, auth, designated) == {
        designated["lines"][0]["id"]: [rice],
        designated["lines"][1]["id"]: [water],
    }
    assert await proposed_lots(client, auth, other) == {}


async def test_a_gift_for_the_elderly_goes_to_needs_serving_elderly_only(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any
) -> None:
    line = {"item_code": RICE, "quantity": 25}
    home = await shelter_need(client, auth, line, where=BEIJING, urgency="normal", beneficiary_groups={"elderly": 80})
    school = await shelter_need(client, auth, line, urgency="critical", beneficiary_groups={"children": 300})
    counted_none = await shelter_need(client, auth, line, beneficiary_groups={"elderly": 0, "children": 10})
    unnamed = await shelter_need(client, auth, line)
    gift = (await donor_offer(client, auth, {"quantity": 25}, restrictions={"beneficiary_groups": ["elderly"]}))[
        "lots"
    ][0]
    await project(gateway)

    assert await candidate_lots(client, auth, home["lines"][0]["id"]) == [gift["id"]]
    for need in (school, counted_none, unnamed):
        assert await candidate_lots(client, auth, need["lines"][0]["id"]) == []

    await allocation_run(client, auth)
    assert await proposed_lots(client, auth, home) == {home["lines"][0]["id"]: [gift["id"]]}
    for need in (school, counted_none, unnamed):
        assert await proposed_lots(client, auth, need) == {}


async def test_a_gift_restricted_to_a_category_serves_its_items(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any
) -> None:
    need = await shelter_need(client, auth, {"item_code": RICE, "quantity": 50})
    food = (await donor_offer(client, auth, {"quantity": 30}, restrictions={"item_codes": ["food."]}))["lots"][0]
    water_only = (await donor_offer(client, auth, {"quantity": 30}, restrictions={"item_codes": ["water."]}))["lots"][0]
    await project(gateway)

    line_id = need["lines"][0]["id"]
    assert await candidate_lots(client, auth, line_id) == [food["id"]]
    assert water_only["id"] not in await candidate_lots(client, auth, line_id)

    await allocation_run(client, auth)
    assert await proposed_lots(client, auth, need) == {line_id: [food["id"]]}


async def proposal(client: httpx.AsyncClient, auth: TokenFactory, proposal_id: str) -> dict[str, Any]:
    return await get_json(client, f"/v1/proposals/{proposal_id}", auth("coordinator"))


async def test_an_open_proposal_the_donor_then_designates_elsewhere_is_cancelled(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any
) -> None:
    near = await shelter_need(client, auth, {"item_code": RICE, "quantity": 40}, urgency="critical")
    far = await shelter_need(client, auth, {"item_code": RICE, "quantity": 40}, where=BEIJING, urgency="normal")
    offer = await donor_offer(client, auth, {"quantity": 40})
    gift = offer["lots"][0]["id"]
    await project(gateway)
    await allocation_run(client, auth)
    # Scarce supply is spread: both lines get a share of the lot.
    (open_one,) = await open_proposals(client, auth, near)
    assert open_one["lot_id"] == gift and 0 < open_one["quantity"] < 40

    r = await client.patch(
        f"/v1/offers/{offer['id']}",
        headers={**auth("donor", org="org-grain"), "If-Match": f'"{offer["version"]}"'},
        json={"restrictions": {"site_ids": [far["site_id"]]}},
    )
    assert r.status_code == 200, r.text
    await project(gateway)
    await allocation_run(client, auth)

    cancelled = await proposal(client, auth, open_one["id"])
    assert cancelled["status"] == "cancelled" and "site_ids" in cancelled["reason"]
    assert await proposed_lots(client, auth, near) == {}
    # The whole lot now goes to the designated site.
    given = await open_proposals(client, auth, far)
    assert {p["lot_id"] for p in given} == {gift} and sum(p["quantity"] for p in given) == 40


async def test_an_open_proposal_for_the_elderly_is_cancelled_when_the_need_no_longer_serves_them(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any
) -> None:
    need = await shelter_need(client, auth, {"item_code": RICE, "quantity": 25}, beneficiary_groups={"elderly": 50})
    gift = (await donor_offer(client, auth, {"quantity": 25}, restrictions={"beneficiary_groups": ["elderly"]}))[
        "lots"
    ][0]
    await project(gateway)
    await allocation_run(client, auth)
    (open_one,) = await open_proposals(client, auth, need)
    assert open_one["lot_id"] == gift["id"]

    r = await client.patch(
        f"/v1/needs/{need['id']}",
        headers={**auth("frontline", org="org-shelter"), "If-Match": f'"{need["version"]}"'},
        json={"beneficiary_groups": {"children": 50}},
    )
    assert r.status_code == 200, r.text
    await project(gateway)
    assert await candidate_lots(client, auth, need["lines"][0]["id"]) == []
    await allocation_run(client, auth)

    cancelled = await proposal(client, auth, open_one["id"])
    assert cancelled["status"] == "cancelled" and "beneficiary_groups" in cancelled["reason"]
    assert await proposed_lots(client, auth, need) == {}


async def test_continuous_matching_moves_a_re_designated_gift_to_its_site(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    near = await shelter_need(client, auth, {"item_code": RICE, "quantity": 30}, urgency="critical")
    offer = await donor_offer(client, auth, {"quantity": 30})
    gift = offer["lots"][0]["id"]
    (first,) = await eventually(lambda: open_proposals(client, auth, near), seconds=30)
    assert first["lot_id"] == gift and first["quantity"] == 30

    far = await shelter_need(client, auth, {"item_code": RICE, "quantity": 30}, where=BEIJING, urgency="normal")
    r = await client.patch(
        f"/v1/offers/{offer['id']}",
        headers={**auth("donor", org="org-grain"), "If-Match": f'"{offer["version"]}"'},
        json={"restrictions": {"site_ids": [far["site_id"]]}},
    )
    assert r.status_code == 200, r.text

    (moved,) = await eventually(lambda: open_proposals(client, auth, far), seconds=30)
    assert moved["lot_id"] == gift and moved["quantity"] == 30
    cancelled = await proposal(client, auth, first["id"])
    assert cancelled["status"] == "cancelled" and "site_ids" in cancelled["reason"]
    assert await open_proposals(client, auth, near) == []


async def test_accepting_a_proposal_the_donor_has_since_designated_elsewhere_is_refused(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any
) -> None:
    need = await shelter_need(client, auth, {"item_code": RICE, "quantity": 30})
    offer = await donor_offer(client, auth, {"quantity": 30})
    await project(gateway)
    await allocation_run(client, auth)
    (open_one,) = await open_proposals(client, auth, need)
    elsewhere = await shelter_need(client, auth, {"item_code": RICE, "quantity": 30}, where=BEIJING)
    r = await client.patch(
        f"/v1/offers/{offer['id']}",
        headers={**auth("donor", org="org-grain"), "If-Match": f'"{offer["version"]}"'},
        json={"restrictions": {"site_ids": [elsewhere["site_id"]]}},
    )
    assert r.status_code == 200, r.text
    await project(gateway)  # no run since: the proposal is still open

    r = await client.post(f"/v1/proposals/{open_one['id']}/accept", headers=auth("coordinator"))
    body = assert_problem(r, 409, "restriction-violated")
    assert body["proposal_status"] == "cancelled" and ["site_ids" in e["msg"] for e in body["errors"]] == [True]
    cancelled = await proposal(client, auth, open_one["id"])
    assert cancelled["status"] == "cancelled" and "site_ids" in cancelled["reason"]
    assert [d["action"] for d in cancelled["decisions"]] == ["cancel"]
    # Nothing was reserved, and the line was matched again without the lot.
    lot = await get_json(client, f"/v1/lots/{offer['lots'][0]['id']}", auth("coordinator"))
    assert lot["quantity_reserved"] == 0
    assert await open_proposals(client, auth, need) == []
