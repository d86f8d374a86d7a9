"""Helpers for the matching service's HTTP and stream tests: needs and offers through the API, the outboxes
relayed to Redis, and matching's projection consumers run until the streams are drained."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from reliefhub.gateway import Gateway
from shared.catalog import get_catalog
from shared.events.relay import OutboxRelay
from shared.runtime import Runtime
from shared.worker import consumers_for, run_job_once
from tests.conftest import TokenFactory
from tests.needs.helpers import create_need, create_site
from tests.supply.helpers import create_donor, create_offer, problem

__all__ = ["problem"]  # re-exported for the matching tests

RICE = "food.grain.rice"
N95 = "ppe.mask.n95"
SHANGHAI = {"region_code": "310115", "lat": 31.22, "lon": 121.54}
BEIJING = {"region_code": "110105", "lat": 39.92, "lon": 116.44}
NEAR_SHANGHAI = {"lat": 31.30, "lon": 121.50, "region_code": "310110"}
NEAR_BEIJING = {"lat": 39.95, "lon": 116.40, "region_code": "110108"}


def substitutable_item() -> tuple[str, str]:
    """An item with a substitute, neither of them checked by a working group: (item, substitute)."""
    catalog = get_catalog()
    for item in catalog.items:
        for sub in item.substitutes:
            other = catalog.get(sub)
            if item.check_by is None and other is not None and other.check_by is None:
                return item.code, sub
    raise AssertionError("the catalog has no unchecked item with an unchecked substitute")


def runtime(gateway: Gateway, service: str = "matching") -> Runtime:
    rt: Runtime = gateway.apps[service].state.runtime
    return rt


async def publish(gateway: Gateway, *services: str) -> int:
    """Relay the committed outbox rows of these services to their streams."""
    total = 0
    for name in services:
        rt = runtime(gateway, name)
        relay = OutboxRelay(engine=rt.engine, kit=rt.spec.kit, redis=rt.redis, settings=rt.settings)
        while published := await relay.publish_batch():
            total += published
    return total


async def consume(gateway: Gateway) -> int:
    """Run matching's projection consumers (needs.events, supply.events) over every new entry."""
    total = 0
    for consumer in consumers_for(runtime(gateway), name="tests"):
        await consumer.ensure_group()
        while handled := await consumer.read_new(block_ms=1):
            total += handled
    return total


async def project(gateway: Gateway) -> int:
    """Needs and supply events so far, published and projected into matching's tables."""
    await publish(gateway, "needs", "supply")
    return await consume(gateway)


async def run_job(gateway: Gateway, service: str, name: str) -> int | None:
    rt = runtime(gateway, service)
    job = next(j for j in rt.spec.jobs if j.name == name)
    return await run_job_once(rt, job)


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(text(sql), params)).mappings()]


async def shelter_need(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    *lines: dict[str, Any],
    where: dict[str, Any] = SHANGHAI,
    org: str = "org-shelter",
    kind: str = "shelter",
    **over: Any,
) -> dict[str, Any]:
    """A need of a fresh site (of `org`), by default 100 rice in Pudong."""
    headers = auth("frontline", org=org)
    site = await create_site(client, headers, kind=kind, **where)
    return await create_need(
        client, headers, site["id"], *(lines or ({"item_code": RICE, "quantity": 100},)), **{"urgency": "high", **over}
    )


async def donor_offer(
    client: httpx.AsyncClient, auth: TokenFactory, *lots: dict[str, Any], org: str = "org-grain", **fields: Any
) -> dict[str, Any]:
    """An in-kind offer of a fresh donor; each lot defaults to 60 rice near Pudong."""
    headers = auth("donor", org=org)
    donor = await create_donor(client, headers)
    filled = [{"item_code": RICE, "quantity": 60, **NEAR_SHANGHAI, **lot} for lot in (lots or ({},))]
    return await create_offer(client, headers, donor["id"], lots=filled, **fields)


async def allocation_run(client: httpx.AsyncClient, auth: TokenFactory, **scope: Any) -> dict[str, Any]:
    r = await client.post("/v1/allocation-runs", headers=auth("coordinator"), json={"scope": scope})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def get_json(client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any) -> Any:
    r = await client.get(path, headers=headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def outbox_envelopes(engine: AsyncEngine, schema: str) -> list[dict[str, Any]]:
    """The service's unpublished events in outbox order, marked published (the test delivers them itself)."""
    async with engine.begin() as conn:
        found = (
            await conn.execute(
                text(f"SELECT seq, envelope FROM {schema}.outbox_event WHERE published_at IS NULL ORDER BY seq")
            )
        ).all()
        await conn.execute(
            text(f"UPDATE {schema}.outbox_event SET published_at = now() WHERE seq = ANY(:s)"),
            {"s": [seq for seq, _ in found]},
        )
    return [env for _, env in found]


async def xadd(gateway: Gateway, stream: str, envelopes: Sequence[dict[str, Any]]) -> None:
    """Put these envelopes on the stream as the relay would, in this order."""
    redis = runtime(gateway).redis
    for env in envelopes:
        await redis.xadd(stream, {"type": env["type"], "event": json.dumps(env, ensure_ascii=False)})
