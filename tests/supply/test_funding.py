"""Offers in relief operations and cash pledges into special funds: supply checks `operation_id` and `fund_id`
against its copies of logistics' operations and funds (fed by `reliefhub.logistics.operation.*` / `fund.*`)."""

from __future__ import annotations

from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers.auth import TokenFactory
from tests.helpers.funds import announce_fund, announce_operation
from tests.helpers.problems import assert_problem, error_locs
from tests.helpers.streams import publish, read_events
from tests.helpers.supply import create_donor, offer_body, pledge_body

MISSING = "00000000-0000-4000-8000-00000000abcd"


async def offers(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM supply.offer"))).scalar_one())


async def test_a_pledge_goes_into_a_known_fund_of_its_currency(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any, engine: AsyncEngine, redis: Redis
) -> None:
    operation = await announce_operation(gateway)
    fund = await announce_fund(gateway, operation_id=operation["id"], name="儿童心脏病救助基金")
    dollars = await announce_fund(gateway, currency="USD")
    headers = auth("donor", org="org-heart")
    donor = await create_donor(client, headers, kind="foundation")

    async def offer(**over: Any) -> httpx.Response:
        return await client.post("/v1/offers", headers=headers, json=pledge_body(donor["id"], 600_000_000, **over))

    body = assert_problem(await offer(fund_id=MISSING), 422, "unknown-fund")
    assert ["body", "fund_id"] in error_locs(body)
    body = assert_problem(await offer(fund_id=dollars["id"]), 422, "fund-currency-mismatch")
    assert ["body", "currency"] in error_locs(body)
    other = await announce_operation(gateway, name="另一行动")
    assert_problem(await offer(fund_id=fund["id"], operation_id=other["id"]), 422, "fund-operation-mismatch")
    in_kind = offer_body(donor["id"], fund_id=fund["id"])
    body = assert_problem(await client.post("/v1/offers", headers=headers, json=in_kind), 422)
    assert any("only a cash pledge goes into a fund" in e["msg"] for e in body["errors"]), body
    assert await offers(engine) == 0

    made = await offer(fund_id=fund["id"])
    assert made.status_code == 201, made.text
    pledge = made.json()
    # The fund's operation is the pledge's.
    assert pledge["fund_id"] == fund["id"] and pledge["operation_id"] == operation["id"]
    assert await offers(engine) == 1
    coordinator = auth("coordinator")
    for query in (f"operation_id={operation['id']}", f"fund_id={fund['id']}"):
        listed = (await client.get(f"/v1/offers?{query}", headers=coordinator)).json()["items"]
        assert [o["id"] for o in listed] == [pledge["id"]], query
    assert (await client.get(f"/v1/offers?operation_id={other['id']}", headers=coordinator)).json()["items"] == []

    await publish(gateway, "supply")
    created = [e for e in await read_events(redis, "supply.events") if e["type"] == "reliefhub.supply.offer.created"]
    assert [(e["data"]["fund_id"], e["data"]["operation_id"]) for e in created] == [(fund["id"], operation["id"])]


async def test_offers_join_only_active_operations_supply_knows(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any, engine: AsyncEngine
) -> None:
    headers = auth("donor", org="org-grain")
    donor = await create_donor(client, headers)

    async def offer(**over: Any) -> httpx.Response:
        return await client.post("/v1/offers", headers=headers, json=offer_body(donor["id"], **over))

    body = assert_problem(await offer(operation_id=MISSING), 422, "unknown-operation")
    assert ["body", "operation_id"] in error_locs(body)
    operation = await announce_operation(gateway)
    joined = await offer(operation_id=operation["id"])
    assert joined.status_code == 201, joined.text
    assert joined.json()["operation_id"] == operation["id"]

    await announce_operation(gateway, operation["id"], version=2, status="closed")
    body = assert_problem(await offer(operation_id=operation["id"]), 422, "operation-closed")
    assert ["body", "operation_id"] in error_locs(body)
    # A late copy of an older version changes nothing: the operation stays closed.
    await announce_operation(gateway, operation["id"], version=1, status="active")
    assert_problem(await offer(operation_id=operation["id"]), 422, "operation-closed")
    # A fund of a closed operation takes no new pledge either.
    fund = await announce_fund(gateway, operation_id=operation["id"])
    pledge = pledge_body(donor["id"], 10_000, fund_id=fund["id"])
    body = assert_problem(await client.post("/v1/offers", headers=headers, json=pledge), 422, "operation-closed")
    assert ["body", "fund_id"] in error_locs(body)
    assert await offers(engine) == 1


async def test_an_offer_moves_between_active_operations(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any
) -> None:
    headers = auth("donor", org="org-grain")
    donor = await create_donor(client, headers)
    made = await client.post("/v1/offers", headers=headers, json=offer_body(donor["id"]))
    assert made.status_code == 201 and made.json()["operation_id"] is None
    url = f"/v1/offers/{made.json()['id']}"
    operation = await announce_operation(gateway)
    closed = await announce_operation(gateway, status="closed")

    async def patch(body: dict[str, Any]) -> httpx.Response:
        etag = (await client.get(url, headers=headers)).headers["etag"]
        return await client.patch(url, headers={**headers, "If-Match": etag}, json=body)

    assert_problem(await patch({"operation_id": closed["id"]}), 422, "operation-closed")
    assert_problem(await patch({"operation_id": MISSING}), 422, "unknown-operation")
    moved = await patch({"operation_id": operation["id"]})
    assert moved.status_code == 200 and moved.json()["operation_id"] == operation["id"], moved.text
    out = await patch({"operation_id": None})
    assert out.status_code == 200 and out.json()["operation_id"] is None, out.text

    # A pledge into a fund stays in the fund's operation.
    fund = await announce_fund(gateway, operation_id=operation["id"])
    pledge = await client.post("/v1/offers", headers=headers, json=pledge_body(donor["id"], 5_000, fund_id=fund["id"]))
    assert pledge.status_code == 201, pledge.text
    url = f"/v1/offers/{pledge.json()['id']}"
    assert_problem(await patch({"operation_id": None}), 422, "fund-operation-mismatch")
    assert (await patch({"note": "unchanged operation"})).json()["operation_id"] == operation["id"]
