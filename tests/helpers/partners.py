"""Small HTTP helpers of the partners tests: register and approve organisations, read problems, poll."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

PROBLEM_JSON = "application/problem+json"
RICE = "food.grain.rice"
CONCENTRATOR = "medical_device.oxygen.concentrator_5l"


def problem(resp: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 problem with this status (and type slug); return its body."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM_JSON), resp.headers["content-type"]
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and body["title"]
    if slug is not None:
        assert body["type"].rsplit(":", 1)[-1] == slug, body["type"]
    return body


async def register(
    client: httpx.AsyncClient, headers: dict[str, str], *, name: str, kind: str, **fields: Any
) -> dict[str, Any]:
    resp = await client.post("/v1/organizations", headers=headers, json={"name": name, "kind": kind, **fields})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    assert body["status"] == "pending"
    return body


async def approve(client: httpx.AsyncClient, headers: dict[str, str], org_id: str) -> dict[str, Any]:
    resp = await client.post(f"/v1/organizations/{org_id}/approve", headers=headers, json={"reason": "资料齐全"})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    assert body["status"] == "approved"
    return body


async def approved_hub(
    client: httpx.AsyncClient, auth: Callable[..., dict[str, str]], org: str, region_codes: list[str]
) -> dict[str, str]:
    """A hub registered by its coordinator and approved by an operator; returns its coordinator's headers."""
    coordinator = auth("coordinator", org=org)
    await register(client, coordinator, name=f"枢纽 {org}", kind="hub", region_codes=region_codes)
    await approve(client, auth("admin", org="reliefhub-ops"), org)
    return coordinator


async def eventually(probe: Callable[[], Awaitable[Any]], *, seconds: float = 20.0) -> Any:
    """Poll `probe` until it returns something truthy (and return that), or fail after `seconds`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)
