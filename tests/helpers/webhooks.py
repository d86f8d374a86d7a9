"""Webhook endpoints registered through the API for a real receiver, and their deliveries read back."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers.receiver import Receiver


async def create_endpoint(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    receiver: Receiver,
    path: str,
    event_types: list[str],
    **extra: Any,
) -> dict[str, Any]:
    """An endpoint at `receiver`'s `path` for these event types, answered 201; the receiver learns its secret."""
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


async def deliveries(
    client: httpx.AsyncClient, headers: dict[str, str], endpoint_id: str, **params: str
) -> list[dict[str, Any]]:
    """A page of the endpoint's deliveries (`params` filter it), answered 200."""
    r = await client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries", headers=headers, params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def delivery_detail(client: httpx.AsyncClient, headers: dict[str, str], delivery_id: str) -> dict[str, Any]:
    """One delivery with its payload and attempt log, answered 200."""
    r = await client.get(f"/v1/webhook-deliveries/{delivery_id}", headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())
