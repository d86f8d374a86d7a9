"""Streaming an export: a 100,000-row CSV of the ledger from the logistics service, and how far the serving
process's peak memory (VmHWM, its resident high-water mark) grows while it streams it. The export reads keyset
pages and writes each out before the next, so the growth should stay far below the size of the file.

Prints a table and writes bench/results/exports.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.common import servers, table, uvicorn_process, write_result
from services.logistics.main import SERVICE
from shared.auth import Role, create_token
from shared.migrations import upgrade
from shared.settings import Settings

SECRET = "bench-exports-secret-0123456789abcdef"
LIMIT_MB = 100

SEED = """
INSERT INTO logistics.ledger_entry (id, ref, kind, amount, currency, region_code, item_code, quantity, memo,
                                    created_at)
SELECT gen_random_uuid(), 'bench-' || n, 'pledged', n * 100, 'CNY', '310115', 'food.grain.rice', n,
       '=捐赠 ' || n, now() - interval '1 day' + n * interval '1 ms'
FROM generate_series(1, :rows) AS n
"""


async def _seed(db: str, rows: int) -> None:
    engine = create_async_engine(db)
    async with engine.begin() as conn:
        await conn.execute(text(SEED), {"rows": rows})
    await engine.dispose()


def _server_pid() -> int:
    """The uvicorn child of this process."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if ppid == me and b"uvicorn" in cmdline:
            return int(entry.name)
    raise RuntimeError("no uvicorn child process")


def _peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="bench.exports")
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    with servers() as (db, redis):
        settings = Settings(environment="production", database_url=db, redis_url=redis, jwt_secret=SECRET)
        upgrade(SERVICE, settings)
        asyncio.run(_seed(db, args.rows))
        env = {
            "DATABASE_URL": db,
            "REDIS_URL": redis,
            "RELIEFHUB_ENVIRONMENT": "production",
            "RELIEFHUB_JWT_SECRET": SECRET,
        }
        token = create_token(sub="bench", org="hub", roles=[Role.coordinator], settings=settings)
        headers = {"Authorization": f"Bearer {token}"}
        with uvicorn_process("services.logistics.main:create_app", env) as port:
            pid = _server_pid()
            url = f"http://127.0.0.1:{port}/v1/exports/ledger?format=csv"
            httpx.get(url.replace("csv", "hxl") + "&region_code=44", headers=headers, timeout=30).raise_for_status()
            before = _peak_kb(pid)
            started = time.perf_counter()
            lines = size = 0
            with httpx.stream("GET", url, headers=headers, timeout=300) as r:
                r.raise_for_status()
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    lines += chunk.count(b"\n")
            seconds = time.perf_counter() - started
            growth_mb = (_peak_kb(pid) - before) / 1024
    rows = lines - 1
    verdict = "yes" if growth_mb < LIMIT_MB and rows == args.rows else "NO"
    out = table(
        ["export", "rows", "file MB", "seconds", "peak memory growth MB", f"< {LIMIT_MB} MB"],
        [["ledger, CSV", f"{rows:,}", f"{size / 1e6:.1f}", f"{seconds:.1f}", f"{growth_mb:.1f}", verdict]],
    )
    print(out)
    write_result("exports", out)
    return out


if __name__ == "__main__":
    main()
