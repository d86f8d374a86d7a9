"""Replicas share the work: two processes of `reliefhub worker matching` and two of `reliefhub worker webhooks`
(each its own process and event loop, as in production) over one PostgreSQL and one Redis. Each stream entry goes
to one consumer of its group (together each entry once); every need line is projected; no lot and no line is
promised twice (continuous runs of one item group take a transaction-scoped advisory lock, so two replicas never
run the same group at once); each event reaches each webhook endpoint once, although both dispatchers poll."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from reliefhub.gateway import Gateway
from shared.settings import Settings
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE
from tests.helpers.needs import create_need, create_site
from tests.helpers.processes import process_env, serve, workers
from tests.helpers.receiver import serve_receiver
from tests.helpers.streams import publish
from tests.helpers.supply import reservable_lot
from tests.helpers.waiting import eventually
from tests.helpers.webhooks import create_endpoint

NEEDS = 12
LOTS = 3
LOT_QUANTITY = 40  # 120 in all, for 12 × 25 = 300 asked: supply is short, so double promising would show


SETTLED = """
SELECT d.endpoint_id,
       count(*) FILTER (WHERE d.status = 'succeeded') AS ok,
       count(*) FILTER (WHERE d.status <> 'succeeded') AS open,
       (SELECT count(*) FROM webhooks.attempt a JOIN webhooks.delivery x ON x.id = a.delivery_id
         WHERE x.endpoint_id = d.endpoint_id) AS attempts
FROM webhooks.delivery d GROUP BY d.endpoint_id
"""


async def handled_by(url: str, name: str, **labels: str) -> float:
    """A worker process's count `name` (summed over its other labels), from its own metrics server."""
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        r = await client.get("/metrics")
    assert r.status_code == 200, r.text
    return sum(
        s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def test_two_replicas_of_the_matching_and_webhooks_workers_divide_the_work_without_double_effects(
    migrated: Settings,
    gateway: Gateway,
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    auth: TokenFactory,
    tmp_path: Path,
) -> None:
    async with serve_receiver() as receiver:
        coordinator = auth("coordinator")
        first = await create_endpoint(client, coordinator, receiver, "/a", ["*"], scope="all")
        second = await create_endpoint(client, coordinator, receiver, "/b", ["*"], scope="all")

        env = process_env(
            migrated,
            tmp_path,
            RELIEFHUB_WEBHOOK_POLL_SECONDS="0.05",
            RELIEFHUB_WEBHOOK_ALLOWED_NETWORKS=json.dumps(migrated.webhook_allowed_networks),  # the receiver
        )
        with (
            serve("supply", env, tmp_path / "supply.log") as supply,
            serve(
                "logistics", {**env, "RELIEFHUB_SERVICE_URLS": json.dumps({"supply": supply})}, tmp_path / "lg.log"
            ) as logistics,
        ):
            # What matching calls (a site's decline of an accepted proposal asks logistics).
            env["RELIEFHUB_SERVICE_URLS"] = json.dumps({"supply": supply, "logistics": logistics})
            with (
                workers("matching", 2, env, tmp_path) as matchers,
                workers("webhooks", 2, env, tmp_path) as dispatchers,
            ):
                frontline = auth("frontline", org="org-replicas")
                site = await create_site(client, frontline)
                for _ in range(LOTS):
                    await reservable_lot(client, auth, LOT_QUANTITY)
                published = await publish(gateway, "needs", "supply")
                for i in range(NEEDS):  # in waves, so that each replica, blocked on its read in turn, gets some
                    await create_need(client, frontline, site["id"], {"item_code": RICE, "quantity": 25}, title=f"n{i}")
                    published += await publish(gateway, "needs")
                    await asyncio.sleep(0.2)
                assert published >= NEEDS + LOTS

                async def projected() -> bool:
                    async with engine.connect() as conn:
                        n = await conn.scalar(text("SELECT count(*) FROM matching.need_line_view"))
                    return n == NEEDS

                await eventually(projected, seconds=60)

                async def proposed() -> list[Any]:
                    async with engine.connect() as conn:
                        rows = await conn.execute(
                            text(
                                "SELECT id, need_line_id, lot_id, quantity, coalesce(lot_quantity, quantity) AS lq "
                                "FROM matching.proposal WHERE status = 'proposed'"
                            )
                        )
                        return list(rows)

                async def all_supply_proposed() -> bool:
                    return sum(x.lq for x in await proposed()) >= LOTS * LOT_QUANTITY

                await eventually(all_supply_proposed, seconds=60)
                await asyncio.sleep(2)  # a second replica's run, were it not locked out, would add to them now
                rows = await proposed()

                # Every webhook event reaches each endpoint once: all deliveries settled, as many requests.
                def received(path: str) -> int:
                    return len({r.headers["webhook-id"] for r in receiver.received if r.path == path})

                async def settled() -> list[Any]:
                    async with engine.connect() as conn:
                        rows = list(await conn.execute(text(SETTLED)))
                    paths = {uuid.UUID(first["id"]): "/a", uuid.UUID(second["id"]): "/b"}
                    done = len(rows) == 2 and all(
                        r.open == 0 and r.ok >= NEEDS and r.ok == received(paths[r.endpoint_id]) for r in rows
                    )
                    return rows if done else []

                await eventually(settled, seconds=60)
                await asyncio.sleep(1)  # a second dispatcher that took a delivery again would send it now
                endpoints = {r.endpoint_id: r for r in await eventually(settled, seconds=30)}
                got = Counter((r.path, r.headers["webhook-id"]) for r in receiver.received)
                handled = {
                    "matching": [
                        await handled_by(url, "reliefhub_events_handled_total", consumer="matching-projection")
                        for url in matchers
                    ],
                    "webhooks": [await handled_by(url, "reliefhub_webhook_attempts_total") for url in dispatchers],
                }

    # No lot promised beyond its quantity, no line beyond what it asks.
    by_lot = Counter[Any]()
    by_line = Counter[Any]()
    for row in rows:
        by_lot[row.lot_id] += row.lq
        by_line[row.need_line_id] += row.quantity
    assert len(by_lot) == LOTS and all(q <= LOT_QUANTITY for q in by_lot.values()), by_lot
    assert all(q <= 25 for q in by_line.values()), by_line
    assert sum(by_lot.values()) == LOTS * LOT_QUANTITY

    assert max(got.values()) == 1, [k for k, n in got.items() if n > 1]
    for endpoint in (first, second):  # each delivery sent once (its one attempt answered 2xx)
        counts = endpoints[uuid.UUID(endpoint["id"])]
        assert counts.ok == counts.attempts, counts

    # Between the two processes of each worker, each piece of work was done once.
    assert sum(handled["matching"]) == published and sum(handled["webhooks"]) == len(got), handled
