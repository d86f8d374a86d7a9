"""Webhook delivery end to end, to a real local HTTP receiver that checks every signature with the
`standardwebhooks` library: delivery, rotation, retries, 410, Retry-After, restarts, slow endpoints, size."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import TokenFactory, eventually
from tests.webhooks.receiver import Receiver, serve_receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serve_receiver() as r:
        yield r


async def make_endpoint(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    receiver: Receiver,
    path: str,
    event_types: list[str],
    **extra: Any,
) -> dict[str, Any]:
    r = await client.post(
        "/v1/webhook-endpoints",
        headers=headers,
        json={"url": receiver.url(path), "event_types": event_types, **extra},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["secret"].startswith("whsec_")
    receiver.secrets[path] = body["secret"]
    return dict(body)


async def post_site(client: httpx.AsyncClient, auth: TokenFactory, name: str = "瑞金医院") -> dict[str, Any]:
    r = await client.post(
        "/v1/sites",
        headers=auth("frontline", org="org-site"),
        json={"name": name, "kind": "hospital", "region_code": "310101", "lat": 31.2, "lon": 121.5},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_an_event_is_delivered_signed(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None, receiver: Receiver
) -> None:
    group = auth("working_group", org="org-logistics-group", group="logistics")
    endpoint = await make_endpoint(client, group, receiver, "/needs", ["reliefhub.needs.*"], description="需求")
    await make_endpoint(client, group, receiver, "/supply", ["reliefhub.supply.*"])
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
