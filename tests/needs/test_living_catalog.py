"""The living catalog: a coordinator adds an item over HTTP, every service follows it from the catalog's events
(each keeps a copy in its own table) and a need for the new item is matched, with nothing restarted."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers.auth import TokenFactory
from tests.helpers.db import rows
from tests.helpers.needs import shelter_need
from tests.helpers.problems import assert_problem, error_locs
from tests.helpers.supply import donor_offer
from tests.helpers.waiting import eventually


def item_body(code: str, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": code,
        "name": {"zh": "小米", "en": "Foxtail millet"},
        "unit": "kg",
        "packs": [{"unit": "bag", "base_units": 10}],
        "unit_value_fen": 900,
        "substitute_rules": [{"code": "food.grain.rice", "factor": 1.0}],
    }
    body.update(over)
    return body


async def test_a_coordinator_adds_an_item_and_a_need_for_it_is_matched(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine, workers: None
) -> None:
    code = f"food.grain.millet_{uuid.uuid4().hex[:8]}"
    r = await client.post("/v1/items", headers=auth("coordinator"), json=item_body(code))
    assert r.status_code == 201, r.text
    item = r.json()
    assert r.headers["location"] == f"/v1/items/{code}"
    got = await client.get(r.headers["location"], headers=auth("donor", org="org-donor"))
    assert got.status_code == 200 and got.json() == item
    assert_problem(await client.get("/v1/items/no.such.item", headers=auth("donor")), 404, "item-not-found")
    assert (item["code"], item["category"], item["base_unit"], item["substitutes"]) == (
        code,
        "food",
        "kg",
        ["food.grain.rice"],
    )
    listed = await client.get("/v1/items", headers=auth("frontline"), params={"q": code})
    assert [i["code"] for i in listed.json()["items"]] == [code]

    # Every service that reads the catalog keeps the change in its own table, from the catalog's events.
    async def copied() -> bool:
        found = [
            await rows(engine, f"SELECT code FROM {schema}.catalog_item WHERE code = :code", code=code)
            for schema in ("needs", "matching", "supply", "logistics")
        ]
        return all(found)

    await eventually(copied, seconds=30)

    need = await shelter_need(client, auth, {"item_code": code, "quantity": 3, "unit": "bag"})
    assert [(x["quantity"], x["unit"]) for x in need["lines"]] == [(30, "kg")]
    offer = await donor_offer(client, auth, {"item_code": code, "quantity": 40})

    async def proposed() -> list[dict[str, Any]]:
        r = await client.get("/v1/proposals", headers=auth("coordinator"), params={"need_id": need["id"]})
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    (proposal,) = await eventually(proposed, seconds=30)
    assert proposal["lot_id"] == offer["lots"][0]["id"] and proposal["item_code"] == code
    assert proposal["quantity"] == 30 and proposal["lot_quantity"] == 30


async def test_adding_items_is_for_coordinators_and_checked(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    code = f"food.grain.sorghum_{uuid.uuid4().hex[:8]}"
    assert_problem(await client.post("/v1/items", headers=auth("frontline"), json=item_body(code)), 403)
    assert_problem(
        await client.post("/v1/items", headers=auth("coordinator"), json=item_body("food.grain.rice")),
        409,
        "item-exists",
    )
    unknown = await client.post(
        "/v1/items",
        headers=auth("coordinator"),
        json=item_body(code, substitute_rules=[{"code": "no.such.item", "factor": 2}]),
    )
    assert error_locs(assert_problem(unknown, 422, "unknown-item")) == [["body", "substitute_rules", 0, "code"]]
    twice = await client.post(
        "/v1/items", headers=auth("coordinator"), json=item_body(code, packs=[{"unit": "kg", "base_units": 5}])
    )
    assert error_locs(assert_problem(twice, 422)) == [["body", "packs", 0, "unit"]]
    # Nothing half-written: the code is still free.
    ok = await client.post("/v1/items", headers=auth("coordinator"), json=item_body(code))
    assert ok.status_code == 201, ok.text
