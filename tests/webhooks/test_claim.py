"""Claiming is atomic: several dispatchers share the due deliveries and none is sent twice or logged twice.

Two `reliefhub worker webhooks` processes (each its own OS process, as replicas run in production) deliver a
backlog of 3,000 deliveries to a real local receiver; and a lease that ran out mid-attempt cannot leave two
attempt rows of the same number."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from reliefhub.gateway import Gateway
from services.webhooks.delivery import Dispatcher
from services.webhooks.safety import guarded_session
from shared.settings import Settings
from tests.helpers.auth import TokenFactory
from tests.helpers.receiver import Receiver
from tests.helpers.settings import ROOT
from tests.helpers.waiting import eventually
from tests.helpers.webhooks import create_endpoint, deliveries, delivery_detail

ENDPOINTS = 30
PER_ENDPOINT = 100  # 3,000 deliveries
EVENT_TYPE = "reliefhub.needs.site.created"


@contextlib.contextmanager
def dispatcher_processes(settings: Settings, count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`count` webhooks workers in their own processes, each with its dispatcher, on the test servers."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "RELIEFHUB_ENVIRONMENT": "test",
        "RELIEFHUB_JWT_SECRET": settings.jwt_secret,
        "RELIEFHUB_DB_POOL_SIZE": "10",
        "RELIEFHUB_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "RELIEFHUB_WEBHOOK_POLL_SECONDS": "0.02",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "reliefhub.cli", "worker", "webhooks"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            if proc.stdout is not None:
                proc.stdout.close()


async def _started(proc: subprocess.Popen[bytes]) -> None:
    """Until the worker says it runs (it has imported everything by then)."""
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout=60)
    assert b"running" in line, line


async def _owe(engine: AsyncEngine, endpoint_ids: list[str], per_endpoint: int) -> list[str]:
    """Deliveries due now, `per_endpoint` for each endpoint, as the fan-out writes them; their event ids."""
    rows: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    for endpoint_id in endpoint_ids:
        for n in range(per_endpoint):
            event_id = str(uuid.uuid4())
            event = {
                "specversion": "1.0",
                "id": event_id,
                "source": "reliefhub/needs",
                "type": EVENT_TYPE,
                "time": now.isoformat(),
                "data": {"n": n},
            }
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "endpoint_id": uuid.UUID(endpoint_id),
                    "event_id": event_id,
                    "event_type": EVENT_TYPE,
                    "event_time": now,
                    "payload": event,
                }
            )
    insert = text(
        "INSERT INTO webhooks.delivery (id, endpoint_id, event_id, event_type, event_time, payload, status, "
        "attempts, next_attempt_at) VALUES (:id, :endpoint_id, :event_id, :event_type, :event_time, "
        "CAST(:payload AS jsonb), 'pending', 0, now())"
    )
    async with engine.begin() as conn:
        await conn.execute(insert, [{**r, "payload": json.dumps(r["payload"])} for r in rows])
    return [r["event_id"] for r in rows]


async def _succeeded(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            (await conn.execute(text("SELECT count(*) FROM webhooks.delivery WHERE status = 'succeeded'"))).scalar_one()
        )


async def test_two_dispatcher_processes_send_each_of_3000_deliveries_exactly_once(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    receiver: Receiver,
    engine: AsyncEngine,
    migrated: Settings,
) -> None:
    group = auth("working_group", org="org-claims", group="logistics")
    endpoints = [await create_endpoint(client, group, receiver, f"/e{k}", [EVENT_TYPE]) for k in range(ENDPOINTS)]
    with dispatcher_processes(migrated, 2) as procs:
        await asyncio.gather(*(_started(p) for p in procs))
        await asyncio.sleep(1.0)  # both dispatchers polling
        event_ids = await _owe(engine, [e["id"] for e in endpoints], PER_ENDPOINT)
        total = len(event_ids)

        async def all_succeeded() -> bool:
            return await _succeeded(engine) == total

        await eventually(all_succeeded, seconds=45)
        await asyncio.sleep(0.5)  # anything sent twice has arrived by now
        assert all(p.poll() is None for p in procs), "a dispatcher process died"

    received = Counter(r.headers["webhook-id"] for r in receiver.received)
    twice = {k: n for k, n in received.items() if n > 1}
    assert not twice, f"{len(twice)} deliveries were sent more than once"
    assert set(received) == set(event_ids)
    assert all(r.verified_with for r in receiver.received)

    async with engine.connect() as conn:
        summary = (
            await conn.execute(
                text(
                    "SELECT count(*), count(*) FILTER (WHERE d.attempts = 1 AND d.status = 'succeeded'), "
                    "  (SELECT count(*) FROM webhooks.attempt), "
                    "  (SELECT count(*) FROM webhooks.attempt WHERE number = 1 AND status_code = 200), "
                    "  (SELECT count(DISTINCT delivery_id) FROM webhooks.attempt) "
                    "FROM webhooks.delivery d"
                )
            )
        ).one()
    assert tuple(summary) == (total, total, total, total, total)
    # And as the API tells it, for one endpoint.
    items = await deliveries(client, group, endpoints[0]["id"], limit="100")
    assert len(items) == PER_ENDPOINT and {d["status"] for d in items} == {"succeeded"}
    assert {d["attempts"] for d in items} == {1}
    detail = await delivery_detail(client, group, items[0]["id"])
    assert [a["number"] for a in detail["attempt_log"]] == [1]


@contextlib.asynccontextmanager
async def _dispatchers(gateway: Gateway, count: int) -> AsyncIterator[list[Dispatcher]]:
    """Dispatchers driven step by step (claim, attempt, record) instead of by their loop."""
    rt = gateway.apps["webhooks"].state.runtime
    made = [Dispatcher(rt) for _ in range(count)]
    for d in made:
        d.http = guarded_session(d.policy, limit=10, limit_per_host=0, timeout=5)
    try:
        yield made
    finally:
        for d in made:
            assert d.http is not None
            await d.http.close()


async def _attempt_and_record(dispatcher: Dispatcher, claimed: Any) -> None:
    dispatcher.in_flight[claimed.endpoint_id] = dispatcher.in_flight.get(claimed.endpoint_id, 0) + 1
    await dispatcher._attempt(claimed)
    batch, dispatcher.outcomes = dispatcher.outcomes, []
    await dispatcher._record(batch)


@pytest.mark.parametrize("stale_first", [True, False], ids=["stale-recorded-first", "stale-recorded-last"])
async def test_an_attempt_that_outlived_its_lease_is_not_counted_or_logged_twice(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    receiver: Receiver,
    engine: AsyncEngine,
    gateway: Gateway,
    stale_first: bool,
) -> None:
    group = auth("working_group", org="org-claims", group="logistics")
    endpoint = await create_endpoint(client, group, receiver, "/lease", [EVENT_TYPE])
    [event_id] = await _owe(engine, [endpoint["id"]], 1)
    async with _dispatchers(gateway, 2) as (first, second):
        [a] = await first._claim()
        assert await second._claim() == []  # leased
        # The first dispatcher stalls past its lease (a paused process, a long GC): the lease runs out.
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE webhooks.delivery SET next_attempt_at = now() WHERE id = :id"), {"id": a.id}
            )
        [b] = await second._claim()
        assert (b.id, b.attempts) == (a.id, a.attempts) == (a.id, 0) and b.lease_id != a.lease_id
        if stale_first:
            await _attempt_and_record(first, a)
            await _attempt_and_record(second, b)
        else:
            await _attempt_and_record(second, b)
            await _attempt_and_record(first, a)

    # Sent twice (at least once is the contract; receivers deduplicate by webhook-id), counted and logged once.
    assert [r.headers["webhook-id"] for r in receiver.at("/lease")] == [event_id, event_id]
    [delivery] = await deliveries(client, group, endpoint["id"])
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 1
    detail = await delivery_detail(client, group, delivery["id"])
    assert [(x["number"], x["status_code"]) for x in detail["attempt_log"]] == [(1, 200)]


async def test_an_attempt_in_flight_during_a_retry_request_leaves_the_retry_to_run(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    receiver: Receiver,
    engine: AsyncEngine,
    gateway: Gateway,
) -> None:
    group = auth("working_group", org="org-claims", group="logistics")
    endpoint = await create_endpoint(client, group, receiver, "/requeue", [EVENT_TYPE])
    await _owe(engine, [endpoint["id"]], 1)
    async with _dispatchers(gateway, 1) as (dispatcher,):
        [a] = await dispatcher._claim()
        r = await client.post(f"/v1/webhook-deliveries/{a.id}/retry", headers=group)
        assert r.status_code == 200 and r.json()["attempts"] == 0, r.text
        receiver.answers["/requeue"] = [(500, {}), (200, {})]
        await _attempt_and_record(dispatcher, a)  # answered 500, but the retry asked for since
        detail = await delivery_detail(client, group, str(a.id))
        assert detail["status"] == "pending" and detail["attempts"] == 0 and detail["attempt_log"] == []

        [b] = await dispatcher._claim()  # the retry, due at once
        assert b.id == a.id and b.attempts == 0
        await _attempt_and_record(dispatcher, b)
    detail = await delivery_detail(client, group, str(a.id))
    assert detail["status"] == "succeeded" and detail["attempts"] == 1
    assert [(x["number"], x["status_code"]) for x in detail["attempt_log"]] == [(1, 200)]
    assert len(receiver.at("/requeue")) == 2


async def test_an_answer_holding_a_nul_byte_is_logged_and_does_not_lose_the_batch(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    receiver: Receiver,
    engine: AsyncEngine,
    gateway: Gateway,
) -> None:
    """PostgreSQL text cannot hold NUL: unless it is replaced, recording the batch fails, and every attempt in
    it (other endpoints' too) is made again once its lease runs out."""
    group = auth("working_group", org="org-claims", group="logistics")
    odd = await create_endpoint(client, group, receiver, "/nul", [EVENT_TYPE])
    plain = await create_endpoint(client, group, receiver, "/plain", [EVENT_TYPE])
    receiver.bodies["/nul"] = b"ok\x00done"
    await _owe(engine, [odd["id"], plain["id"]], 1)
    async with _dispatchers(gateway, 1) as (dispatcher,):
        claimed = await dispatcher._claim()
        assert len(claimed) == 2
        for row in claimed:
            dispatcher.in_flight[row.endpoint_id] = dispatcher.in_flight.get(row.endpoint_id, 0) + 1
            await dispatcher._attempt(row)
        batch, dispatcher.outcomes = dispatcher.outcomes, []
        await dispatcher._record(batch)  # one batch, as the write loop takes them

    for endpoint, body in [(odd, "ok\ufffddone"), (plain, "status 200")]:
        [delivery] = await deliveries(client, group, endpoint["id"])
        assert delivery["status"] == "succeeded" and delivery["attempts"] == 1
        [attempt] = (await delivery_detail(client, group, delivery["id"]))["attempt_log"]
        assert attempt["response_body"] == body
