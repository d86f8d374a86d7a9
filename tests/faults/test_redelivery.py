"""The same event twice and events out of order, on the real relay, streams and consumer groups: each event is
handled once per group (the inbox), and an older version of a need arriving after a newer one changes nothing
(matching's projection keeps the newer version)."""

from __future__ import annotations

import httpx
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from reliefhub.gateway import Gateway
from tests.conftest import TokenFactory, eventually
from tests.faults.conftest import (
    EFFECT_GROUP,
    NEEDS_GROUPS,
    NEEDS_STREAM,
    caught_up,
    effect_counts,
    inbox_ids,
    outbox_events,
    running_workers,
    scalar,
    xadd_event,
)
from tests.needs.helpers import N95, RICE, WATER, create_need, create_site

LINES = "SELECT line_id::text, item_code, quantity, need_version FROM matching.need_line_view WHERE need_id = :n"


def handled(group: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value("reliefhub_events_handled_total", {"consumer": group, "outcome": outcome})
    return value or 0.0


async def test_duplicate_and_stale_events_are_handled_once_and_keep_the_newer_version(
    client: httpx.AsyncClient, gateway: Gateway, engine: AsyncEngine, redis: Redis, auth: TokenFactory
) -> None:
    h = auth("frontline", org="org-faults")
    site = await create_site(client, h)
    need = await create_need(client, h, site["id"], {"item_code": N95, "quantity": 100})
    r = await client.patch(
        f"/v1/needs/{need['id']}",
        headers={**h, "If-Match": '"1"'},
        json={"lines": [{"item_code": RICE, "quantity": 50}, {"item_code": WATER, "quantity": 10}]},
    )
    assert r.status_code == 200, r.text
    v2 = r.json()
    site_created, created, updated = await outbox_events(engine)
    assert (created["data"]["version"], updated["data"]["version"]) == (1, 2)

    # Nothing relayed yet. The stream gets the newer version first, the same event twice, then the older version
    # (late), twice; then the workers start and the relay publishes the outbox as well (three more duplicates).
    for envelope in (site_created, updated, updated, created, created):
        await xadd_event(redis, envelope)
    before = {(g, o): handled(g, o) for g in NEEDS_GROUPS for o in ("ok", "duplicate")}
    async with running_workers(gateway):

        async def settled() -> bool:
            published = await scalar(engine, "SELECT count(*) FROM needs.outbox_event WHERE published_at IS NULL")
            if published != 0 or await redis.xlen(NEEDS_STREAM) != 8:
                return False
            return all([await caught_up(redis, g) for g in [*NEEDS_GROUPS, EFFECT_GROUP]])

        await eventually(settled, seconds=20)

    ids = {site_created["id"], created["id"], updated["id"]}
    for group, schema in NEEDS_GROUPS.items():
        got = await inbox_ids(engine, schema, group)
        assert sorted(got) == sorted(ids), group
        if group != "webhooks-fanout":  # (which also handles matching.events: its counters count those too)
            # 8 entries, 3 events: the group handled each event once and skipped 5 duplicates.
            assert handled(group, "ok") - before[group, "ok"] == 3, group
            assert handled(group, "duplicate") - before[group, "duplicate"] == 5, group
    assert await effect_counts(engine) == dict.fromkeys(ids, 1)
    assert sorted(await inbox_ids(engine, "needs", EFFECT_GROUP)) == sorted(ids)

    async with engine.connect() as conn:
        rows = (await conn.execute(text(LINES), {"n": need["id"]})).all()
    assert sorted((r[0], r[1], r[2], r[3]) for r in rows) == sorted(
        (line["id"], line["item_code"], line["quantity"], 2) for line in v2["lines"]
    )
    # logistics' projection of the same stream keeps the newer version as well
    async with engine.connect() as conn:
        version, lines = (
            await conn.execute(
                text("SELECT version, lines FROM logistics.need_view WHERE need_id = :n"), {"n": need["id"]}
            )
        ).one()
    assert version == 2 and sorted(line["id"] for line in lines) == sorted(line["id"] for line in v2["lines"])
    assert await redis.xlen(f"{NEEDS_STREAM}.dead") == 0
