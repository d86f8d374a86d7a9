"""Helpers for the needs service tests: creating sites and needs through HTTP, reading published events."""

from __future__ import annotations

import json
from typing import Any

import httpx
from redis.asyncio import Redis

from reliefhub.gateway import Gateway
from shared.events.relay import OutboxRelay
from shared.runtime import Runtime

PROBLEM_JSON = "application/problem+json"
N95 = "ppe.mask.n95"
RICE = "food.grain.rice"
WATER = "water.bottled.small_550ml"
QUILT = "shelter.bedding.quilt"


def site_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "瑞金医院",
        "kind": "hospital",
        "region_code": "310101",
        "address": "上海市黄浦区瑞金二路197号",
        "lat": 31.21,
        "lon": 121.47,
        "contact_name": "王医生",
        "contact_phone": "+86 138 0000 0000",
    }
    body.update(over)
    return body


async def create_site(client: httpx.AsyncClient, headers: dict[str, str], **over: Any) -> dict[str, Any]:
    r = await client.post("/v1/sites", headers=headers, json=site_body(**over))
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def need_body(site_id: str, /, *lines: dict[str, Any], **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "site_id": site_id,
        "title": "ICU 防护物资",
        "urgency": "normal",
        "lines": list(lines) or [{"item_code": N95, "quantity": 100}],
    }
    body.update(over)
    return body


async def create_need(
    client: httpx.AsyncClient, headers: dict[str, str], site_id: str, /, *lines: dict[str, Any], **over: Any
) -> dict[str, Any]:
    r = await client.post("/v1/needs", headers=headers, json=need_body(site_id, *lines, **over))
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def assert_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:reliefhub:problem:")
    return body


def error_locs(body: dict[str, Any]) -> list[list[Any]]:
    assert isinstance(body.get("errors"), list) and body["errors"], body
    for e in body["errors"]:
        assert set(e) >= {"loc", "msg"} and isinstance(e["loc"], list) and e["msg"], e
    return [e["loc"] for e in body["errors"]]


async def collect_pages(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], params: dict[str, Any], limit: int = 2
) -> tuple[list[str], int]:
    """Ids over every page (following next_cursor) and the number of pages fetched."""
    ids: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        q = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        r = await client.get(path, headers=headers, params=q)
        assert r.status_code == 200, r.text
        page = r.json()
        pages += 1
        assert len(page["items"]) <= limit
        ids += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, pages
        assert pages < 50, "pagination does not terminate"


def needs_runtime(gateway: Gateway) -> Runtime:
    rt: Runtime = gateway.apps["needs"].state.runtime
    return rt


async def publish_outbox(gateway: Gateway) -> int:
    rt = needs_runtime(gateway)
    relay = OutboxRelay(engine=rt.engine, kit=rt.spec.kit, redis=rt.redis, settings=rt.settings)
    total = 0
    while published := await relay.publish_batch():
        total += published
    return total


async def read_events(redis: Redis, group: str = "needs-tests", stream: str = "needs.events") -> list[dict[str, Any]]:
    """Every entry of the stream not yet delivered to `group`, parsed, in stream order."""
    groups = [g["name"] for g in await redis.xinfo_groups(stream)] if await redis.exists(stream) else []
    if group not in groups:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    resp: Any = await redis.xreadgroup(group, "tester", {stream: ">"}, count=1000)
    entries = resp.get(stream, [[]])[0] if isinstance(resp, dict) else (resp[0][1] if resp else [])
    out = []
    for msg_id, fields in entries:
        event = json.loads(fields["event"])
        assert fields["type"] == event["type"]
        out.append(event)
        await redis.xack(stream, group, msg_id)
    return out
