"""Continuous matching at scale: with tens of thousands of open lines in one item group (kept changing, so its
runs go on), how long a need for an unrelated item waits for its proposal, how long the big group's runs
take, and how soon a matching worker stopped with SIGTERM during such a run exits. Prints a table and writes
bench/results/continuous.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.common import ROOT, onboard, servers, table, uvicorn_process, write_result
from reliefhub.registry import services
from shared.auth import Role, create_token
from shared.migrations import upgrade
from shared.settings import Settings

SECRET = "bench-secret-" + "c" * 40
MASKS = ["ppe.mask.n95", "ppe.mask.kn95", "ppe.mask.surgical", "ppe.mask.disposable_medical"]
RICE = "food.grain.rice"

SEED_LINES = """
INSERT INTO matching.need_line_view (line_id, need_id, need_version, site_id, org, site_kind, region_code, lat, lon,
    item_code, quantity, quantity_delivered, urgency, need_status, verification)
SELECT gen_random_uuid(), gen_random_uuid(), 1, gen_random_uuid(), 'org-load', 'community',
    '3101' || lpad(CAST(g % 16 + 1 AS text), 2, '0'), 31.0 + (g % 97) / 250.0, 121.2 + (g % 89) / 180.0,
    (CAST(:items AS text[]))[g % cardinality(CAST(:items AS text[])) + 1], 10 + g % 50, 0, 'normal', 'open',
    'unverified'
FROM generate_series(1, :n) AS g
"""
SEED_LOTS = """
INSERT INTO matching.lot_view (lot_id, offer_id, lot_version, offer_version, org, item_code, quantity,
    quantity_reserved, lat, lon, region_code, verification, offer_status, restrictions)
SELECT gen_random_uuid(), gen_random_uuid(), 1, 1, 'org-load-donor',
    (CAST(:items AS text[]))[g % cardinality(CAST(:items AS text[])) + 1], :q, 0,
    31.0 + (g % 13) / 30.0, 121.2 + (g % 11) / 20.0, '310101', 'verified', 'open', '{}'
FROM generate_series(1, :n) AS g
"""
MARK = """
INSERT INTO matching.dirty_scope (item_code, since) SELECT unnest(CAST(:items AS text[])), now() - interval '1 minute'
ON CONFLICT DO NOTHING
"""
# When each need's first proposal became readable: its run's start plus the run's duration (it commits then).
LATENCIES = """
SELECT EXTRACT(EPOCH FROM (
    (SELECT r.created_at + (r.timings->>'total_ms')::float * interval '1 millisecond'
       FROM matching.proposal p JOIN matching.allocation_run r ON r.id = p.run_id
      WHERE p.need_id = n.id ORDER BY p.created_at LIMIT 1) - n.created_at))
FROM needs.need n
"""
BIG_RUNS = """
SELECT (timings->>'total_ms')::float / 1000 FROM matching.allocation_run
WHERE trigger = 'continuous' AND (counts->>'lines')::int >= :n
"""
GROUP_LOCKED = """
SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
AND CAST(objid AS bigint) = CAST(hashtext('matching:group:ppe.mask.disposable_medical') AS bigint) & 4294967295
"""


async def execute(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.begin() as conn:
        result = await conn.execute(text(sql), params)
        return list(result.all()) if result.returns_rows else []


async def unrelated_needs(base: str, headers: dict[str, str], count: int, engine: AsyncEngine, lines: int) -> None:
    """Rice stock, then one rice need a second while the mask group keeps changing (a lot more each second)."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        donor = (await client.post("/v1/donors", headers=headers, json={"name": "粮油", "kind": "company"})).json()
        lots = [{"item_code": RICE, "quantity": 1_000_000, "lat": 31.2, "lon": 121.4}]
        r = await client.post(
            "/v1/offers", headers=headers, json={"donor_id": donor["id"], "kind": "in_kind", "lots": lots}
        )
        r.raise_for_status()
        site = await client.post(
            "/v1/sites",
            headers=headers,
            json={"name": "安置点", "kind": "shelter", "region_code": "310115", "lat": 31.22, "lon": 121.54},
        )
        site.raise_for_status()
        await execute(engine, SEED_LINES, n=lines, items=MASKS)
        await execute(engine, SEED_LOTS, n=40, items=MASKS, q=500)
        await execute(engine, MARK, items=MASKS)
        for i in range(count):
            await execute(engine, SEED_LOTS, n=1, items=MASKS[i % 4 : i % 4 + 1], q=50)
            await execute(engine, MARK, items=MASKS[i % 4 : i % 4 + 1])
            body = {
                "site_id": site.json()["id"],
                "title": f"大米 {i}",
                "urgency": "high",
                "lines": [{"item_code": RICE, "quantity": 20}],
            }
            (await client.post("/v1/needs", headers=headers, json=body)).raise_for_status()
            await asyncio.sleep(1.0)


async def proposals_measured(engine: AsyncEngine, count: int, settle: float) -> list[float]:
    deadline = time.monotonic() + settle
    while True:
        found = [float(x) for (x,) in await execute(engine, LATENCIES) if x is not None]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


def stop_latency(env: dict[str, str], engine_url: str, lines: int) -> float:
    """A matching worker of its own, SIGTERM once its run over the big group has started: seconds to exit."""

    async def wait_for_run(worker: subprocess.Popen[bytes]) -> None:
        engine = create_async_engine(engine_url)
        try:
            await execute(engine, MARK, items=MASKS)
            while not await execute(engine, GROUP_LOCKED):
                if worker.poll() is not None:
                    raise RuntimeError(f"the worker ended by itself (exit status {worker.returncode})")
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.5)  # into scoring and solving
        finally:
            await engine.dispose()

    worker = subprocess.Popen(
        [sys.executable, "-m", "reliefhub.cli", "worker", "matching"],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        asyncio.run(wait_for_run(worker))
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        return time.monotonic() - started
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="bench.continuous")
    parser.add_argument("--lines", type=int, default=40_000, help="open lines of the big item group")
    parser.add_argument("--needs", type=int, default=20, help="unrelated needs, one a second")
    parser.add_argument("--stops", type=int, default=3, help="worker stops measured")
    parser.add_argument("--quick", action="store_true", help="a small trial: 2,000 lines, 3 needs, 1 stop")
    args = parser.parse_args(argv)
    if args.quick:
        args.lines, args.needs, args.stops = min(args.lines, 2000), min(args.needs, 3), min(args.stops, 1)
    with servers() as (db, redis):
        env = {
            "DATABASE_URL": db,
            "REDIS_URL": redis,
            "RELIEFHUB_ENVIRONMENT": "production",
            "RELIEFHUB_JWT_SECRET": SECRET,
            "RELIEFHUB_DB_POOL_SIZE": "10",
        }
        settings = Settings(environment="production", database_url=db, redis_url=redis, jwt_secret=SECRET)
        for spec in services().values():
            upgrade(spec, settings)
        token = create_token(
            sub="bench", org="hub", roles=[Role.coordinator, Role.donor, Role.frontline], settings=settings
        )
        headers = {"Authorization": f"Bearer {token}"}

        async def measure(base: str) -> tuple[list[float], list[float]]:
            engine = create_async_engine(db)
            try:
                # Production mode: the hub whose token posts the needs and offers is approved first.
                async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                    await onboard(client, settings, "hub", ["3101"], {})
                await unrelated_needs(base, headers, args.needs, engine, args.lines)
                waits = await proposals_measured(engine, args.needs, 60)
                runs = [float(x) for (x,) in await execute(engine, BIG_RUNS, n=args.lines)]
                return waits, runs
            finally:
                await engine.dispose()

        with uvicorn_process("reliefhub.gateway:dev_app", env) as port:
            waits, runs = asyncio.run(measure(f"http://127.0.0.1:{port}"))
        # The worker alone, as in production: it names where the other services answer (the organisations
        # registry among them), here an API-only gateway, so that no other matching worker runs beside it.
        with uvicorn_process("bench.common:api_gateway", env) as port:
            alone = {**env, "RELIEFHUB_GATEWAY_URL": f"http://127.0.0.1:{port}"}
            stops = [stop_latency(alone, db, args.lines) for _ in range(args.stops)]

    def q(xs: list[float], p: float) -> str:
        xs = sorted(xs)
        return f"{xs[min(len(xs) - 1, int(p * len(xs)))]:.2f}" if xs else "—"

    rows = [
        [
            f"{args.lines:,}",
            f"{len(waits)}/{args.needs}",
            q(waits, 0.5),
            q(waits, 0.95),
            f"{max(waits):.2f}" if waits else "—",
            str(len(runs)),
            f"{statistics.median(runs):.2f}" if runs else "—",
            f"{max(runs):.2f}" if runs else "—",
            f"{statistics.median(stops):.2f} / {max(stops):.2f}",
        ]
    ]
    text = (
        "## Continuous matching at scale: one item group with many open lines, kept changing\n\n"
        + table(
            [
                "open lines (group)",
                "unrelated proposed",
                "p50 wait s",
                "p95 wait s",
                "max wait s",
                "big-group runs",
                "run p50 s",
                "run max s",
                "SIGTERM → exit s (p50 / max)",
            ],
            rows,
        )
        + "\n\nWait: an unrelated need's POST → its proposal readable, one a second while the big group re-runs"
        " (a lot added each second). Whole stack in one process (`reliefhub.gateway:dev_app`); the stop is a"
        " `reliefhub worker matching` process of its own, signalled 1.5 s into a run over the big group."
    )
    print(text)
    print(f"\nwritten to {write_result('continuous', text)}")
    return text


if __name__ == "__main__":
    main()
