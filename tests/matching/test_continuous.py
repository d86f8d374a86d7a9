"""Continuous matching at scale: item groups run one by one in their own transactions, with open lines past
asyncpg's 32,767 query arguments; a group that fails backs off while the others are matched; a stopping
worker abandons the run in progress and leaves its items dirty."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.matching.continuous import item_group
from shared.settings import Settings
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE, WATER
from tests.helpers.db import rows
from tests.helpers.metrics import sample
from tests.helpers.needs import shelter_need
from tests.helpers.settings import ROOT
from tests.helpers.supply import donor_offer
from tests.helpers.waiting import eventually

MASKS = ["ppe.mask.n95", "ppe.mask.gb19083", "ppe.mask.kn95", "ppe.mask.surgical", "ppe.mask.disposable_medical"]
MASK_GROUP = item_group(MASKS[0])


async def seed_lines(engine: AsyncEngine, count: int, items: list[str]) -> None:
    """`count` open lines spread over `items`, each of its own need and site around Shanghai, straight into
    matching's projection (as if the needs stream had brought them)."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                """
                INSERT INTO matching.need_line_view (line_id, need_id, need_version, site_id, org, site_kind,
                    region_code, lat, lon, item_code, quantity, quantity_delivered, urgency, need_status,
                    verification)
                SELECT gen_random_uuid(), gen_random_uuid(), 1, gen_random_uuid(), 'org-load', 'community',
                    '3101' || lpad(CAST(g % 16 + 1 AS text), 2, '0'), 31.0 + (g % 97) / 250.0,
                    121.2 + (g % 89) / 180.0, (CAST(:items AS text[]))[g % cardinality(CAST(:items AS text[])) + 1],
                    10 + g % 50, 0, 'normal', 'open', 'unverified'
                FROM generate_series(1, :n) AS g
                """
            ),
            {"n": count, "items": items},
        )


async def seed_lots(engine: AsyncEngine, count: int, items: list[str], quantity: int) -> None:
    """`count` verified lots of `quantity` spread over `items`, straight into matching's projection."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                """
                INSERT INTO matching.lot_view (lot_id, offer_id, lot_version, offer_version, org, item_code,
                    quantity, quantity_reserved, lat, lon, region_code, verification, offer_status, restrictions)
                SELECT gen_random_uuid(), gen_random_uuid(), 1, 1, 'org-load-donor',
                    (CAST(:items AS text[]))[g % cardinality(CAST(:items AS text[])) + 1], :q, 0,
                    31.0 + (g % 13) / 30.0, 121.2 + (g % 11) / 20.0, '310101', 'verified', 'open', '{}'
                FROM generate_series(1, :n) AS g
                """
            ),
            {"n": count, "items": items, "q": quantity},
        )


async def mark_dirty(engine: AsyncEngine, items: list[str]) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO matching.dirty_scope (item_code, since) "
                "SELECT unnest(CAST(:items AS text[])), now() - interval '1 minute' ON CONFLICT DO NOTHING"
            ),
            {"items": items},
        )


async def metric(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    """A sample of the process's Prometheus metrics, as GET /metrics shows it (0 when absent)."""
    return await sample(client, name, **labels) or 0.0


async def proposals_of(client: httpx.AsyncClient, auth: TokenFactory, need: dict[str, Any]) -> list[dict[str, Any]]:
    r = await client.get("/v1/proposals", headers=auth("coordinator"), params={"need_id": need["id"]})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def continuous_runs(client: httpx.AsyncClient, auth: TokenFactory, group: list[str]) -> list[dict[str, Any]]:
    r = await client.get("/v1/allocation-runs", headers=auth("coordinator"), params={"limit": 100})
    assert r.status_code == 200, r.text
    return [
        run
        for run in r.json()["items"]
        if run["trigger"] == "continuous" and run["scope"].get("item_codes") == sorted(group)
    ]


def test_item_groups_are_the_components_of_the_catalogs_substitutes() -> None:
    assert MASK_GROUP.items == tuple(sorted(MASKS))
    assert all(item_group(code) == MASK_GROUP for code in MASKS)
    assert item_group(RICE).items == (RICE,)
    assert WATER in item_group(WATER).items and item_group(WATER) != MASK_GROUP
    assert item_group("no.such.item").items == ("no.such.item",)


async def test_continuous_runs_over_40000_open_lines_and_a_new_need_is_proposed(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine, workers: None
) -> None:
    failures_before = await metric(client, "reliefhub_matching_run_failures_total", trigger="continuous")
    # More open lines in one item group than asyncpg takes query arguments.
    await seed_lines(engine, 40_000, MASKS)
    await seed_lots(engine, 40, MASKS, 500)
    await mark_dirty(engine, MASKS)

    need = await shelter_need(client, auth, {"item_code": RICE, "quantity": 30})
    offer = await donor_offer(client, auth, {"item_code": RICE, "quantity": 30})
    (proposal,) = await eventually(lambda: proposals_of(client, auth, need), seconds=30)
    assert proposal["lot_id"] == offer["lots"][0]["id"] and proposal["quantity"] == 30

    (run,) = await eventually(lambda: continuous_runs(client, auth, MASKS), seconds=120)
    assert run["counts"]["lines"] == 40_000 and run["counts"]["lots"] == 40
    assert run["counts"]["units"] == 40 * 500 and run["counts"]["proposals"] > 0

    # Again, now with the first run's proposals open: they are held as they are, and only what they leave is
    # read and allocated (the new lot's 100 units, to lines with demand left); none is superseded.
    await seed_lots(engine, 1, MASKS[:1], 100)
    await mark_dirty(engine, MASKS[:1])
    runs = await eventually(lambda: _at_least(continuous_runs(client, auth, MASKS), 2), seconds=120)
    again = runs[0]
    assert again["counts"]["lots"] == 1 and again["counts"]["units"] == 100
    assert again["counts"]["superseded"] == 0 and again["counts"]["lines"] == 40_000  # none is fully proposed

    assert await metric(client, "reliefhub_matching_run_failures_total", trigger="continuous") == failures_before
    assert await rows(engine, "SELECT item_code FROM matching.dirty_scope WHERE attempts > 0") == []


async def _at_least(found: Any, n: int) -> list[dict[str, Any]] | None:
    runs: list[dict[str, Any]] = await found
    return runs if len(runs) >= n else None


async def test_a_failing_group_backs_off_while_other_groups_are_matched(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    engine: AsyncEngine,
    workers: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="reliefhub.matching")
    reason = {"trigger": "continuous", "reason": "LockNotAvailableError"}
    failures_before = await metric(client, "reliefhub_matching_run_failures_total", **reason)
    first = await shelter_need(client, auth, {"item_code": RICE, "quantity": 100})
    await donor_offer(client, auth, {"item_code": RICE, "quantity": 60})
    (held,) = await eventually(lambda: proposals_of(client, auth, first), seconds=30)

    # A transaction holds the rice proposal (as an accept does while it calls supply) past the runs' lock
    # timeout, while the lot shrinks under it (someone else reserved 40): the proposal no longer fits, and
    # every rice run fails to cancel it until the holder lets go. (Runs lock nothing else that decisions take.)
    async with engine.connect() as blocker:
        await blocker.execute(text("SELECT id FROM matching.proposal WHERE id = :p FOR UPDATE"), {"p": held["id"]})
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE matching.lot_view SET quantity_reserved = 40 WHERE lot_id = :lot"), {"lot": held["lot_id"]}
            )
        await mark_dirty(engine, [RICE])

        async def backing_off() -> list[dict[str, Any]]:
            return await rows(
                engine,
                "SELECT attempts, last_error FROM matching.dirty_scope "
                "WHERE item_code = :i AND attempts > 0 AND not_before > now()",
                i=RICE,
            )

        (backoff,) = await eventually(backing_off, seconds=30)
        assert "LockNotAvailableError" in backoff["last_error"]

        # Another group is matched meanwhile.
        water = await shelter_need(client, auth, {"item_code": WATER, "quantity": 24})
        await donor_offer(client, auth, {"item_code": WATER, "quantity": 24})
        (proposal,) = await eventually(lambda: proposals_of(client, auth, water), seconds=30)
        assert proposal["quantity"] == 24
        assert [p["id"] for p in await proposals_of(client, auth, first)] == [held["id"]]

        assert await metric(client, "reliefhub_matching_run_failures_total", **reason) > failures_before
        assert await eventually(lambda: metric(client, "reliefhub_matching_scopes_backing_off"), seconds=10) == 1
        warnings = [r.getMessage() for r in caplog.records if r.name == "reliefhub.matching"]
        assert any("item group food.grain.rice failed" in w and "LockNotAvailableError" in w for w in warnings)
        await blocker.rollback()

    # Let go: the group's retry cancels the proposal that no longer fits and proposes the 20 left, and its
    # backoff is gone.
    async def reproposed() -> list[dict[str, Any]] | None:
        found = [p for p in await proposals_of(client, auth, first) if p["status"] == "proposed"]
        return found if found and found[0]["id"] != held["id"] else None

    (again,) = await eventually(reproposed, seconds=60)
    assert again["quantity"] == 20 and again["lot_id"] == held["lot_id"]
    old = (await client.get(f"/v1/proposals/{held['id']}", headers=auth("coordinator"))).json()
    assert old["status"] == "cancelled" and old["reason"].startswith("infeasible: lot changed")
    assert await rows(engine, "SELECT item_code FROM matching.dirty_scope WHERE attempts > 0") == []

    async def settled() -> bool:
        return await metric(client, "reliefhub_matching_scopes_backing_off") == 0

    await eventually(settled, seconds=10)


async def _group_run_in_progress(engine: AsyncEngine) -> bool:
    """Whether some transaction holds the mask group's run lock (ContinuousMatching takes it for the run)."""
    found = await rows(
        engine,
        "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND CAST(objid AS bigint) = CAST(hashtext(:k) AS bigint) & 4294967295",
        k=f"matching:group:{MASK_GROUP.key}",
    )
    return bool(found)


def _descendants(pid: int, *, depth: int) -> list[int]:
    """Processes `depth` generations below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    level = [pid]
    for _ in range(depth):
        level = [c for p in level for c in children.get(p, [])]
    return level


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def test_sigterm_abandons_the_run_in_progress_and_leaves_its_items_dirty(
    engine: AsyncEngine, cli_env: Settings, tmp_path: Any
) -> None:
    # Big enough that scoring and solving take seconds: 40,000 lines with up to 100 candidate lots each.
    await seed_lines(engine, 40_000, MASKS)
    await seed_lots(engine, 200, MASKS, 50)
    await mark_dirty(engine, MASKS)
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "RELIEFHUB_STATE_DIR": str(tmp_path),
        "RELIEFHUB_MATCHING_DEBOUNCE_SECONDS": "0.2",
        "RELIEFHUB_CONSUMER_BLOCK_MS": "100",
        # A worker alone must name the services it calls (supply, logistics); this run never reaches them.
        "RELIEFHUB_SERVICE_URLS": '{"supply": "http://127.0.0.1:9", "logistics": "http://127.0.0.1:9"}',
    }
    with log_path.open("wb") as log_file:
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "reliefhub.cli",
            "worker",
            "matching",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_file,
        )
        try:
            await eventually(lambda: _group_run_in_progress(engine), seconds=60)
            assert await rows(engine, "SELECT item_code FROM matching.dirty_scope") == []  # taken by the run

            async def solving() -> list[int]:
                return _descendants(worker.pid, depth=2)  # worker → forkserver → solver process

            solvers = await eventually(solving, seconds=150)  # 40,000 lines scored first: slow on a busy machine
            worker.send_signal(signal.SIGTERM)
            started = time.monotonic()
            await asyncio.wait_for(worker.wait(), timeout=30)
            stopped_after = time.monotonic() - started
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    log = log_path.read_text()
    assert worker.returncode == 0, log
    assert "continuous matching stopped, abandoning 1 run" in log
    assert stopped_after < 5.0, f"the worker took {stopped_after:.1f} s to stop"

    async def solvers_gone() -> bool:
        return not any(_running(pid) for pid in solvers)

    await eventually(solvers_gone, seconds=10)

    # Rolled back, and queued again as they were for the next worker: no run, no proposal, no backoff.
    assert await rows(engine, "SELECT id FROM matching.allocation_run") == []
    assert await rows(engine, "SELECT id FROM matching.proposal") == []
    dirty = await rows(engine, "SELECT item_code, attempts, not_before FROM matching.dirty_scope ORDER BY 1")
    assert [d["item_code"] for d in dirty] == sorted(MASKS)
    assert all(d["attempts"] == 0 and d["not_before"] is None for d in dirty)
