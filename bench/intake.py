"""Intake: POST /v1/needs at 32 concurrent clients — the needs service beside a bare FastAPI + asyncpg ceiling.

Both run as one uvicorn worker (uvloop, httptools) against the same PostgreSQL, alternating rounds so
machine noise hits both alike. Prints a table and writes bench/results/intake.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random

from bench.common import http_post, median, run_load, servers, table, uvicorn_process, write_result
from reliefhub.registry import services
from shared.auth import Role, create_token
from shared.catalog import get_catalog
from shared.migrations import upgrade
from shared.settings import Settings

SECRET = "bench-secret-" + "x" * 40


async def _seed_sites(port: int, token: str, n: int) -> list[str]:
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        ids = []
        for i in range(n):
            r = await client.post(
                "/v1/sites",
                headers={"Authorization": f"Bearer {token}"},
                json={"name": f"社区 {i}", "kind": "community", "region_code": f"3101{i % 20:02d}"},
            )
            r.raise_for_status()
            ids.append(r.json()["id"])
        return ids


def _requests(sites: list[str], token: str, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    codes = [i.code for i in get_catalog().items]
    out = []
    for i in range(20000):
        body = json.dumps(
            {
                "site_id": rng.choice(sites),
                "title": f"需求 {i}",
                "urgency": rng.choice(["critical", "high", "normal"]),
                "lines": [{"item_code": c, "quantity": rng.randint(1, 500)} for c in rng.sample(codes, 2)],
            },
            ensure_ascii=False,
        ).encode()
        out.append(http_post("/v1/needs", body, {"Authorization": f"Bearer {token}"}))
    return out


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="bench.intake")
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)

    with servers() as (db, redis):
        env = {
            "DATABASE_URL": db,
            "REDIS_URL": redis,
            "RELIEFHUB_ENVIRONMENT": "production",
            "RELIEFHUB_JWT_SECRET": SECRET,
        }
        settings = Settings(environment="production", database_url=db, redis_url=redis, jwt_secret=SECRET)
        upgrade(services()["needs"], settings)
        token = create_token(sub="bench", org="bench-org", roles=[Role.coordinator], settings=settings)
        runs: dict[str, list[tuple[float, float, float, int]]] = {"needs service": [], "bare FastAPI + asyncpg": []}
        with (
            uvicorn_process("services.needs.main:create_app", env) as ours,
            uvicorn_process("bench.baseline_app:create_app", env) as bare,
        ):
            sites = asyncio.run(_seed_sites(ours, token, 200))
            reqs = _requests(sites, token, 1)
            cursor = 0
            for _ in range(args.rounds):
                for name, port in (("needs service", ours), ("bare FastAPI + asyncpg", bare)):
                    warm = reqs[cursor : cursor + 200]
                    asyncio.run(run_load(port, warm.__getitem__, total=len(warm), concurrency=args.concurrency))
                    batch = reqs[cursor + 200 : cursor + 200 + args.requests]
                    cursor = (cursor + 200 + args.requests) % (len(reqs) - 200 - args.requests)
                    res = asyncio.run(run_load(port, batch.__getitem__, total=len(batch), concurrency=args.concurrency))
                    runs[name].append((res.rps, res.pct(50), res.pct(99), res.errors))
    rows = []
    ceiling = median([r[0] for r in runs["bare FastAPI + asyncpg"]])
    for name, rs in runs.items():
        rps = median([r[0] for r in rs])
        rows.append(
            [
                name,
                f"{rps:.0f}",
                f"{median([r[1] for r in rs]):.1f}",
                f"{median([r[2] for r in rs]):.1f}",
                str(sum(r[3] for r in rs)),
                f"{rps / ceiling:.0%}",
            ]
        )
    text = (
        f"## Intake: POST /v1/needs, {args.concurrency} concurrent clients, {args.requests} requests × "
        f"{args.rounds} rounds (medians)\n\n"
        + table(["endpoint", "req/s", "p50 ms", "p99 ms", "errors", "of ceiling"], rows)
        + "\n\nThe ceiling does the same insert (need, lines, outbox row) with raw asyncpg: no auth, "
        "validation beyond pydantic, duplicate check or event envelope."
    )
    print(text)
    path = write_result("intake", text)
    print(f"\nwritten to {path}")
    return text


if __name__ == "__main__":
    main()
