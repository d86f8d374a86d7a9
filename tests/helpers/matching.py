"""Allocation runs made through the matching service's API."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers.auth import TokenFactory


async def allocation_run(client: httpx.AsyncClient, auth: TokenFactory, **scope: Any) -> dict[str, Any]:
    """`POST /v1/allocation-runs` by a coordinator for this scope, answered 201; the run."""
    r = await client.post("/v1/allocation-runs", headers=auth("coordinator"), json={"scope": scope})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body
