"""Incremental continuous runs with a backlog: one new need line (and a lot near it) beside thousands of open lines
of the same item held by undecided proposals and thousands of lots with nothing proposed. The run of the new
line's component against a continuous run of the whole item group and a global (periodic) run, each timed in a
transaction rolled back afterwards (the same state every time). Prints a table and writes
bench/results/incremental.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bench.common import servers, table, write_result
from reliefhub.registry import services
from services.matching import schemas
from services.matching.component import Bounds, Changed
from services.matching.service import run_allocation
from shared.migrations import upgrade
from shared.runtime import Runtime
from shared.settings import Settings

SECRET = "bench-secret-" + "i" * 40
RICE = "food.grain.rice"

_RUN = """
INSERT INTO matching.allocation_run (id, trigger, scope, policy_version, status, objective, counts, timings,
    created_by)
VALUES (:id, 'manual', '{}', 1, 'completed', 0, '{}', '{}', 'seed')
"""
_LINES = """
INSERT INTO matching.need_line_view (line_id, need_id, need_version, site_id, org, site_kind, region_code, lat, lon,
    item_code, quantity, quantity_delivered, urgency, need_status, verification)
SELECT CAST(md5('line' || g) AS uuid), CAST(md5('need' || g) AS uuid), 1, CAST(md5('site' || g) AS uuid),
    'org-backlog', 'community', '510104', 30.5 + (g % 97) / 250.0, 103.9 + (g % 89) / 180.0, :item, 10 + g % 50, 0,
    'normal', 'open', 'unverified'
FROM generate_series(1, :n) AS g
"""
_LOTS = """
INSERT INTO matching.lot_view (lot_id, offer_id, lot_version, offer_version, org, item_code, quantity,
    quantity_reserved, lat, lon, region_code, verification, offer_status, restrictions)
SELECT CAST(md5('lot' || g) AS uuid), CAST(md5('offer' || g) AS uuid), 1, 1, 'org-backlog-donor', :item,
    CASE WHEN g <= CAST(:n AS int) THEN 10 + g % 50 ELSE 20 END, 0,
    CASE WHEN g <= CAST(:n AS int) THEN 30.6 ELSE 39.8 + (g % 13) / 30.0 END,
    CASE WHEN g <= CAST(:n AS int) THEN 104.0 ELSE 116.3 + (g % 11) / 20.0 END,
    CASE WHEN g <= CAST(:n AS int) THEN '510104' ELSE '110101' END, 'verified', 'open', '{}'
FROM generate_series(1, CAST(:n AS int) + CAST(:free AS int)) AS g
"""
_PROPOSALS = """
INSERT INTO matching.proposal (id, run_id, need_line_id, need_id, lot_id, offer_id, item_code, lot_item_code,
    region_code, quantity, lot_quantity, quantity_returned, score, factors, distance_km, policy_version, status, auto,
    reservation_projected, expires_at, version)
SELECT gen_random_uuid(), :run, CAST(md5('line' || g) AS uuid), CAST(md5('need' || g) AS uuid),
    CAST(md5('lot' || g) AS uuid), CAST(md5('offer' || g) AS uuid), :item, :item, '510104', 10 + g % 50,
    10 + g % 50, 0, 100, '{}', 1, 1, 'proposed', false, false, now() + interval '6 hours', 1
FROM generate_series(1, :n) AS g
"""


async def seed_held_backlog(conn: AsyncConnection, item: str, *, lines: int, free_lots: int) -> None:
    """A settled backlog of `item` straight into matching's tables, as if earlier runs had made it: `lines` open
    need lines around Chengdu, each held in full by an open (undecided) proposal on a lot of its own that it
    exhausts, and `free_lots` lots of 20 with nothing proposed of them, around Beijing."""
    run = uuid.uuid4()
    await conn.execute(text(_RUN), {"id": run})
    await conn.execute(text(_LINES), {"n": lines, "item": item})
    await conn.execute(text(_LOTS), {"n": lines, "free": free_lots, "item": item})
    await conn.execute(text(_PROPOSALS), {"n": lines, "item": item, "run": run})


_NEW_LINE = """
INSERT INTO matching.need_line_view (line_id, need_id, need_version, site_id, org, site_kind, region_code, lat, lon,
    item_code, quantity, quantity_delivered, urgency, need_status, verification)
VALUES (:id, gen_random_uuid(), 1, gen_random_uuid(), 'org-new', 'shelter', '310115', 31.22, 121.54, :item, 30, 0,
    'high', 'open', 'unverified')
"""
_NEW_LOT = """
INSERT INTO matching.lot_view (lot_id, offer_id, lot_version, offer_version, org, item_code, quantity,
    quantity_reserved, lat, lon, region_code, verification, offer_status, restrictions)
VALUES (:id, gen_random_uuid(), 1, 1, 'org-new-donor', :item, 30, 0, 31.30, 121.50, '310110', 'verified', 'open',
    '{}')
"""

MODES = ("component", "whole group", "global")


async def _timed(rt: Runtime, mode: str, line: uuid.UUID, lot: uuid.UUID) -> tuple[float, dict[str, Any]]:
    changed = Changed({line}, {lot}, Bounds(rt.settings.matching_component_max_size, 8)) if mode == MODES[0] else None
    session = rt.sessionmaker()
    try:
        await session.begin()
        started = time.perf_counter()
        run, _ = await run_allocation(
            session,
            scope=schemas.RunScope(item_codes=[RICE]),
            trigger="periodic" if mode == "global" else "continuous",
            actor="bench",
            changed=changed,
        )
        elapsed = time.perf_counter() - started
        counts = dict(run.counts)
        await session.rollback()
    finally:
        await session.close()
    return elapsed, counts


async def measure(settings: Settings, backlog: int, free: int, reps: int) -> list[list[str]]:
    rt = Runtime.start(services()["matching"], settings)
    try:
        async with rt.engine.begin() as conn:
            await seed_held_backlog(conn, RICE, lines=backlog, free_lots=free)
            await conn.execute(text("ANALYZE matching.need_line_view, matching.lot_view, matching.proposal"))
        times: dict[str, list[float]] = {m: [] for m in MODES}
        counts: dict[str, dict[str, Any]] = {}
        for _ in range(reps):
            line, lot = uuid.uuid4(), uuid.uuid4()
            async with rt.engine.begin() as conn:
                await conn.execute(text(_NEW_LINE), {"id": line, "item": RICE})
                await conn.execute(text(_NEW_LOT), {"id": lot, "item": RICE})
            for mode in MODES:
                elapsed, counts[mode] = await _timed(rt, mode, line, lot)
                times[mode].append(elapsed)
            async with rt.engine.begin() as conn:
                await conn.execute(text("DELETE FROM matching.need_line_view WHERE line_id = :i"), {"i": line})
                await conn.execute(text("DELETE FROM matching.lot_view WHERE lot_id = :i"), {"i": lot})
    finally:
        await rt.close()
    return [
        [
            mode,
            f"{backlog:,}",
            f"{backlog + free:,}",
            str(counts[mode]["lines"]),
            str(counts[mode]["lots"]),
            str(counts[mode].get("component_rows", "—")),
            str(counts[mode]["proposals"]),
            f"{statistics.median(times[mode]) * 1000:.0f}",
        ]
        for mode in MODES
    ]


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="bench.incremental")
    parser.add_argument("--backlog", type=int, default=3_000, help="open lines, each held by an open proposal")
    parser.add_argument("--free", type=int, default=2_000, help="lots with nothing proposed of them")
    parser.add_argument("--reps", type=int, default=5, help="new lines measured")
    args = parser.parse_args(argv)
    with servers() as (db, redis):
        settings = Settings(environment="production", database_url=db, redis_url=redis, jwt_secret=SECRET)
        upgrade(services()["matching"], settings)
        rows = asyncio.run(measure(settings, args.backlog, args.free, args.reps))
    text_ = (
        "## Incremental continuous runs: one new need line beside a held backlog of its item\n\n"
        + table(
            [
                "run",
                "open lines (backlog)",
                "lots",
                "lines read",
                "lots read",
                "component rows",
                "proposals",
                "run p50 ms",
            ],
            rows,
        )
        + f"\n\nMedian of {args.reps} new lines (each with a lot near it), each run in a transaction rolled back."
        " The backlog's lines are held in full by undecided proposals; the free lots lie far off. `component`:"
        " the continuous run whose marks name the new line and lot (services.matching.component); `whole group`:"
        " a continuous run of an item-level mark; `global`: the periodic run that re-weighs the open proposals."
    )
    print(text_)
    print(f"\nwritten to {write_result('incremental', text_)}")
    return text_


if __name__ == "__main__":
    main()
