"""Item requests and waiting lines: a frontline unit asks for an item the catalog lacks, posts a need whose line
waits (`pending_item`, never matched), and once a coordinator approves the request as a new item or maps it to an
existing one the line opens in the item's base unit and is matched. And a coordinator's substitution override:
a hospital's medical line takes a general-grade KN95 lot only once it is recorded."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE
from tests.helpers.needs import shelter_need
from tests.helpers.problems import assert_problem, error_locs
from tests.helpers.supply import donor_offer
from tests.helpers.waiting import eventually

KN95 = "ppe.mask.kn95"


async def proposals_for(client: httpx.AsyncClient, auth: TokenFactory, need_id: str) -> list[dict[str, Any]]:
    r = await client.get("/v1/proposals", headers=auth("coordinator"), params={"need_id": need_id})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def ask_for_item(client: httpx.AsyncClient, auth: TokenFactory, **over: Any) -> dict[str, Any]:
    body = {"name": "Foxtail millet", "unit": "kg", "category": "food", "note": "staple in the north", **over}
    r = await client.post(
        "/v1/items/requests",
        headers={**auth("frontline", org="org-shelter"), "Idempotency-Key": str(uuid.uuid4())},
        json=body,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_a_line_waits_for_its_item_request_and_is_matched_once_approved(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    request = await ask_for_item(client, auth)
    assert (request["status"], request["item_code"], request["org"]) == ("pending", None, "org-shelter")
    need = await shelter_need(client, auth, {"item_request_id": request["id"], "quantity": 30})
    [line] = need["lines"]
    assert (line["status"], line["item_code"], line["quantity"], line["unit"]) == ("pending_item", None, 30, "kg")
    pending = await client.get("/v1/items/requests", headers=auth("coordinator"), params={"status": "pending"})
    assert request["id"] in [r["id"] for r in pending.json()["items"]]

    code = f"food.grain.millet_{uuid.uuid4().hex[:8]}"
    offer = await donor_offer(client, auth, {"item_code": RICE, "quantity": 5})  # unrelated: not the pending line's
    await asyncio.sleep(1)
    assert await proposals_for(client, auth, need["id"]) == []  # a waiting line is never matched

    r = await client.post(
        f"/v1/items/requests/{request['id']}/approve", headers=auth("coordinator"), json={"code": code}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["item_code"]) == ("approved", code)
    item = (await client.get(f"/v1/items/{code}", headers=auth("donor"))).json()
    assert (item["base_unit"], item["name"]["en"], item["category"]) == ("kg", "Foxtail millet", "food")
    got = (await client.get(f"/v1/needs/{need['id']}", headers=auth("frontline", org="org-shelter"))).json()
    [line] = got["lines"]
    assert (line["status"], line["item_code"], line["quantity"], line["unit"]) == ("open", code, 30, "kg")
    assert_problem(
        await client.post(f"/v1/items/requests/{request['id']}/map", headers=auth("coordinator"), json={"code": RICE}),
        409,
        "item-request-decided",
    )

    offer = await donor_offer(client, auth, {"item_code": code, "quantity": 40})

    async def proposed() -> list[dict[str, Any]]:
        return await proposals_for(client, auth, need["id"])

    (proposal,) = await eventually(proposed, seconds=30)
    assert proposal["lot_id"] == offer["lots"][0]["id"] and proposal["item_code"] == code
    assert proposal["quantity"] == 30


async def test_a_request_mapped_to_an_existing_item_opens_its_lines_in_base_units(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    request = await ask_for_item(client, auth, name="大米 (25 kg bags)", unit="bag")
    need = await shelter_need(
        client,
        auth,
        {"item_request_id": request["id"], "quantity": 2},  # 2 bags: the request's unit
        {"item_request_id": request["id"], "quantity": 3, "unit": "crate"},  # a unit rice does not know
    )
    assert [x["status"] for x in need["lines"]] == ["pending_item", "pending_item"]
    r = await client.post(f"/v1/items/requests/{request['id']}/map", headers=auth("coordinator"), json={"code": RICE})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["item_code"]) == ("mapped", RICE)
    got = (await client.get(f"/v1/needs/{need['id']}", headers=auth("coordinator"))).json()
    opened, waiting = got["lines"]
    assert (opened["status"], opened["item_code"], opened["quantity"], opened["unit"]) == ("open", RICE, 50, "kg")
    assert (waiting["status"], waiting["item_code"], waiting["quantity"]) == ("pending_item", None, 3)
    assert "crate" in waiting["pending_reason"]
    # A line posted later that names the decided request is a line of its item at once.
    later = await shelter_need(client, auth, {"item_request_id": request["id"], "quantity": 1})
    assert [(x["status"], x["item_code"], x["quantity"]) for x in later["lines"]] == [("open", RICE, 25)]

    await donor_offer(client, auth, {"item_code": RICE, "quantity": 100})

    async def covered() -> bool:
        proposals = await proposals_for(client, auth, need["id"])
        assert all(p["need_line_id"] == opened["id"] for p in proposals)  # the waiting line is never proposed
        return sum(p["quantity"] for p in proposals) == 50

    await eventually(covered, seconds=30)


async def test_item_requests_are_checked(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    request = await ask_for_item(client, auth)
    coordinator = auth("coordinator")
    assert_problem(await client.get("/v1/items/requests", headers=auth("frontline")), 403)
    assert_problem(
        await client.post(
            f"/v1/items/requests/{request['id']}/approve", headers=auth("frontline"), json={"code": "food.x.y"}
        ),
        403,
    )
    wrong = await client.post(
        f"/v1/items/requests/{request['id']}/approve", headers=coordinator, json={"code": "med.grain.millet"}
    )
    assert error_locs(assert_problem(wrong, 422)) == [["body", "code"]]
    assert_problem(
        await client.post(f"/v1/items/requests/{request['id']}/approve", headers=coordinator, json={"code": RICE}),
        409,
        "item-exists",
    )
    assert_problem(
        await client.post(f"/v1/items/requests/{request['id']}/map", headers=coordinator, json={"code": "no.such"}),
        404,
        "item-not-found",
    )
    assert_problem(
        await client.post(f"/v1/items/requests/{uuid.uuid4()}/map", headers=coordinator, json={"code": RICE}),
        404,
        "item-request-not-found",
    )
    # Nothing half-written: the request is still pending.
    got = await client.get(f"/v1/items/requests/{request['id']}", headers=coordinator)
    assert got.json()["status"] == "pending"
    site_headers = auth("frontline", org="org-shelter")
    site_id = (await shelter_need(client, auth))["site_id"]
    for line, loc in (
        ({"item_code": RICE, "item_request_id": request["id"], "quantity": 1}, ["body", "lines", 0]),
        ({"item_request_id": str(uuid.uuid4()), "quantity": 1}, ["body", "lines", 0, "item_request_id"]),
    ):
        r = await client.post(
            "/v1/needs", headers=site_headers, json={"site_id": site_id, "title": "x", "lines": [line]}
        )
        assert error_locs(assert_problem(r, 422)) == [loc], line


async def test_a_hospitals_medical_line_takes_a_kn95_lot_only_after_the_override(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    coordinator = auth("coordinator")
    code = f"ppe.mask.medical_{uuid.uuid4().hex[:8]}"
    item = {
        "code": code,
        "name": {"zh": "医用面罩", "en": "Medical face cover"},
        "unit": "piece",
        "grade": "medical",
        "substitute_rules": [{"code": KN95, "factor": 1.0}],
    }
    assert (await client.post("/v1/items", headers=coordinator, json=item)).status_code == 201
    need = await shelter_need(client, auth, {"item_code": code, "quantity": 200}, org="org-hospital", kind="hospital")
    [line] = need["lines"]
    assert line["substitution_override"] is False
    offer = await donor_offer(client, auth, {"item_code": KN95, "quantity": 300}, org="org-masks")
    await asyncio.sleep(2)
    assert await proposals_for(client, auth, need["id"]) == []

    path = f"/v1/needs/{need['id']}/lines/{line['id']}/substitution-override"
    assert_problem(await client.post(path, headers=auth("frontline", org="org-hospital"), json={"reason": "x"}), 403)
    r = await client.post(path, headers=coordinator, json={"reason": "no medical masks in the region for 3 days"})
    assert r.status_code == 200, r.text
    [line] = r.json()["lines"]
    assert line["substitution_override"] is True and line["override_by"] and line["override_at"]
    assert line["override_reason"] == "no medical masks in the region for 3 days"
    assert r.json()["version"] == need["version"] + 1

    async def proposed() -> list[dict[str, Any]]:
        return await proposals_for(client, auth, need["id"])

    (proposal,) = await eventually(proposed, seconds=30)
    assert proposal["lot_id"] == offer["lots"][0]["id"] and proposal["quantity"] == 200
    assert_problem(
        await client.post(
            f"/v1/needs/{need['id']}/lines/{uuid.uuid4()}/substitution-override",
            headers=coordinator,
            json={"reason": "x"},
        ),
        404,
        "need-line-not-found",
    )


async def test_a_refused_request_cancels_its_waiting_lines_with_the_reason(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    request = await ask_for_item(client, auth, name="Imported infant formula")
    mixed = await shelter_need(
        client, auth, {"item_request_id": request["id"], "quantity": 30}, {"item_code": RICE, "quantity": 10}
    )
    alone = await shelter_need(client, auth, {"item_request_id": request["id"], "quantity": 5})
    url = f"/v1/items/requests/{request['id']}/refuse"
    body = {"reason": "not something the hub can source; ask the county health office"}
    assert_problem(await client.post(url, headers=auth("frontline", org="org-shelter"), json=body), 403)
    assert_problem(await client.post(url, headers=auth("coordinator"), json={"reason": " "}), 422)
    assert (await client.get(f"/v1/needs/{alone['id']}", headers=auth("coordinator"))).json()["status"] == "open"

    r = await client.post(url, headers=auth("coordinator"), json=body)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["refused_reason"], r.json()["item_code"]) == ("refused", body["reason"], None)
    assert_problem(await client.post(url, headers=auth("coordinator"), json=body), 409, "item-request-decided")
    approve = await client.post(
        f"/v1/items/requests/{request['id']}/approve", headers=auth("coordinator"), json={"code": "food.formula_x"}
    )
    assert_problem(approve, 409, "item-request-decided")

    # The waiting line is cancelled with the reason; the need's other line carries on.
    got = (await client.get(f"/v1/needs/{mixed['id']}", headers=auth("frontline", org="org-shelter"))).json()
    waiting, rice = got["lines"]
    assert (waiting["status"], waiting["pending_reason"]) == ("cancelled", f"item request refused: {body['reason']}")
    assert rice["status"] == "open" and got["status"] == "open" and got["version"] == mixed["version"] + 1
    # A need with nothing else left is closed, with the reason.
    got = (await client.get(f"/v1/needs/{alone['id']}", headers=auth("frontline", org="org-shelter"))).json()
    assert got["status"] == "closed" and got["lines"][0]["status"] == "cancelled"
    # New lines cannot wait on it any more.
    r = await client.post(
        "/v1/needs",
        headers=auth("frontline", org="org-shelter"),
        json={
            "site_id": alone["site_id"],
            "title": "formula",
            "urgency": "high",
            "lines": [{"item_request_id": request["id"], "quantity": 5}],
        },
    )
    assert_problem(r, 422)
