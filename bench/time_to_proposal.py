"""Time to proposal: how long after a need is posted until a proposal for it can be read, while 50 needs/s
arrive with matching supply in stock. The whole stack runs as `reliefhub dev` runs it (one process, every
service with its workers). Prints a table and writes bench/results/time_to_proposal.md.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

import httpx

from bench.common import servers, table, uvicorn_process, write_result
from reliefhub.registry import services
from shared.auth import Role, create_token
from shared.migrations import upgrade
from shared.settings import Settings

SECRET = "bench-secret-" + "y" * 40
ITEMS = [
    "food.grain.rice",
    "water.bottled.small_550ml",
    "ppe.mask.kn95",
    "hygiene.paper.toilet_roll",
    "shelter.bedding.quilt",
    "infant.diaper.m",
    "food.canned.luncheon_meat",
    "energy.battery.power_bank",
]


async def seed(client: httpx.AsyncClient, headers: dict[str, str], sites: int) -> list[str]:
    rng = random.Random(7)
    ids = []
    for i in range(sites):
        r = await client.post(
            "/v1/sites",
            headers=headers,
            json={
                "name": f"街道 {i}",
                "kind": "community",
                "region_code": f"3101{i % 16 + 1:02d}",
                "lat": 31.0 + rng.random() * 0.4,
                "lon": 121.2 + rng.random() * 0.5,
            },
        )
        r.raise_for_status()
        ids.append(r.json()["id"])
    donor = (await client.post("/v1/donors", headers=headers, json={"name": "联合捐赠", "kind": "group"})).json()
    for _ in range(5):
        lots = [{"item_code": code, "quantity": 1_000_000, "lat": 31.2, "lon": 121.4} for code in ITEMS]
        r = await client.post(
            "/v1/offers", headers=headers, json={"donor_id": donor["id"], "kind": "in_kind", "lots": lots}
        )
        r.raise_for_status()
    return ids


async def load(
    base: str, headers: dict[str, str], sites: list[str], rate: float, seconds: float, settle: float
) -> tuple[list[float], int, int]:
    rng = random.Random(11)
    posted: dict[str, float] = {}
    seen: dict[str, float] = {}
    errors = 0
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=httpx.Limits(max_connections=64)) as client:

        async def post_one(i: int) -> None:
            nonlocal errors
            body = {
                "site_id": rng.choice(sites),
                "title": f"需求 {i}",
                "urgency": "high",
                "lines": [{"item_code": rng.choice(ITEMS), "quantity": rng.randint(1, 50)}],
            }
            r = await client.post("/v1/needs", headers=headers, json=body)
            if r.status_code != 201:
                errors += 1
                return
            posted[r.json()["id"]] = time.perf_counter()

        async def watch(until: float) -> None:
            while time.perf_counter() < until:
                r = await client.get("/v1/proposals?status=proposed&limit=500", headers=headers)
                now = time.perf_counter()
                for p in r.json().get("items", []):
                    seen.setdefault(p["need_id"], now)
                if posted and all(n in seen for n in posted) and time.perf_counter() > until - settle:
                    return
                await asyncio.sleep(0.05)

        start = time.perf_counter()
        watcher = asyncio.create_task(watch(start + seconds + settle))
        tasks = []
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(post_one(i)))
        await asyncio.gather(*tasks)
        await watcher
    latencies = [seen[n] - t for n, t in posted.items() if n in seen]
    return latencies, len(posted) - len(latencies), errors


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="bench.time_to_proposal")
    parser.add_argument("--rate", type=float, default=50.0, help="needs per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=10.0, help="time allowed after the last need")
    args = parser.parse_args(argv)
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
        headers = {
            "Authorization": "Bearer "
            + create_token(sub="bench", org="hub", roles=[Role.coordinator], settings=settings)
        }
        with uvicorn_process("reliefhub.gateway:dev_app", env) as port:
            base = f"http://127.0.0.1:{port}"

            async def run() -> tuple[list[float], int, int]:
                async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                    sites = await seed(client, headers, 100)
                await asyncio.sleep(2)  # let matching project the stock
                return await load(base, headers, sites, args.rate, args.seconds, args.settle)

            latencies, missing, errors = asyncio.run(run())
    lat = sorted(latencies)

    def p(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")

    rows = [
        [
            f"{args.rate:.0f}/s × {args.seconds:.0f} s",
            str(len(lat)),
            str(missing),
            str(errors),
            f"{statistics.median(lat):.2f}" if lat else "—",
            f"{p(0.95):.2f}",
            f"{max(lat):.2f}" if lat else "—",
        ]
    ]
    text = (
        "## Time to proposal: need POST → proposal readable (s), whole stack in one process\n\n"
        + table(["arrivals", "needs proposed", "not proposed", "errors", "p50 s", "p95 s", "max s"], rows)
        + "\n\nGoal: p95 ≤ 2 s. Needs are matched by the continuous (debounced) runs, without a manual trigger."
    )
    print(text)
    print(f"\nwritten to {write_result('time_to_proposal', text)}")
    return text


if __name__ == "__main__":
    main()
