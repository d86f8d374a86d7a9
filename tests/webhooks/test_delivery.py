"""Webhook delivery end to end, to a real local HTTP receiver that checks every signature with the
`standardwebhooks` library: delivery, rotation, retries, 410, Retry-After, restarts, slow endpoints, size."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from reliefhub.gateway import Gateway
from shared.settings import Settings
from shared.worker import run_worker
from tests.helpers.auth import TokenFactory
from tests.helpers.needs import create_site
from tests.helpers.receiver import Receiver
from tests.helpers.supply import create_donor
from tests.helpers.waiting import eventually
from tests.helpers.webhooks import create_endpoint, deliveries, delivery_detail


async def post_site(client: httpx.AsyncClient, auth: TokenFactory, name: str = "瑞金医院") -> dict[str, Any]:
    return await create_site(client, auth("frontline", org="org-site"), name=name)


async def test_an_event_is_delivered_signed(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None, receiver: Receiver
) -> None:
    group = auth("working_group", org="org-logistics-group", group="logistics")
    endpoint = await create_endpoint(client, group, receiver, "/needs", ["reliefhub.needs.*"], description="需求")
    await create_endpoint(client, group, receiver, "/supply", ["reliefhub.supply.*"])
    site = await post_site(client, auth)

    got = await eventually(lambda: _first(receiver, "/needs"))
    assert receiver.at("/supply") == []
    assert got.verified_with == [endpoint["secret"]]
    event = got.event
    assert event["type"] == "reliefhub.needs.site.created" and event["data"]["id"] == site["id"]
    assert got.headers["webhook-id"] == event["id"] and got.headers["content-type"] == "application/json"
    assert "contact_phone" not in event["data"]

    async def succeeded() -> list[dict[str, Any]] | None:
        r = await client.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries?status=succeeded", headers=group)
        return r.json()["items"] or None

    [delivery] = await eventually(succeeded)
    assert delivery["event_id"] == event["id"] and delivery["attempts"] == 1 and delivery["last_status_code"] == 200
    detail = (await client.get(f"/v1/webhook-deliveries/{delivery['id']}", headers=group)).json()
    [attempt] = detail["attempt_log"]
    assert attempt["status_code"] == 200 and attempt["response_body"] == "status 200" and attempt["duration_ms"] >= 0
    assert detail["payload"]["id"] == event["id"]
    # Never the secret again, and another org sees nothing of it.
    assert (await client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=group)).json()["secret"] is None
    other = auth("working_group", org="org-other", group="translation")
    assert (await client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=other)).status_code == 403


async def _first(receiver: Receiver, path: str) -> Any:
    return receiver.at(path)[0] if receiver.at(path) else None


# --- helpers of the tests below ---------------------------------------------------------------------------


def _group(auth: TokenFactory) -> dict[str, str]:
    return auth("working_group", org="org-device-check", group="medical_device")


async def _endpoint(client: httpx.AsyncClient, headers: dict[str, str], endpoint_id: str) -> dict[str, Any]:
    r = await client.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _disabled_events(redis: Any) -> list[dict[str, Any]]:
    """The `reliefhub.webhooks.endpoint.disabled` events on the webhooks stream."""
    out = []
    for _id, fields in await redis.xrange("webhooks.events"):
        event = json.loads(fields["event"])
        if event["type"] == "reliefhub.webhooks.endpoint.disabled":
            out.append(event)
    return out


async def _count(receiver: Receiver, path: str, n: int) -> list[Any] | None:
    got = receiver.at(path)
    return got if len(got) >= n else None


# --- 1. rotation -----------------------------------------------------------------------------------------------


async def test_rotation_signs_with_both_secrets_during_the_grace_period(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None, receiver: Receiver
) -> None:
    group = _group(auth)
    endpoint = await create_endpoint(client, group, receiver, "/rot", ["reliefhub.needs.site.created"])
    old = endpoint["secret"]
    await post_site(client, auth, "第一")
    [first] = await eventually(lambda: _count(receiver, "/rot", 1))
    assert first.verified_with == [old] and first.headers["webhook-signature"].count("v1,") == 1

    r = await client.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=group)
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new.startswith("whsec_") and new != old and r.json()["previous_secret_expires_at"] is not None
    assert (await _endpoint(client, group, endpoint["id"]))["secret"] is None
    receiver.secrets["/rot"], receiver.extra_secrets = new, [old]

    await post_site(client, auth, "第二")
    second = (await eventually(lambda: _count(receiver, "/rot", 2)))[1]
    signatures = second.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    assert second.verified_with == [new, old]
    for secret in (old, new):  # each secret on its own verifies the request
        Webhook(secret).verify(second.body, second.headers)

    r = await client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", headers=group, json={"grace_seconds": 0}
    )
    assert r.status_code == 200, r.text
    newest = r.json()["secret"]
    assert r.json()["previous_secret_expires_at"] is None
    receiver.secrets["/rot"], receiver.extra_secrets = newest, [new, old]

    await post_site(client, auth, "第三")
    third = (await eventually(lambda: _count(receiver, "/rot", 3)))[2]
    assert third.headers["webhook-signature"].count("v1,") == 1
    assert third.verified_with == [newest]
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(third.body, third.headers)


# --- 2. retries ------------------------------------------------------------------------------------------------


async def test_failures_are_retried_with_the_same_webhook_id_until_success(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None, receiver: Receiver
) -> None:
    group = _group(auth)
    receiver.answers["/flaky"] = [(500, {}), (500, {}), (500, {}), (200, {})]
    endpoint = await create_endpoint(client, group, receiver, "/flaky", ["reliefhub.needs.site.created"])
    await post_site(client, auth)

    async def succeeded() -> list[dict[str, Any]] | None:
        return await deliveries(client, group, endpoint["id"], status="succeeded") or None

    [delivery] = await eventually(succeeded)
    await asyncio.sleep(0.6)  # longer than the next step of the schedule: nothing more comes
    requests = receiver.at("/flaky")
    assert len(requests) == 4
    event_id = requests[0].event["id"]
    assert {r.headers["webhook-id"] for r in requests} == {event_id} == {r.event["id"] for r in requests}
    assert all(r.verified_with == [endpoint["secret"]] for r in requests)
    assert len({r.headers["webhook-timestamp"] + r.headers["webhook-signature"] for r in requests}) >= 2

    assert len(await deliveries(client, group, endpoint["id"])) == 1
    assert delivery["event_id"] == event_id and delivery["attempts"] == 4 and delivery["last_status_code"] == 200
    detail = await delivery_detail(client, group, delivery["id"])
    assert detail["status"] == "succeeded" and detail["next_attempt_at"] is None
    assert [a["number"] for a in detail["attempt_log"]] == [1, 2, 3, 4]
    assert [a["status_code"] for a in detail["attempt_log"]] == [500, 500, 500, 200]
    assert detail["attempt_log"][0]["response_body"] == "status 500"
    assert (await _endpoint(client, group, endpoint["id"]))["failing_since"] is None


# --- 3. 410 Gone -----------------------------------------------------------------------------------------------


async def test_410_disables_the_endpoint_at_once_and_says_so(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None, receiver: Receiver, redis: Any
) -> None:
    group = _group(auth)
    receiver.answers["/gone"] = [(410, {})]
    gone = await create_endpoint(client, group, receiver, "/gone", ["reliefhub.needs.site.created"])
    watcher = await create_endpoint(client, group, receiver, "/watch", ["reliefhub.webhooks.*"])
    await create_endpoint(client, group, receiver, "/alive", ["reliefhub.needs.site.created"])
    await post_site(client, auth, "第一")

    [notice] = await eventually(lambda: _count(receiver, "/watch", 1))
    assert notice.verified_with == [watcher["secret"]]
    event = notice.event
    assert event["type"] == "reliefhub.webhooks.endpoint.disabled"
    assert event["data"]["id"] == gone["id"] and event["data"]["enabled"] is False
    assert "410" in event["data"]["reason"] and event["data"]["url"] == gone["url"]
    [on_stream] = await _disabled_events(redis)
    assert on_stream["id"] == event["id"] and on_stream["data"]["id"] == gone["id"]

    after = await _endpoint(client, group, gone["id"])
    assert after["enabled"] is False and "410" in after["disabled_reason"]
    assert after["version"] > gone["version"]
    [delivery] = await deliveries(client, group, gone["id"])
    assert delivery["status"] == "failed" and delivery["attempts"] == 1 and delivery["last_status_code"] == 410
    disabled = await client.get("/v1/webhook-endpoints?enabled=false", headers=group)
    assert [e["id"] for e in disabled.json()["items"]] == [gone["id"]]

    # A later event reaches the live endpoint but not the disabled one, and nothing is retried.
    await post_site(client, auth, "第二")
    await eventually(lambda: _count(receiver, "/alive", 2))
    await asyncio.sleep(0.5)
    assert len(receiver.at("/gone")) == 1
    assert len(await deliveries(client, group, gone["id"])) == 1
    assert len(receiver.at("/watch")) == 1


# --- 4. Retry-After --------------------------------------------------------------------------------------------


async def test_retry_after_is_honoured(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None, receiver: Receiver
) -> None:
    group = _group(auth)
    receiver.answers["/busy"] = [(429, {"Retry-After": "2"}), (200, {})]
    endpoint = await create_endpoint(client, group, receiver, "/busy", ["reliefhub.needs.site.created"])
    await post_site(client, auth)

    await eventually(lambda: _count(receiver, "/busy", 1))
    await asyncio.sleep(1.2)  # the schedule alone would have retried after 0.2 s
    assert len(receiver.at("/busy")) == 1
    [pending] = await deliveries(client, group, endpoint["id"], status="pending")
    assert pending["attempts"] == 1 and pending["last_status_code"] == 429

    async def succeeded() -> list[dict[str, Any]] | None:
        return await deliveries(client, group, endpoint["id"], status="succeeded") or None

    [delivery] = await eventually(succeeded)
    first, second = (await delivery_detail(client, group, delivery["id"]))["attempt_log"]
    assert (first["status_code"], second["status_code"]) == (429, 200)
    gap = datetime.fromisoformat(second["started_at"]) - datetime.fromisoformat(first["started_at"])
    assert gap.total_seconds() >= 1.9, gap
    assert len(receiver.at("/busy")) == 2


# --- 5. failing for too long -------------------------------------------------------------------------------------


async def test_an_endpoint_failing_for_too_long_is_disabled(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    workers: None,
    receiver: Receiver,
    engine: AsyncEngine,
    redis: Any,
) -> None:
    group = _group(auth)
    receiver.answers["/down"] = [(500, {})]
    endpoint = await create_endpoint(client, group, receiver, "/down", ["reliefhub.needs.site.created"])
    await post_site(client, auth)

    async def failing() -> dict[str, Any] | None:
        body = await _endpoint(client, group, endpoint["id"])
        return body if body["failing_since"] else None

    assert (await eventually(failing))["enabled"] is True  # one failure is no reason to give up
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE webhooks.endpoint SET failing_since = now() - interval '6 days' WHERE id = :id"),
            {"id": endpoint["id"]},
        )

    async def disabled() -> dict[str, Any] | None:
        body = await _endpoint(client, group, endpoint["id"])
        return body if not body["enabled"] else None

    after = await eventually(disabled, seconds=5)
    assert after["disabled_reason"].startswith("every delivery failed since")
    [event] = await eventually(lambda: _disabled_events(redis))
    assert event["data"]["id"] == endpoint["id"] and event["data"]["reason"] == after["disabled_reason"]
    since = datetime.fromisoformat(event["data"]["failing_since"])
    assert datetime.now(UTC) - since > timedelta(days=5)

    made = len(receiver.at("/down"))
    assert made < 8  # disabled before the schedule was spent
    await asyncio.sleep(1.0)
    assert len(receiver.at("/down")) == made
    [delivery] = await deliveries(client, group, endpoint["id"])
    assert delivery["status"] == "pending" and delivery["attempts"] == made


# --- 6. a worker restart mid-retry -------------------------------------------------------------------------------


async def test_a_worker_restart_mid_retry_loses_nothing(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    gateway: Gateway,
    receiver: Receiver,
    engine: AsyncEngine,
) -> None:
    def start(stop: asyncio.Event) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(run_worker(app.state.runtime, stop)) for app in gateway.apps.values()]

    group = _group(auth)
    receiver.answers["/restart"] = [(500, {}), (500, {}), (200, {})]
    endpoint = await create_endpoint(client, group, receiver, "/restart", ["reliefhub.needs.site.created"])
    stop = asyncio.Event()
    tasks = start(stop)
    try:
        await post_site(client, auth)

        async def failed_once() -> list[dict[str, Any]] | None:
            items = await deliveries(client, group, endpoint["id"])
            return items if items and items[0]["attempts"] >= 1 else None

        await eventually(failed_once)
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    # Stopped: the delivery waits in PostgreSQL, due, and nothing is sent.
    [waiting] = await deliveries(client, group, endpoint["id"])
    assert waiting["status"] == "pending" and 1 <= waiting["attempts"] <= 2
    made = len(receiver.at("/restart"))
    assert made == waiting["attempts"]
    await asyncio.sleep(0.8)
    assert len(receiver.at("/restart")) == made

    stop = asyncio.Event()
    tasks = start(stop)
    try:

        async def succeeded() -> list[dict[str, Any]] | None:
            return await deliveries(client, group, endpoint["id"], status="succeeded") or None

        [delivery] = await eventually(succeeded)
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    assert delivery["attempts"] == 3
    detail = await delivery_detail(client, group, delivery["id"])
    assert [a["status_code"] for a in detail["attempt_log"]] == [500, 500, 200]
    requests = receiver.at("/restart")
    assert len(requests) == 3 and len({r.headers["webhook-id"] for r in requests}) == 1
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT count(*), count(DISTINCT event_id) FROM webhooks.delivery WHERE endpoint_id = :id"),
                {"id": endpoint["id"]},
            )
        ).one()
    assert tuple(rows) == (1, 1)


# --- 7. a slow endpoint does not hold up others ------------------------------------------------------------------


async def test_a_slow_endpoint_does_not_delay_a_fast_one(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None, receiver: Receiver, migrated: Settings
) -> None:
    group = _group(auth)
    receiver.delay["/slow"] = 3.0
    await create_endpoint(client, group, receiver, "/slow", ["reliefhub.needs.site.created"])
    await create_endpoint(client, group, receiver, "/fast", ["reliefhub.needs.site.created"])
    loop = asyncio.get_running_loop()
    for i in range(20):
        await post_site(client, auth, f"站点{i}")
    posted = loop.time()

    await eventually(lambda: _count(receiver, "/fast", 20), seconds=1.5)
    assert loop.time() - posted < 1.5
    limit = migrated.webhook_concurrency_per_endpoint
    assert 1 <= len(receiver.at("/slow")) <= limit
    # Until the first slow answers come back (3 s), no more than the limit are in flight there.
    await asyncio.sleep(max(0.0, receiver.at("/slow")[0].received_at + 2.5 - loop.time()))
    assert len(receiver.at("/slow")) <= limit
    assert len({r.event["id"] for r in receiver.at("/fast")}) == 20
    assert receiver.peak["/slow"] <= limit
    receiver.delay["/slow"] = 0.0


async def test_at_most_the_limit_of_attempts_are_in_flight_per_endpoint(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None, receiver: Receiver, migrated: Settings
) -> None:
    """A burst of due deliveries for an endpoint that already has attempts in flight tops it up to the limit,
    not beyond."""
    group = _group(auth)
    limit = migrated.webhook_concurrency_per_endpoint
    endpoint = await create_endpoint(client, group, receiver, "/burst", ["reliefhub.needs.site.created"])
    since = datetime.now(UTC)
    for i in range(2 * limit):
        await post_site(client, auth, f"站点{i}")

    async def all_succeeded() -> bool:
        return len(await deliveries(client, group, endpoint["id"], status="succeeded")) == 2 * limit

    await eventually(all_succeeded)
    receiver.delay["/burst"] = 2.0
    await post_site(client, auth, "最后")  # one attempt in flight…
    await eventually(lambda: _count(receiver, "/burst", 2 * limit + 1))
    before = len(receiver.received)
    r = await client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/replay", headers=group, json={"since": since.isoformat()}
    )
    assert r.status_code == 200 and r.json() == {"requeued": 2 * limit + 1}, r.text
    # …and then a burst of due deliveries: the endpoint is topped up to the limit, no more.
    await eventually(lambda: _count(receiver, "/burst", before + limit - 1))
    await asyncio.sleep(1.0)
    assert receiver.peak["/burst"] <= limit, receiver.peak
    receiver.delay["/burst"] = 0.0


# --- 10. large payloads ----------------------------------------------------------------------------------------


async def test_a_large_event_is_sent_as_a_dataref(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None, receiver: Receiver, migrated: Settings
) -> None:
    group = _group(auth)
    endpoint = await create_endpoint(client, group, receiver, "/big", ["reliefhub.supply.*"])
    donor_org = auth("donor", org="org-grain")
    donor = await create_donor(client, donor_org, name="粮油公司")
    lots = [
        {"item_code": "food.grain.rice", "quantity": 10 + i, "lat": 31.2, "lon": 121.5, "region_code": "310101"}
        for i in range(200)
    ]
    r = await client.post(
        "/v1/offers", headers=donor_org, json={"donor_id": donor["id"], "kind": "in_kind", "lots": lots}
    )
    assert r.status_code == 201, r.text
    offer = r.json()

    async def offer_created() -> Any:
        got = [x for x in receiver.at("/big") if x.event["type"] == "reliefhub.supply.offer.created"]
        return got[0] if got else None

    got = await offer_created() or await eventually(offer_created)
    assert got.verified_with == [endpoint["secret"]]
    body = got.event
    assert len(got.body) <= migrated.webhook_max_payload_bytes
    assert "data" not in body and body["subject"] == offer["id"] and body["id"] == got.headers["webhook-id"]
    prefix = migrated.public_base_url.rstrip("/") + "/v1/webhook-deliveries/"
    assert body["dataref"].startswith(prefix)
    delivery_id = body["dataref"].removeprefix(prefix)

    full = await delivery_detail(client, group, delivery_id)
    assert full["event_id"] == body["id"] and full["event_type"] == "reliefhub.supply.offer.created"
    payload = full["payload"]
    assert payload["id"] == body["id"] and payload["data"]["id"] == offer["id"]
    assert len(payload["data"]["lots"]) == 200
    assert sorted(lot["quantity"] for lot in payload["data"]["lots"]) == list(range(10, 210))
    assert len(json.dumps(payload).encode()) > migrated.webhook_max_payload_bytes
    # A small event of the same endpoint carries its data inline.
    [small] = [x for x in receiver.at("/big") if x.event["type"] == "reliefhub.supply.donor.created"]
    assert small.event["data"]["id"] == donor["id"] and "dataref" not in small.event
    # The link is not for everyone: another organisation's group may not read it.
    other = auth("working_group", org="org-other", group="translation")
    assert (await client.get(f"/v1/webhook-deliveries/{delivery_id}", headers=other)).status_code == 403


# --- 11. the delivery log, retry and replay ----------------------------------------------------------------------


async def test_the_delivery_log_retry_and_replay(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None, receiver: Receiver
) -> None:
    group = _group(auth)
    endpoint = await create_endpoint(
        client, group, receiver, "/log", ["reliefhub.needs.site.created", "reliefhub.needs.site.updated"]
    )
    eid = endpoint["id"]
    since = datetime.now(UTC)
    site = await post_site(client, auth)

    async def count(n: int, **params: str) -> list[dict[str, Any]] | None:
        items = await deliveries(client, group, eid, **params)
        return items if len(items) == n else None

    [created] = await eventually(lambda: count(1, status="succeeded"))
    # The next one is refused for a while: it stays pending.
    receiver.answers["/log"] = [(503, {"Retry-After": "60"})]
    frontline = auth("frontline", org="org-site")
    r = await client.patch(
        f"/v1/sites/{site['id']}", headers={**frontline, "If-Match": f'"{site["version"]}"'}, json={"name": "新名字"}
    )
    assert r.status_code == 200, r.text

    async def refused() -> list[dict[str, Any]] | None:
        items = await deliveries(client, group, eid, status="pending")
        return items if items and items[0]["attempts"] == 1 else None

    [updated] = await eventually(refused)
    assert updated["event_type"] == "reliefhub.needs.site.updated" and updated["last_status_code"] == 503

    # Filters.
    assert [d["id"] for d in await deliveries(client, group, eid)] == [updated["id"], created["id"]]
    assert [d["id"] for d in await deliveries(client, group, eid, status="succeeded")] == [created["id"]]
    assert await deliveries(client, group, eid, status="failed") == []
    by_type = await deliveries(client, group, eid, event_type="reliefhub.needs.site.created")
    assert [d["id"] for d in by_type] == [created["id"]]
    assert [d["id"] for d in await deliveries(client, group, eid, event_id=updated["event_id"])] == [updated["id"]]
    assert await deliveries(client, group, eid, event_type="reliefhub.supply.offer.created") == []
    bad = await client.get(f"/v1/webhook-endpoints/{eid}/deliveries?status=lost", headers=group)
    assert bad.status_code == 422

    # Retry one delivery now: the same webhook-id again; the log keeps the refused attempt.
    receiver.answers["/log"] = [(200, {})]
    sent = len(receiver.at("/log"))
    r = await client.post(f"/v1/webhook-deliveries/{updated['id']}/retry", headers=group)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "pending" and r.json()["attempts"] == 0
    other = auth("working_group", org="org-other", group="translation")
    assert (await client.post(f"/v1/webhook-deliveries/{updated['id']}/retry", headers=other)).status_code == 403

    await eventually(lambda: count(2, status="succeeded"))
    again = receiver.at("/log")[sent:]
    assert [x.headers["webhook-id"] for x in again] == [updated["event_id"]]
    assert again[0].event["type"] == "reliefhub.needs.site.updated"
    log = (await delivery_detail(client, group, updated["id"]))["attempt_log"]
    assert [a["status_code"] for a in log] == [503, 200]

    # Replay everything since a time: both again, with their own webhook-ids.
    sent = len(receiver.at("/log"))
    r = await client.post(f"/v1/webhook-endpoints/{eid}/replay", headers=group, json={"since": since.isoformat()})
    assert r.status_code == 200 and r.json() == {"requeued": 2}, r.text
    await eventually(lambda: _count(receiver, "/log", sent + 2))
    assert sorted(x.headers["webhook-id"] for x in receiver.at("/log")[sent:]) == sorted(
        [created["event_id"], updated["event_id"]]
    )
    assert all(x.verified_with == [endpoint["secret"]] for x in receiver.at("/log"))
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    r = await client.post(f"/v1/webhook-endpoints/{eid}/replay", headers=group, json={"since": later})
    assert r.status_code == 200 and r.json() == {"requeued": 0}
    await eventually(lambda: count(2, status="succeeded"))
