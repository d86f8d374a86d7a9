"""Needs in relief operations: `operation_id` on create and PATCH, checked against needs' copy of logistics'
operations (`reliefhub.logistics.operation.*`), and `GET /v1/needs?operation_id=`."""

from __future__ import annotations

from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers.auth import TokenFactory
from tests.helpers.funds import announce_operation
from tests.helpers.needs import create_site, need_body
from tests.helpers.problems import assert_problem, error_locs
from tests.helpers.streams import publish, read_events

MISSING = "00000000-0000-4000-8000-00000000abcd"


async def needs(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM needs.need"))).scalar_one())


async def test_needs_join_active_operations_and_are_listed_by_them(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any, engine: AsyncEngine, redis: Redis
) -> None:
    frontline = auth("frontline", org="org-ruijin")
    site = await create_site(client, frontline)

    async def post(**over: Any) -> httpx.Response:
        return await client.post("/v1/needs", headers=frontline, json=need_body(site["id"], **over))

    body = assert_problem(await post(operation_id=MISSING), 422, "unknown-operation")
    assert ["body", "operation_id"] in error_locs(body)
    assert await needs(engine) == 0

    operation = await announce_operation(gateway)
    made = await post(operation_id=operation["id"], title="上海行动的口罩")
    assert made.status_code == 201, made.text
    need = made.json()
    assert need["operation_id"] == operation["id"]
    plain = await post(title="行动之外", lines=[{"item_code": "food.grain.rice", "quantity": 5}])
    assert plain.status_code == 201 and plain.json()["operation_id"] is None
    listed = await client.get(f"/v1/needs?operation_id={operation['id']}", headers=frontline)
    assert [n["id"] for n in listed.json()["items"]] == [need["id"]]
    await publish(gateway, "needs")
    created = [e for e in await read_events(redis, "needs.events") if e["type"] == "reliefhub.needs.need.created"]
    assert [e["data"]["operation_id"] for e in created] == [operation["id"], None]

    # Moving a need into an operation: only an active one.
    closed = await announce_operation(gateway, name="已结束的行动")
    await announce_operation(gateway, closed["id"], version=2, status="closed", name="已结束的行动")
    url = f"/v1/needs/{plain.json()['id']}"
    etag = {"If-Match": plain.headers["etag"]}
    body = assert_problem(
        await client.patch(url, headers={**frontline, **etag}, json={"operation_id": closed["id"]}),
        422,
        "operation-closed",
    )
    assert ["body", "operation_id"] in error_locs(body)
    moved = await client.patch(url, headers={**frontline, **etag}, json={"operation_id": operation["id"]})
    assert moved.status_code == 200, moved.text
    assert moved.json()["operation_id"] == operation["id"]
    listed = await client.get(f"/v1/needs?operation_id={operation['id']}", headers=frontline)
    assert {n["id"] for n in listed.json()["items"]} == {need["id"], plain.json()["id"]}

    # Once the operation closes, it takes no new need.
    await announce_operation(gateway, operation["id"], version=2, status="closed")
    assert_problem(await post(operation_id=operation["id"], title="太晚了"), 422, "operation-closed")
    assert await needs(engine) == 2
