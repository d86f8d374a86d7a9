"""Stable proposals through the API: continuous runs hold open proposals as they are while unrelated demand and
supply for the same items keeps arriving, and a run after one new need line reads and writes only what that
line can reach."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE, WATER
from tests.helpers.matching import open_proposals, runs_of
from tests.helpers.needs import shelter_need
from tests.helpers.supply import donor_offer
from tests.helpers.waiting import eventually

# Seconds of further traffic for the same items (a minute in production terms; shorter keeps the suite fast,
# the continuous runs in between are what matters: one per debounce interval).
TRAFFIC_SECONDS = 20


async def _proposed(client: httpx.AsyncClient, auth: TokenFactory, need: dict[str, Any]) -> list[dict[str, Any]] | None:
    return await open_proposals(client, auth, need) or None


async def test_open_proposals_stay_while_unrelated_needs_and_lots_arrive(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    # Scarce rice spread over three needs (each keeps demand left), and water.
    needs = [
        await shelter_need(client, auth, {"item_code": RICE, "quantity": q}, org=f"org-first-{i}")
        for i, q in enumerate((100, 80, 60))
    ]
    needs.append(await shelter_need(client, auth, {"item_code": WATER, "quantity": 30}, org="org-first-water"))
    await donor_offer(client, auth, {"quantity": 120})
    await donor_offer(client, auth, {"item_code": WATER, "quantity": 30})
    for need in needs:
        await eventually(lambda: _proposed(client, auth, need), seconds=30)  # noqa: B023 (awaited at once)
    await asyncio.sleep(1)  # the runs the first proposals came from are over
    original: dict[str, dict[str, Any]] = {
        p["id"]: p for need in needs for p in await open_proposals(client, auth, need)
    }
    assert len(original) >= 4

    # Unrelated needs and lots for the same items, for a while: each one re-runs the item's group.
    later: list[dict[str, Any]] = []
    started, i = time.monotonic(), 0
    while time.monotonic() - started < TRAFFIC_SECONDS:
        item = (RICE, WATER)[i % 2]
        later.append(
            await shelter_need(client, auth, {"item_code": item, "quantity": 20 + i % 7}, org=f"org-later-{i}")
        )
        offer = await donor_offer(client, auth, {"item_code": item, "quantity": 15 + i % 11})
        i += 1
        await asyncio.sleep(0.5)

    async def last_lot_proposed() -> bool:
        r = await client.get("/v1/proposals", headers=auth("coordinator"), params={"offer_id": offer["id"]})
        return bool(r.json()["items"])

    await eventually(last_lot_proposed, seconds=30)

    # Every original open proposal is still there, with its id and quantity (none of their lots or lines changed).
    for pid, before in original.items():
        r = await client.get(f"/v1/proposals/{pid}", headers=auth("coordinator"))
        now = r.json()
        assert (now["status"], now["quantity"], now["lot_id"]) == ("proposed", before["quantity"], before["lot_id"])
        assert now["replaced_by"] is None
    # The new supply went to the demand left over, around them: some of the later needs were proposed lots too.
    assert [p for need in later for p in await open_proposals(client, auth, need)]
    continuous = await runs_of(client, auth, "continuous")
    assert len(continuous) >= 10 and all(run["counts"]["superseded"] == 0 for run in continuous)


async def test_a_run_after_one_new_line_reads_and_writes_only_its_component(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    # Two rice needs fully proposed out of 120 (30 spare), and water elsewhere.
    first = await shelter_need(client, auth, {"item_code": RICE, "quantity": 50}, org="org-a")
    second = await shelter_need(client, auth, {"item_code": RICE, "quantity": 40}, org="org-b")
    water = await shelter_need(client, auth, {"item_code": WATER, "quantity": 10}, org="org-w")
    await donor_offer(client, auth, {"quantity": 60}, {"quantity": 60})
    await donor_offer(client, auth, {"item_code": WATER, "quantity": 10})
    for need, total in ((first, 50), (second, 40), (water, 10)):

        async def full(need: dict[str, Any] = need, total: int = total) -> bool:
            return sum(p["quantity"] for p in await open_proposals(client, auth, need)) == total

        await eventually(full, seconds=30)
    await asyncio.sleep(1)
    before = {p["id"]: p for n in (first, second, water) for p in await open_proposals(client, auth, n)}
    spare_lots = 2 - sum(  # lots with units left once the open proposals hold theirs
        1 for lot, held in _by_lot(before.values()).items() if held >= 60
    )
    seen = {run["id"] for run in await runs_of(client, auth, "continuous")}

    third = await shelter_need(client, auth, {"item_code": RICE, "quantity": 25}, org="org-c")
    (proposal, *more) = await eventually(lambda: _proposed(client, auth, third), seconds=30)

    (run,) = [r for r in await runs_of(client, auth, "continuous") if r["id"] not in seen]
    counts = run["counts"]
    # Read: the new line and the lots with units left; written: that line's proposals, nothing else.
    assert counts["lines"] == 1 and counts["lots"] == spare_lots
    assert counts["proposals"] == 1 + len(more) and counts["units"] == 25
    assert counts["superseded"] == 0 and counts["global"] == 0
    assert {p["id"] for p in [proposal, *more]} == {
        p["id"]
        for p in (await client.get(f"/v1/allocation-runs/{run['id']}", headers=auth("coordinator"))).json()["proposals"]
    }
    after = {p["id"]: p for n in (first, second, water) for p in await open_proposals(client, auth, n)}
    assert after == before


def _by_lot(proposals: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in proposals:
        if p["item_code"] == RICE:
            out[p["lot_id"]] = out.get(p["lot_id"], 0) + p["quantity"]
    return out
