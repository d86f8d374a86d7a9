"""Mixed load for 60 s against a `make dev`-style stack (every service and its workers in one process):
needs posted, offers registered, allocation runs, proposals accepted, shipments moved, tracking pages read.
Writes requests/s, p50/p95/p99 and errors per endpoint to bench/results/load.md.

Arrivals are open-loop (a fixed rate per operation, whatever the answers), so a slow server shows as latency,
not as a politely lower rate. Business conflicts that a real client expects — a proposal already taken, a
shipment someone else moved — are counted apart from errors (5xx, timeouts, anything else unexpected).

`--production-shape` runs the services' APIs in one process and each service's workers in one of their own, as
deployed (bench/lag.py always does). On this 2-core machine that shape is slower, not faster: seven Python
processes take about 1.9 cores between them under this mix, against about 1.0 for the one process (their event
loops, pollers and calls to each other over HTTP each cost their own CPU), so every request queues for a core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx

from bench.common import onboard, servers, table, uvicorn_process, worker_processes, write_result
from reliefhub.registry import services
from shared.auth import Role, create_token
from shared.migrations import upgrade
from shared.settings import Settings

SECRET = "bench-secret-" + "l" * 40
ITEMS = ["food.grain.rice", "water.bottled.small_550ml", "ppe.mask.kn95", "hygiene.paper.toilet_roll"]
DISTRICTS = ["310101", "310104", "310105", "310106", "310107", "310109", "310110", "310112", "310115"]


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    conflicts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples: dict[str, str] = field(default_factory=dict)


class Driver:
    def __init__(self, session: aiohttp.ClientSession, base: str, settings: Settings, stats: Stats) -> None:
        self.http, self.base, self.stats = session, base, stats
        self.rng = random.Random(5)

        def token(role: Role, org: str, group: str | None = None) -> dict[str, str]:
            t = create_token(sub=f"bench-{org}", org=org, roles=[role], group=group, settings=settings)
            return {"Authorization": f"Bearer {t}"}

        self.coordinator = token(Role.coordinator, "hub")
        self.carrier = token(Role.logistics, "carrier")
        self.frontline = token(Role.frontline, "sites")
        self.donor = token(Role.donor, "donors")
        self.sites: list[str] = []
        self.donor_id = ""
        self.codes: list[tuple[float, str]] = []  # (registered at, code)

    async def call(
        self, name: str, method: str, path: str, headers: dict[str, str], body: Any = None, expect: int = 200
    ) -> Any:
        start = time.perf_counter()
        try:
            async with self.http.request(method, self.base + path, json=body, headers=headers) as r:
                payload = await r.json(content_type=None) if r.status != 204 else None
                status = r.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.stats.errors[name] += 1
            self.stats.samples.setdefault(name, f"{exc.__class__.__name__}: {exc}")
            return None
        self.stats.latencies[name].append(time.perf_counter() - start)
        if status == expect:
            return payload
        if status == 409:
            self.stats.conflicts[name] += 1
        else:
            self.stats.errors[name] += 1
            self.stats.samples.setdefault(name, f"{status} {str(payload)[:200]}")
        return None

    async def seed(self, sites: int) -> None:
        for i in range(sites):
            site = await self.call(
                "seed",
                "POST",
                "/v1/sites",
                self.frontline,
                {
                    "name": f"街道社区 {i}",
                    "kind": "community",
                    "region_code": DISTRICTS[i % len(DISTRICTS)],
                    "lat": 31.1 + self.rng.random() * 0.3,
                    "lon": 121.3 + self.rng.random() * 0.4,
                },
                201,
            )
            self.sites.append(site["id"])
        donor = await self.call("seed", "POST", "/v1/donors", self.donor, {"name": "压测捐赠方", "kind": "group"}, 201)
        self.donor_id = donor["id"]

    # --- operations -------------------------------------------------------------------------------------------

    async def post_need(self) -> None:
        body = {
            "site_id": self.rng.choice(self.sites),
            "title": "生活物资",
            "urgency": self.rng.choice(["critical", "high", "normal"]),
            "lines": [{"item_code": self.rng.choice(ITEMS), "quantity": self.rng.randint(5, 50)}],
        }
        await self.call("POST /v1/needs", "POST", "/v1/needs", self.frontline, body, 201)

    async def post_offer(self) -> None:
        lots = [
            {"item_code": code, "quantity": self.rng.randint(20, 200), "lat": 31.3, "lon": 121.5}
            for code in self.rng.sample(ITEMS, 2)
        ]
        body = {"donor_id": self.donor_id, "kind": "in_kind", "lots": lots}
        offer = await self.call("POST /v1/offers", "POST", "/v1/offers", self.donor, body, 201)
        if offer:
            self.codes.append((time.perf_counter(), offer["tracking_code"]))

    async def allocation_run(self) -> None:
        body = {"scope": {"item_codes": [self.rng.choice(ITEMS)]}}
        await self.call("POST /v1/allocation-runs", "POST", "/v1/allocation-runs", self.coordinator, body, 201)

    async def accept(self) -> None:
        page = await self.call(
            "GET /v1/proposals", "GET", "/v1/proposals?status=proposed&limit=20", self.coordinator, expect=200
        )
        if page and page["items"]:
            p = self.rng.choice(page["items"])
            await self.call(
                "POST /v1/proposals/{id}/accept", "POST", f"/v1/proposals/{p['id']}/accept", self.coordinator
            )

    async def move_shipment(self) -> None:
        for current, target in (("in_transit", "delivered"), ("picked_up", "in_transit"), ("planned", "picked_up")):
            page = await self.call(
                "GET /v1/shipments", "GET", f"/v1/shipments?status={current}&limit=20", self.carrier, expect=200
            )
            if page and page["items"]:
                s = self.rng.choice(page["items"])
                await self.call(
                    "POST /v1/shipments/{id}/status",
                    "POST",
                    f"/v1/shipments/{s['id']}/status",
                    self.carrier,
                    {"status": target, "location": "浦东分拨中心"},
                )
                return

    async def track(self) -> None:
        # A donor opens the page some time after giving; the page is built from events, a moment behind.
        settled = [code for at, code in self.codes if time.perf_counter() - at > 3.0]
        if settled:
            code = self.rng.choice(settled)
            await self.call("GET /v1/track/{code}", "GET", f"/v1/track/{code}", {}, expect=200)


async def open_loop(rate: float, seconds: float, op: Any) -> None:
    start = time.perf_counter()
    tasks = []
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(op()))
    await asyncio.gather(*tasks)


# Operations per second at scale 1: a busy day at a hub, several times the Shanghai 2022 operation's peak.
RATES = {
    "post_need": 20.0,
    "post_offer": 5.0,
    "allocation_run": 0.5,
    "accept": 5.0,
    "move_shipment": 3.0,
    "track": 20.0,
}
HUB, REGIONS = "hub", ["3101"]
# The organisations the driver's tokens name, each registered and approved by the hub before the load.
MEMBERS = {"carrier": "carrier", "sites": "community_group", "donors": "foundation"}


SHAPES = {
    False: "the services' APIs in one process and each service's workers in one of their own (production shape)",
    True: "every service and its workers in one process (as `make dev`)",
}


def stack_env(db: str, redis: str) -> dict[str, str]:
    """The environment of the stack under load: production mode (the registry on), its pool and limits."""
    return {
        "DATABASE_URL": db,
        "REDIS_URL": redis,
        "RELIEFHUB_ENVIRONMENT": "production",
        "RELIEFHUB_JWT_SECRET": SECRET,
        "RELIEFHUB_DB_POOL_SIZE": "10",
        # One load generator is one client address; the per-address limit would turn it away.
        "RELIEFHUB_TRACK_REQUESTS_PER_MINUTE": "1000000",
    }


def migrated(db: str, redis: str) -> Settings:
    settings = Settings(environment="production", database_url=db, redis_url=redis, jwt_secret=SECRET)
    for spec in services().values():
        upgrade(spec, settings)
    return settings


async def mixed_load(
    base: str,
    settings: Settings,
    stats: Stats,
    *,
    seconds: float,
    scale: float,
    sites: int = 60,
    on_start: Callable[[], Awaitable[None]] | None = None,
) -> float:
    """Onboard the driver's organisations, seed sites and stock, then run every operation at its rate for
    `seconds` (`on_start` awaited just before); the seconds the mix took."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await onboard(client, settings, HUB, REGIONS, MEMBERS)
    timeout = aiohttp.ClientTimeout(total=30)
    # Idle connections are dropped before uvicorn's keep-alive timeout (5 s) would close them under a request.
    connector = aiohttp.TCPConnector(limit=128, keepalive_timeout=4)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        driver = Driver(session, base, settings, stats)
        await driver.seed(sites)
        for _ in range(10):
            await driver.post_offer()
        stats.latencies.clear()
        stats.errors.clear()
        stats.conflicts.clear()
        if on_start is not None:
            await on_start()
        started = time.perf_counter()
        await asyncio.gather(*(open_loop(rate * scale, seconds, getattr(driver, name)) for name, rate in RATES.items()))
        return time.perf_counter() - started


def load_args(prog: str, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every operation's rate")
    parser.add_argument(
        "--production-shape",
        action="store_true",
        help="the APIs in one process and each service's workers in one of their own, instead of one process",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small trial: 8 s at a quarter of the rates (each operation at least once)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.scale = min(args.seconds, 8.0), min(args.scale, 0.25)
    return args


@contextlib.contextmanager
def every_worker(env: dict[str, str]) -> Iterator[list[str]]:
    """One `reliefhub worker` process per service; the metrics URLs of all."""
    with contextlib.ExitStack() as stack:
        yield [url for name in services() for url in stack.enter_context(worker_processes(name, 1, env))]


@contextlib.contextmanager
def stack(db: str, redis: str, *, one_process: bool) -> Iterator[tuple[str, list[str]]]:
    """The stack under load, its base URL and its workers' metrics URLs: in production shape, the services' APIs in
    one process and each service's workers in a process of its own (on this machine's cores as deployed); with
    `one_process`, everything in one process as `make dev` runs it (no worker metrics URLs)."""
    env = stack_env(db, redis)
    with uvicorn_process("reliefhub.gateway:dev_app" if one_process else "bench.common:api_gateway", env) as port:
        base = f"http://127.0.0.1:{port}"
        if one_process:
            yield base, []
            return
        with every_worker({**env, "RELIEFHUB_GATEWAY_URL": base}) as urls:
            yield base, urls


def main(argv: list[str] | None = None) -> str:
    args = load_args("bench.load", argv)
    stats = Stats()
    with servers() as (db, redis):
        settings = migrated(db, redis)
        with stack(db, redis, one_process=not args.production_shape) as (base, _):
            elapsed = asyncio.run(mixed_load(base, settings, stats, seconds=args.seconds, scale=args.scale))

    def pct(xs: list[float], q: float) -> str:
        s = sorted(xs)
        return f"{s[min(len(s) - 1, int(q * len(s)))] * 1000:.0f}" if s else "—"

    rows = []
    for name in sorted(set(stats.latencies) | set(stats.errors)):
        xs = stats.latencies.get(name, [])
        rows.append(
            [
                name,
                str(len(xs) + stats.errors.get(name, 0)),
                f"{len(xs) / elapsed:.1f}",
                f"{statistics.median(xs) * 1000:.0f}" if xs else "—",
                pct(xs, 0.95),
                pct(xs, 0.99),
                str(stats.conflicts.get(name, 0)),
                str(stats.errors.get(name, 0)),
            ]
        )
    total_errors = sum(stats.errors.values())
    text = (
        f"## Mixed load: {args.seconds:.0f} s at {args.scale:g}× the rates, {SHAPES[not args.production_shape]},"
        " production mode (organisations approved by their hub first)\n\n"
        + table(["endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "409s", "errors"], rows)
        + f"\n\nErrors: {total_errors}."
        + "".join(f"\n- {name}: {sample}" for name, sample in stats.samples.items())
        + "\n409s are expected conflicts (a proposal taken or a shipment moved by someone else meanwhile)."
    )
    print(text)
    print(f"\nwritten to {write_result('load', text)}")
    return text


if __name__ == "__main__":
    main()
