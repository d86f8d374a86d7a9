"""`reliefhub matching rebuild`: the projection rebuilt from the event log equals the one built live."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from reliefhub import cli
from reliefhub.gateway import Gateway
from shared.settings import Settings
from shared.worker import run_worker
from tests.helpers.auth import TokenFactory

COLUMNS = {
    "need_line_view": "line_id, need_id, need_version, site_kind, region_code, item_code, quantity, urgency, "
    "need_status, verification",
    "lot_view": "lot_id, offer_id, lot_version, offer_version, item_code, quantity, quantity_reserved, "
    "verification, offer_status, restrictions",
}


async def snapshot(engine: AsyncEngine) -> dict[str, list[Any]]:
    async with engine.connect() as conn:
        return {
            table: [
                tuple(r) for r in (await conn.execute(text(f"SELECT {cols} FROM matching.{table} ORDER BY 1"))).all()
            ]
            for table, cols in COLUMNS.items()
        }


async def test_rebuild_replays_the_event_log_into_the_same_projection(
    client: httpx.AsyncClient, gateway: Gateway, engine: AsyncEngine, auth: TokenFactory, cli_env: Settings
) -> None:
    coordinator, wg = auth("coordinator"), auth("working_group", org="wg", group="medical_device")
    site = (
        await client.post(
            "/v1/sites",
            headers=coordinator,
            json={"name": "社区卫生服务中心", "kind": "hospital", "region_code": "310104"},
        )
    ).json()
    need = (
        await client.post(
            "/v1/needs",
            headers=coordinator,
            json={
                "site_id": site["id"],
                "title": "口罩与米",
                "lines": [
                    {"item_code": "ppe.mask.n95", "quantity": 500},
                    {"item_code": "food.grain.rice", "quantity": 40},
                ],
            },
        )
    ).json()
    etag = (await client.get(f"/v1/needs/{need['id']}", headers=coordinator)).headers["etag"]
    await client.patch(
        f"/v1/needs/{need['id']}",
        headers={**coordinator, "If-Match": etag},
        json={"lines": [{"item_code": "ppe.mask.n95", "quantity": 800}]},
    )
    donor = (await client.post("/v1/donors", headers=coordinator, json={"name": "基金会", "kind": "foundation"})).json()
    offer = (
        await client.post(
            "/v1/offers",
            headers=coordinator,
            json={
                "donor_id": donor["id"],
                "kind": "in_kind",
                "restrictions": {"region_codes": ["31"]},
                "lots": [
                    {"item_code": "ppe.mask.n95", "quantity": 300},
                    {"item_code": "food.grain.rice", "quantity": 9},
                ],
            },
        )
    ).json()
    await client.post(f"/v1/offers/{offer['id']}/verification", headers=wg, json={"verdict": "verified"})
    await client.post(
        f"/v1/lots/{offer['lots'][1]['id']}/reservations",
        headers=coordinator,
        json={"quantity": 4, "reference": "outside-matching"},
    )

    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(run_worker(gateway.apps[n].state.runtime, stop)) for n in ("needs", "supply", "matching")
    ]
    try:
        for _ in range(100):
            live = await snapshot(engine)
            lots = {row[0]: row for row in live["lot_view"]}
            if (
                len(live["need_line_view"]) == 1
                and len(lots) == 2
                and all(r[2] >= 2 for r in lots.values())
                and any(r[6] == 4 for r in lots.values())
            ):
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    live = await snapshot(engine)
    assert [r[5] for r in live["need_line_view"]] == ["ppe.mask.n95"]  # the replaced rice line is gone
    assert sorted(r[7] for r in live["lot_view"]) == ["not_required", "verified"]

    async with engine.begin() as conn:  # damage the projection, as a bad deploy might
        await conn.execute(text("UPDATE matching.lot_view SET quantity_reserved = 999, verification = 'pending'"))
    result = await asyncio.to_thread(CliRunner().invoke, cli.app, ["matching", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "replayed" in result.output
    assert await snapshot(engine) == live
