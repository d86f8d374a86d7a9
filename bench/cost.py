"""CPU per operation of the one-process stack (every service and its workers, as `make dev` runs it), in-process
and repeatable. For each hot endpoint, a round is N requests one after another with the workers stopped (the
request part), then, once the workers have started and caught up, N more with them running until every outbox is
published, continuous matching has run and every consumer group has caught up, less the workers' idle CPU over
that time (request and events; less the request part, the events part). CPU is this process's
`time.process_time()` and the embedded PostgreSQL's processes' utime+stime from /proc; statements are
SQLAlchemy's `before_cursor_execute` on every engine and those sent to asyncpg directly. Medians over the rounds,
per request.

    python -m bench.cost [--requests 20] [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench.common import ROOT, median, onboard, servers, table, write_result
from bench.load import DISTRICTS, HUB, ITEMS, MEMBERS, REGIONS, SECRET
from reliefhub.gateway import Gateway
from reliefhub.registry import services
from shared.auth import Role, create_token
from shared.db import DriverConnection
from shared.events.envelope import stream_for
from shared.events.lag import group_lags
from shared.migrations import upgrade
from shared.settings import Settings
from shared.worker import run_worker

OPERATIONS = (
    "POST /v1/needs",
    "POST /v1/offers",
    "GET /v1/proposals",
    "GET /v1/track/{code}",
    "POST /v1/proposals/{id}/accept",
)
PART_KEYS = ("py", "pg", "sql")
POLL = 0.05  # seconds between two looks at the backlog
IDLE_SECONDS = 2.0


class Statements:
    """Every statement this process sends: SQLAlchemy's (`before_cursor_execute` on every engine) and the few
    hot ones sent to asyncpg directly (shared.db.DriverConnection); with `texts`, how often each was sent."""

    count = 0
    texts: Counter[str] | None = None

    @classmethod
    def seen(cls, sql: str) -> None:
        cls.count += 1
        if cls.texts is not None:
            cls.texts[" ".join(sql.split())[:160]] += 1

    @classmethod
    def listen(cls) -> None:
        def counted(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            cls.seen(statement)

        event.listen(Engine, "before_cursor_execute", counted)
        for method in ("execute", "fetchrow"):
            original = getattr(DriverConnection, method)

            def direct(self: DriverConnection, sql: str, *args: Any, _original: Any = original) -> Any:
                cls.seen(sql)
                return _original(self, sql, *args)

            setattr(DriverConnection, method, direct)


def postgres_cpu() -> float | None:
    """CPU seconds of the embedded PostgreSQL (its postmaster and every child), or None when it is not ours."""
    pid_file = ROOT / ".reliefhub" / f"bench-{os.getpid()}" / "pg" / "pgdata" / "postmaster.pid"
    if not pid_file.exists():
        return None
    master = int(pid_file.read_text().split()[0])
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(entry) == master or int(fields[1]) == master:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


@dataclass
class Mark:
    py: float
    pg: float | None
    sql: int

    @classmethod
    def now(cls) -> Mark:
        return cls(time.process_time(), postgres_cpu(), Statements.count)

    def since(self, start: Mark) -> dict[str, float]:
        pg = self.pg - start.pg if self.pg is not None and start.pg is not None else float("nan")
        return {"py": self.py - start.py, "pg": pg, "sql": float(self.sql - start.sql)}


class Stack:
    """The gateway with every service's app; its workers started and stopped on demand."""

    def __init__(self, gateway: Gateway, probe: asyncpg.Connection) -> None:
        self.gateway = gateway
        self.probe = probe
        self.streams = [stream_for(name) for name in services()]
        outboxes = " UNION ALL ".join(
            f"SELECT count(*) AS n FROM {spec.kit.schema}.outbox_event WHERE published_at IS NULL"
            for spec in services().values()
        )
        # Continuous matching's queue: items marked dirty, each run once quiet for the debounce interval.
        self.pending_sql = f"SELECT sum(n) FROM ({outboxes} UNION ALL SELECT count(*) FROM matching.dirty_scope) AS b"
        self.stop: asyncio.Event | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.stop = asyncio.Event()
        rts = [app.state.runtime for app in self.gateway.apps.values()]
        self.tasks = [asyncio.create_task(run_worker(rt, self.stop)) for rt in rts]

    async def halt(self) -> None:
        assert self.stop is not None
        self.stop.set()
        await asyncio.gather(*self.tasks)

    async def backlog(self) -> int:
        """Outbox rows not yet published, dirty items not yet matched or being matched, and entries pending or
        not yet delivered in any consumer group."""
        total = int((await self.probe.fetchval(self.pending_sql)) or 0)
        total += sum(1 for t in asyncio.all_tasks() if t.get_name().startswith("matching-run-"))
        redis = next(iter(self.gateway.apps.values())).state.runtime.redis
        for stream in self.streams:
            total += sum(pending + lag for pending, lag in (await group_lags(redis, stream)).values())
        return total

    async def caught_up(self, within: float = 120.0) -> None:
        """Until nothing is left to publish, match or consume, for 10 polls in a row (half a second)."""
        deadline = time.monotonic() + within
        quiet = 0
        while quiet < 10:
            if time.monotonic() > deadline:
                raise TimeoutError("the consumer groups did not catch up")
            await asyncio.sleep(POLL)
            quiet = quiet + 1 if await self.backlog() == 0 else 0

    async def idle(self, seconds: float) -> None:
        """Poll as `caught_up` does for `seconds`: what the running workers and the polls cost when idle."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(POLL)
            await self.backlog()


class Driver:
    def __init__(self, client: httpx.AsyncClient, settings: Settings) -> None:
        self.client = client
        self.rng = random.Random(7)

        def token(role: Role, org: str) -> dict[str, str]:
            return {
                "Authorization": f"Bearer {create_token(sub=f'bench-{org}', org=org, roles=[role], settings=settings)}"
            }

        self.coordinator = token(Role.coordinator, "hub")
        self.frontline = token(Role.frontline, "sites")
        self.donor = token(Role.donor, "donors")
        self.sites: list[str] = []
        self.donor_id = ""
        self.codes: list[str] = []
        self.proposals: list[str] = []

    async def call(self, method: str, path: str, headers: dict[str, str], body: Any = None, expect: int = 200) -> Any:
        r = await self.client.request(method, path, json=body, headers=headers)
        if r.status_code != expect:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json()

    async def seed(self, sites: int) -> None:
        for i in range(sites):
            body = {
                "name": f"街道社区 {i}",
                "kind": "community",
                "region_code": DISTRICTS[i % len(DISTRICTS)],
                "lat": 31.1 + self.rng.random() * 0.3,
                "lon": 121.3 + self.rng.random() * 0.4,
            }
            self.sites.append((await self.call("POST", "/v1/sites", self.frontline, body, 201))["id"])
        donor = await self.call("POST", "/v1/donors", self.donor, {"name": "成本捐赠方", "kind": "group"}, 201)
        self.donor_id = donor["id"]

    async def post_need(self) -> None:
        body = {
            "site_id": self.rng.choice(self.sites),
            "title": "生活物资",
            "urgency": self.rng.choice(["critical", "high", "normal"]),
            "lines": [{"item_code": self.rng.choice(ITEMS), "quantity": self.rng.randint(5, 50)}],
        }
        await self.call("POST", "/v1/needs", self.frontline, body, 201)

    async def post_offer(self) -> None:
        lots = [
            {"item_code": code, "quantity": self.rng.randint(20, 200), "lat": 31.3, "lon": 121.5}
            for code in self.rng.sample(ITEMS, 2)
        ]
        body = {"donor_id": self.donor_id, "kind": "in_kind", "lots": lots}
        self.codes.append((await self.call("POST", "/v1/offers", self.donor, body, 201))["tracking_code"])

    async def list_proposals(self) -> None:
        await self.call("GET", "/v1/proposals?status=proposed&limit=20", self.coordinator)

    async def track(self) -> None:
        await self.call("GET", f"/v1/track/{self.rng.choice(self.codes)}", {})

    async def accept(self) -> None:
        await self.call("POST", f"/v1/proposals/{self.proposals.pop()}/accept", self.coordinator)

    async def propose(self, wanted: int) -> None:
        """Allocation runs until at least `wanted` proposals wait for a decision (their ids kept)."""
        for code in [*ITEMS, *ITEMS]:
            page = await self.call("GET", "/v1/proposals?status=proposed&limit=500", self.coordinator)
            self.proposals = [p["id"] for p in page["items"]]
            if len(self.proposals) >= wanted:
                return
            await self.call("POST", "/v1/allocation-runs", self.coordinator, {"scope": {"item_codes": [code]}}, 201)
        raise RuntimeError(f"only {len(self.proposals)} proposals after allocation runs of every item")


Parts = dict[str, dict[str, float]]  # "request" / "events" → py, pg (seconds), sql


# (operation, part) → statement → times sent in the counted rounds (the events part less the idle workers' share)
SENT: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))


def texts() -> Counter[str]:
    return Counter(Statements.texts or {})


async def measure(stack: Stack, name: str, op: Callable[[], Awaitable[None]], n: int, *, counted: bool) -> Parts:
    """One round of `op`: `n` requests with the workers stopped (the request part); the workers started and
    caught up (not counted); their idle CPU per second measured; `n` requests with them running, until caught up
    again, less the idle CPU of that time (request and events); the workers stopped."""
    sent = texts()
    start = Mark.now()
    for _ in range(n):
        await op()
    request = Mark.now().since(start)
    between = texts()
    stack.start()
    try:
        await stack.caught_up()
        quiet_start, quiet_sent, quiet_wall = Mark.now(), texts(), time.monotonic()
        await stack.idle(IDLE_SECONDS)
        quiet, quiet_wall = Mark.now().since(quiet_start), time.monotonic() - quiet_wall
        quiet_sent = texts() - quiet_sent
        before_all, all_sent, wall = Mark.now(), texts(), time.monotonic()
        for _ in range(n):
            await op()
        await stack.caught_up()
        both, wall = Mark.now().since(before_all), time.monotonic() - wall
        if counted:
            share = wall / quiet_wall
            for sql, times in (between - sent).items():
                SENT[name, "request"][sql] += times
            for sql, times in (texts() - all_sent).items():
                SENT[name, "events"][sql] += times - quiet_sent[sql] * share - (between - sent)[sql]
    finally:
        await stack.halt()
    total = {k: both[k] - quiet[k] * wall / quiet_wall for k in PART_KEYS}
    return {"request": request, "total": total, "events": {k: total[k] - request[k] for k in PART_KEYS}}


async def run(settings: Settings, db_url: str, *, n: int, rounds: int) -> dict[str, list[Parts]]:
    Statements.listen()
    gateway = Gateway(settings)
    results: dict[str, list[Parts]] = defaultdict(list)
    async with gateway.lifespan():
        probe = await asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://"))
        stack = Stack(gateway, probe)
        transport = httpx.ASGITransport(app=gateway)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=60) as client:
                await onboard(client, settings, HUB, REGIONS, MEMBERS)
                driver = Driver(client, settings)
                await driver.seed(30)
                for _ in range(n):
                    await driver.post_offer()
                    await driver.post_need()
                ops: dict[str, Callable[[], Awaitable[None]]] = {
                    "POST /v1/needs": driver.post_need,
                    "POST /v1/offers": driver.post_offer,
                    "GET /v1/proposals": driver.list_proposals,
                    "GET /v1/track/{code}": driver.track,
                    "POST /v1/proposals/{id}/accept": driver.accept,
                }
                for i in range(rounds + 1):  # the first round warms up: not counted
                    for name, op in ops.items():
                        if name == "POST /v1/proposals/{id}/accept":
                            stack.start()
                            try:
                                await stack.caught_up()
                                await driver.propose(2 * n)
                                await stack.caught_up()
                            finally:
                                await stack.halt()
                        parts = await measure(stack, name, op, n, counted=i > 0)
                        if i:
                            results[name].append(parts)
        finally:
            await probe.close()
    return results


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="bench.cost")
    parser.add_argument("--requests", type=int, default=20, help="requests of each operation per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a small trial: 2 rounds of 5 requests")
    parser.add_argument(
        "--statements", type=int, default=0, metavar="K", help="also print each part's K most frequent statements"
    )
    args = parser.parse_args(argv)
    if args.statements:
        Statements.texts = Counter()
    if args.quick:
        args.requests, args.rounds = min(args.requests, 5), min(args.rounds, 2)
    with servers() as (db, redis):
        settings = Settings(
            environment="production",
            database_url=db,
            redis_url=redis,
            jwt_secret=SECRET,
            db_pool_size=10,
            track_requests_per_minute=1_000_000,
        )
        for spec in services().values():
            upgrade(spec, settings)
        results = asyncio.run(run(settings, db, n=args.requests, rounds=args.rounds))

    n = args.requests

    def per_op(name: str, part: str, key: str) -> float:
        return median([r[part][key] for r in results[name]]) / n

    def ms(x: float) -> str:
        return "—" if x != x else f"{x * 1000:.1f}"

    rows = []
    for name in OPERATIONS:
        req_py, req_pg = per_op(name, "request", "py"), per_op(name, "request", "pg")
        ev_py, ev_pg = per_op(name, "events", "py"), per_op(name, "events", "pg")
        rows.append(
            [
                name,
                ms(req_py),
                ms(ev_py),
                ms(req_py + ev_py),
                ms(req_pg),
                ms(ev_pg),
                f"{per_op(name, 'request', 'sql'):.1f}",
                f"{per_op(name, 'events', 'sql'):.1f}",
            ]
        )
    headers = [
        "operation",
        "request CPU ms",
        "events CPU ms",
        "Python CPU ms",
        "request PG ms",
        "events PG ms",
        "request stmts",
        "event stmts",
    ]
    text = (
        f"## CPU per operation, one process (every service and its workers): {args.rounds} rounds of"
        f" {n} sequential requests each, medians per request\n\n"
        + table(headers, rows)
        + "\n\nRequest part: the requests with the workers stopped. Events part: the same requests again with the"
        " workers running, until every outbox is published, continuous matching has run and every consumer group has"
        " caught up, less the workers' idle CPU over that time (measured for 2 s just before) and less the request"
        " part."
        " Python CPU is this process's `time.process_time()`; PG is the embedded PostgreSQL's processes (/proc"
        " utime+stime; — when DATABASE_URL names another server); statements are SQLAlchemy's"
        " `before_cursor_execute`. Run: `python -m bench.cost`."
    )
    print(text)
    for (name, part), sent in SENT.items() if args.statements else ():
        print(f"\n{name}, {part}: statements per request")
        per = args.rounds * n
        for sql, times in sorted(sent.items(), key=lambda st: -st[1])[: args.statements]:
            print(f"  {times / per:6.2f}  {sql}")
    print(f"\nwritten to {write_result('cost', text)}")
    return text


if __name__ == "__main__":
    main()
