"""Events of the needs service: written to the outbox with the change, relayed to `needs.events` as
CloudEvents 1.0, read back with a consumer group."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import N95, RICE
from tests.helpers.needs import create_need, create_site, need_body
from tests.helpers.streams import publish, read_events

SITE_FIELDS = {"id", "org", "name", "kind", "region_code", "lat", "lon", "version"}


def assert_envelope(event: dict, type_: str, subject: str) -> None:
    assert event["type"] == type_
    assert event["specversion"] == "1.0"
    assert event["source"] == "/reliefhub/needs"
    assert event["subject"] == subject
    assert event["datacontenttype"] == "application/json"
    uuid.UUID(event["id"])
    assert datetime.fromisoformat(event["time"]).utcoffset() == timedelta(0)
    assert isinstance(event["data"], dict)


async def test_lifecycle_events_reach_the_stream(client, auth: TokenFactory, gateway, redis: Redis) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    need = await create_need(client, h, site["id"], {"item_code": N95, "quantity": 100}, urgency="high")
    nid = need["id"]
    r = await client.post(
        f"/v1/needs/{nid}/verify", headers=auth("coordinator"), json={"verdict": "verified", "reason": "电话核实"}
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/needs/{nid}/close", headers=h, json={"reason": "已收到捐赠"})
    assert r.status_code == 200, r.text

    assert await publish(gateway, "needs") == 4
    events = await read_events(redis, "needs.events")
    assert [e["type"] for e in events] == [
        "reliefhub.needs.site.created",
        "reliefhub.needs.need.created",
        "reliefhub.needs.need.verified",
        "reliefhub.needs.need.closed",
    ]
    assert len({e["id"] for e in events}) == 4
    site_created, created, verified, closed = events
    assert_envelope(site_created, "reliefhub.needs.site.created", site["id"])
    for e in (created, verified, closed):
        assert_envelope(e, e["type"], nid)
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)

    assert site_created["data"] == {
        "id": site["id"],
        "org": "org-a",
        "name": "瑞金医院",
        "kind": "hospital",
        "region_code": "310101",
        "lat": 31.21,
        "lon": 121.47,
        "version": 1,
    }

    data = created["data"]
    assert data["id"] == nid and data["site_id"] == site["id"] and data["org"] == "org-a"
    assert data["site_kind"] == "hospital" and data["region_code"] == "310101"
    assert data["lat"] == 31.21 and data["lon"] == 121.47
    assert data["urgency"] == "high" and data["status"] == "open" and data["verification"] == "unverified"
    assert data["version"] == 1 and data["duplicate_of"] is None
    assert data["lines"] == [
        {
            "id": need["lines"][0]["id"],
            "item_code": N95,
            "quantity": 100,
            "unit": "piece",
            "quantity_matched": 0,
            "quantity_delivered": 0,
            "quantity_in_transit": 0,
            "status": "open",
            "item_request_id": None,
            "substitution_override": False,
            "quantity_claimed": 0,
        }
    ]
    assert verified["data"]["verification"] == "verified" and verified["data"]["reason"] == "电话核实"
    assert verified["data"]["version"] == 2
    assert closed["data"]["status"] == "closed" and closed["data"]["reason"] == "已收到捐赠"
    assert closed["data"]["version"] == 3

    # published once: the relay marks rows, the group has nothing new
    assert await publish(gateway, "needs") == 0
    assert await read_events(redis, "needs.events") == []


async def test_site_events_never_carry_contacts(client, auth: TokenFactory, gateway, redis: Redis) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h, contact_phone="13912345678", contact_name="李护士长")
    r = await client.patch(
        f"/v1/sites/{site['id']}", headers={**h, "If-Match": '"1"'}, json={"contact_phone": "13987654321"}
    )
    assert r.status_code == 200, r.text
    await publish(gateway, "needs")
    raw: Any = await redis.xrange("needs.events")
    assert len(raw) == 2
    assert all("1391234" not in f["event"] and "1398765" not in f["event"] for _, f in raw)
    assert all("李护士长" not in f["event"] for _, f in raw)
    events = await read_events(redis, "needs.events")
    assert [e["type"] for e in events] == ["reliefhub.needs.site.created", "reliefhub.needs.site.updated"]
    for e in events:
        assert set(e["data"]) == SITE_FIELDS
        assert_envelope(e, e["type"], site["id"])
    assert events[1]["data"]["version"] == 2


async def test_duplicate_merge_update_confirm_events(client, auth: TokenFactory, gateway, redis: Redis) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    first = await create_need(client, h, site["id"])
    second = await create_need(client, h, site["id"])
    merged = await client.post(
        "/v1/needs",
        headers=h,
        params={"on_duplicate": "merge"},
        json=need_body(site["id"], {"item_code": RICE, "quantity": 3}, {"item_code": N95, "quantity": 1}),
    )
    assert merged.status_code == 200, merged.text
    target = merged.json()["id"]
    assert target == second["id"]  # the most recent open twin
    patched = await client.patch(f"/v1/needs/{first['id']}", headers={**h, "If-Match": '"1"'}, json={"title": "改"})
    assert patched.status_code == 200, patched.text
    assert (await client.post(f"/v1/needs/{first['id']}/confirm", headers=h)).status_code == 200

    await publish(gateway, "needs")
    events = [e for e in await read_events(redis, "needs.events") if e["type"] != "reliefhub.needs.site.created"]
    assert [(e["type"].rsplit(".", 1)[1], e["subject"]) for e in events] == [
        ("created", first["id"]),
        ("created", second["id"]),
        ("merged", target),
        ("updated", first["id"]),
        ("confirmed", first["id"]),
    ]
    assert events[1]["data"]["duplicate_of"] == first["id"]
    assert [(x["item_code"], x["quantity"]) for x in events[2]["data"]["lines"]] == [(N95, 101), (RICE, 3)]
    assert events[3]["data"]["title"] == "改" and events[4]["data"]["version"] == 3


async def test_failed_requests_publish_nothing(
    client, auth: TokenFactory, gateway, redis: Redis, engine: AsyncEngine
) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    await publish(gateway, "needs")
    await read_events(redis, "needs.events")

    bad_item = await client.post(
        "/v1/needs", headers=h, json=need_body(site["id"], {"item_code": "nope", "quantity": 1})
    )
    assert bad_item.status_code == 422
    foreign = await client.post("/v1/needs", headers=auth("frontline", org="org-b"), json=need_body(site["id"]))
    assert foreign.status_code == 403
    stale = await client.patch(f"/v1/sites/{site['id']}", headers={**h, "If-Match": '"9"'}, json={"name": "x"})
    assert stale.status_code == 412

    async with engine.connect() as conn:
        pending = (
            await conn.execute(text("SELECT count(*) FROM needs.outbox_event WHERE published_at IS NULL"))
        ).scalar()
    assert pending == 0
    assert await publish(gateway, "needs") == 0
    assert await read_events(redis, "needs.events") == []


async def test_imported_needs_each_publish_created(client, auth: TokenFactory, gateway, redis: Redis) -> None:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    data = (
        "need_ref,site_id,title,item_code,quantity\n"
        f"a,{site['id']},一,{N95},1\n"
        f"a,{site['id']},一,{RICE},2\n"
        f",{site['id']},二,shelter.bedding.quilt,3\n"
    ).encode()
    r = await client.post("/v1/needs/imports", headers=h, files={"file": ("n.csv", data, "text/csv")})
    assert r.status_code == 201, r.text
    await publish(gateway, "needs")
    created = [e for e in await read_events(redis, "needs.events") if e["type"] == "reliefhub.needs.need.created"]
    assert [e["subject"] for e in created] == r.json()["created"]
    assert [len(e["data"]["lines"]) for e in created] == [2, 1]
