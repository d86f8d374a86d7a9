"""Allocation runs made through the matching service's API."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import incremental
from tests.helpers.auth import TokenFactory


async def put_policy(client: httpx.AsyncClient, auth: TokenFactory, **changes: Any) -> dict[str, Any]:
    """`PUT /v1/policy` by a coordinator: the current policy with `changes`, answered 200; the new version."""
    coordinator = auth("coordinator")
    r = await client.get("/v1/policy", headers=coordinator)
    body = {k: v for k, v in r.json().items() if k not in ("version", "created_at", "created_by")}
    r = await client.put("/v1/policy", headers={**coordinator, "If-Match": r.headers["ETag"]}, json={**body, **changes})
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


async def allocation_run(client: httpx.AsyncClient, auth: TokenFactory, **scope: Any) -> dict[str, Any]:
    """`POST /v1/allocation-runs` by a coordinator for this scope, answered 201; the run."""
    r = await client.post("/v1/allocation-runs", headers=auth("coordinator"), json={"scope": scope})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def open_proposals(client: httpx.AsyncClient, auth: TokenFactory, need: dict[str, Any]) -> list[dict[str, Any]]:
    """The need's proposals still open (status `proposed`)."""
    r = await client.get("/v1/proposals", headers=auth("coordinator"), params={"need_id": need["id"], "limit": 100})
    assert r.status_code == 200, r.text
    return [p for p in r.json()["items"] if p["status"] == "proposed"]


async def runs_of(client: httpx.AsyncClient, auth: TokenFactory, trigger: str) -> list[dict[str, Any]]:
    """The allocation runs of this trigger, newest first."""
    r = await client.get("/v1/allocation-runs", headers=auth("coordinator"), params={"limit": 100})
    assert r.status_code == 200, r.text
    return [run for run in r.json()["items"] if run["trigger"] == trigger]


async def seed_held_backlog(engine: AsyncEngine, item: str, *, lines: int, free_lots: int) -> None:
    """bench.incremental's settled backlog of `item` (lines held in full by open proposals, lots with nothing
    proposed of them far off), straight into matching's tables."""
    async with engine.begin() as conn:
        await incremental.seed_held_backlog(conn, item, lines=lines, free_lots=free_lots)
