"""Webhook delivery: event → delivery latency at a steady event rate, how many deliveries a second one
dispatcher process sends from a backlog, and two dispatcher processes sharing a backlog (none sent twice).

The stack is real: events are committed to the needs service's outbox (as every state change does), the
needs worker relays them to its stream, the webhooks worker (its own process, as in production) fans them
out to the endpoints that want them and delivers them, signed, to 10 endpoints served by this process on
loopback. Prints a table and writes bench/results/webhooks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

from bench.common import ROOT, servers, table, write_result
from reliefhub.registry import services
from shared.auth import Principal, Role
from shared.db import create_engine, make_sessionmaker
from shared.events import EventType, publish
from shared.migrations import upgrade
from shared.settings import Settings

SECRET = "bench-secret-" + "w" * 40
REGIONS = [f"3101{i:02d}" for i in range(1, 11)]


def _event_type() -> EventType:
    from services.needs.events import SITE_CREATED

    return SITE_CREATED


class Receivers:
    """A minimal HTTP/1.1 keep-alive server; one path per endpoint. Records when each webhook-id arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[tuple[str, str], float] = {}
        self.repeats = 0  # requests for a (path, webhook-id) that had arrived already
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                path = request_line.split()[1].decode()
                length, webhook_id = 0, ""
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.partition(b":")
                    key = name.strip().lower()
                    if key == b"content-length":
                        length = int(value)
                    elif key == b"webhook-id":
                        webhook_id = value.strip().decode()
                await reader.readexactly(length)
                if (path, webhook_id) in self.arrivals:
                    self.repeats += 1
                else:
                    self.arrivals[(path, webhook_id)] = time.time()
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


@contextlib.contextmanager
def worker(service: str, env: dict[str, str]) -> Iterator[None]:
    """`reliefhub worker SERVICE` in its own process."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reliefhub.cli", "worker", service],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(30)


async def make_endpoints(settings: Settings, port: int, per_event: int) -> None:
    """10 endpoints; endpoint k wants events of `per_event` of the 10 regions, so each event is owed to
    `per_event` endpoints."""
    from services.webhooks import schemas
    from services.webhooks.service import create_endpoint

    spec = services()["webhooks"]
    engine = create_engine(settings, pool_size=2)
    try:
        async with make_sessionmaker(engine, spec.kit, spec.name)() as session, session.begin():
            for k in range(10):
                regions = [REGIONS[(k + j) % 10] for j in range(per_event)]
                await create_endpoint(
                    session,
                    Principal(sub="bench", org=f"group-{k}", roles=frozenset({Role.working_group})),
                    schemas.EndpointCreate.model_validate(
                        {
                            "url": f"http://127.0.0.1:{port}/endpoint-{k}",
                            "event_types": ["reliefhub.needs.*"],
                            "filters": {"region_codes": regions},
                        }
                    ),
                    settings,
                )
    finally:
        await engine.dispose()


async def emit(settings: Settings, rate: float, count: int) -> dict[str, float]:
    """Commit `count` events to the needs outbox at `rate` a second (open loop); event id → commit time."""
    spec = services()["needs"]
    engine = create_engine(settings, pool_size=8)
    sessions = make_sessionmaker(engine, spec.kit, spec.name)
    event_type = _event_type()
    sent: dict[str, float] = {}

    async def one(i: int) -> None:
        async with sessions() as session, session.begin():
            event = await publish(
                session,
                event_type,
                {
                    "id": str(uuid.uuid4()),
                    "org": "bench",
                    "name": f"站点 {i}",
                    "kind": "community",
                    "region_code": REGIONS[i % 10],
                    "lat": 31.2,
                    "lon": 121.4,
                    "version": 1,
                },
            )
        sent[event.id] = time.time()

    try:
        start = time.perf_counter()
        tasks = []
        for i in range(count):
            if rate > 0:
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i)))
            if rate <= 0 and len(tasks) % 200 == 0:
                await asyncio.gather(*tasks[-200:])
        await asyncio.gather(*tasks)
    finally:
        await engine.dispose()
    return sent


async def wait_for(receivers: Receivers, expected: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while len(receivers.arrivals) < expected and time.monotonic() < deadline:  # noqa: ASYNC110 (polling a count)
        await asyncio.sleep(0.1)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def phase(
    settings: Settings, receivers: Receivers, rate: float, count: int, per_event: int
) -> tuple[list[float], float, int]:
    """Latencies (s) from commit to arrival, deliveries a second over the phase, deliveries missing."""
    receivers.arrivals.clear()
    receivers.repeats = 0
    t0 = time.time()
    sent = await emit(settings, rate, count)
    expected = count * per_event
    await wait_for(receivers, expected, seconds=120)
    await asyncio.sleep(0.5)  # a delivery sent twice arrives within moments of the first
    latencies = [arrived - sent[wid] for (_, wid), arrived in receivers.arrivals.items() if wid in sent]
    last = max(receivers.arrivals.values(), default=t0)
    first = min(sent.values(), default=t0)
    return latencies, len(receivers.arrivals) / max(last - first, 1e-9), expected - len(receivers.arrivals)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="bench.webhooks")
    parser.add_argument("--rate", type=float, default=200.0, help="events per second in the latency phase")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--per-event", type=int, default=3, help="endpoints each event is owed to (of 10)")
    parser.add_argument("--backlog", type=int, default=1500, help="events committed at once in the throughput phase")
    args = parser.parse_args(argv)
    rows = []
    with servers() as (db, redis):
        allowed = '["127.0.0.0/8"]'
        env = {
            "DATABASE_URL": db,
            "REDIS_URL": redis,
            "RELIEFHUB_ENVIRONMENT": "test",
            "RELIEFHUB_JWT_SECRET": SECRET,
            "RELIEFHUB_DB_POOL_SIZE": "10",
            "RELIEFHUB_WEBHOOK_ALLOWED_NETWORKS": allowed,
        }
        settings = Settings(
            environment="test",
            database_url=db,
            redis_url=redis,
            jwt_secret=SECRET,
            webhook_allowed_networks=["127.0.0.0/8"],
        )
        for spec in services().values():
            upgrade(spec, settings)

        async def run() -> None:
            receivers = Receivers()
            await receivers.start()
            await make_endpoints(settings, receivers.port, args.per_event)

            def row(load: str, deliveries: int, lat: list[float], per_s: float, missing: int) -> list[str]:
                return [
                    load,
                    str(deliveries),
                    str(missing),
                    str(receivers.repeats),
                    f"{statistics.median(lat) * 1000:.0f}" if lat else "—",
                    f"{pct(lat, 0.95) * 1000:.0f}",
                    f"{pct(lat, 0.99) * 1000:.0f}",
                    f"{per_s:.0f}",
                ]

            with worker("needs", env), worker("webhooks", env):
                await asyncio.sleep(3)  # consumer groups created, dispatcher polling
                await phase(settings, receivers, 50, 100, args.per_event)  # warm-up
                count = int(args.rate * args.seconds)
                lat, per_s, missing = await phase(settings, receivers, args.rate, count, args.per_event)
                rows.append(
                    row(
                        f"steady {args.rate:.0f} events/s × {args.seconds:.0f} s",
                        count * args.per_event,
                        lat,
                        per_s,
                        missing,
                    )
                )
                lat, per_s, missing = await phase(settings, receivers, 0, args.backlog, args.per_event)
                rows.append(
                    row(f"backlog of {args.backlog} events at once", args.backlog * args.per_event, lat, per_s, missing)
                )
                with worker("webhooks", env):
                    await asyncio.sleep(3)
                    lat, per_s, missing = await phase(settings, receivers, 0, args.backlog, args.per_event)
                    rows.append(
                        row(
                            f"backlog of {args.backlog} events, 2 webhooks workers",
                            args.backlog * args.per_event,
                            lat,
                            per_s,
                            missing,
                        )
                    )
            if receivers.server is not None:
                receivers.server.close()

        asyncio.run(run())
    text = (
        "## Webhooks: event committed → signed delivery received, 10 loopback endpoints, "
        f"each event owed to {args.per_event} of them\n\n"
        + table(["load", "deliveries", "missing", "sent twice", "p50 ms", "p95 ms", "p99 ms", "deliveries/s"], rows)
        + "\n\nGoals: p95 ≤ 1 s at 200 events/s; ≥ 500 deliveries/s; none sent twice. One webhooks worker process "
        "(consumer + dispatcher; two in the last row, sharing the backlog) and one needs worker (outbox relay); the "
        "receivers answer 204 at once."
    )
    print(text)
    print(f"\nwritten to {write_result('webhooks', text)}")
    return text


if __name__ == "__main__":
    main()
