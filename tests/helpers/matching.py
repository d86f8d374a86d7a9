"""Allocation runs made through the matching service's API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

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
    """A settled backlog of `item` straight into matching's tables, as if earlier runs had made it: `lines` open
    need lines around Chengdu, each held in full by an open (undecided) proposal on a lot of its own that it
    exhausts, and `free_lots` lots of 20 with nothing proposed of them, around Beijing."""
    async with engine.begin() as conn:
        run = uuid.uuid4()
        await conn.execute(
            text(
                "INSERT INTO matching.allocation_run (id, trigger, scope, policy_version, status, objective, counts, "
                "timings, created_by) VALUES (:id, 'manual', '{}', 1, 'completed', 0, '{}', '{}', 'seed')"
            ),
            {"id": run},
        )
        await conn.execute(
            text(
                """
                INSERT INTO matching.need_line_view (line_id, need_id, need_version, site_id, org, site_kind,
                    region_code, lat, lon, item_code, quantity, quantity_delivered, urgency, need_status,
                    verification)
                SELECT CAST(md5('line' || g) AS uuid), CAST(md5('need' || g) AS uuid), 1,
                    CAST(md5('site' || g) AS uuid), 'org-backlog', 'community', '510104',
                    30.5 + (g % 97) / 250.0, 103.9 + (g % 89) / 180.0, :item, 10 + g % 50, 0, 'normal', 'open',
                    'unverified'
                FROM generate_series(1, :n) AS g
                """
            ),
            {"n": lines, "item": item},
        )
        await conn.execute(
            text(
                """
                INSERT INTO matching.lot_view (lot_id, offer_id, lot_version, offer_version, org, item_code,
                    quantity, quantity_reserved, lat, lon, region_code, verification, offer_status, restrictions)
                SELECT CAST(md5('lot' || g) AS uuid), CAST(md5('offer' || g) AS uuid), 1, 1, 'org-backlog-donor',
                    :item, CASE WHEN g <= CAST(:n AS int) THEN 10 + g % 50 ELSE 20 END, 0,
                    CASE WHEN g <= CAST(:n AS int) THEN 30.6 ELSE 39.8 + (g % 13) / 30.0 END,
                    CASE WHEN g <= CAST(:n AS int) THEN 104.0 ELSE 116.3 + (g % 11) / 20.0 END,
                    CASE WHEN g <= CAST(:n AS int) THEN '510104' ELSE '110101' END, 'verified', 'open', '{}'
                FROM generate_series(1, CAST(:n AS int) + CAST(:free AS int)) AS g
                """
            ),
            {"n": lines, "free": free_lots, "item": item},
        )
        await conn.execute(
            text(
                """
                INSERT INTO matching.proposal (id, run_id, need_line_id, need_id, lot_id, offer_id, item_code,
                    lot_item_code, region_code, quantity, lot_quantity, quantity_returned, score, factors,
                    distance_km, policy_version, status, auto, reservation_projected, expires_at, version)
                SELECT gen_random_uuid(), :run, CAST(md5('line' || g) AS uuid), CAST(md5('need' || g) AS uuid),
                    CAST(md5('lot' || g) AS uuid), CAST(md5('offer' || g) AS uuid), :item, :item, '510104',
                    10 + g % 50, 10 + g % 50, 0, 100, '{}', 1, 1, 'proposed', false, false,
                    now() + interval '6 hours', 1
                FROM generate_series(1, :n) AS g
                """
            ),
            {"n": lines, "item": item, "run": run},
        )
