"""Replicas share the work: one, then two processes of `reliefhub worker matching` on one backlog of needs and
supply events (events/s until every event's effect is committed), and one, then two of `reliefhub worker
webhooks` on one backlog of deliveries to loopback receivers (deliveries/s). Double effects are counted, not
assumed away: each event is handled once per group (inbox rows, and the replicas' `reliefhub_events_handled_total`
summed), each need line and lot projected once, each delivery received once.

    python -m bench.replicas [--events 4000] [--backlog 1500] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import projection, webhooks
from bench.common import scrape, servers, table, uvicorn_process, worker_processes, write_result
from reliefhub.registry import services
from shared.events import CloudEvent
from shared.migrations import upgrade
from shared.settings import Settings

SECRET = "bench-secret-" + "r" * 40
GROUP = "matching-projection"
INBOX = "SELECT count(*) FROM matching.inbox_event WHERE consumer = :group AND event_id = ANY(:ids)"
PROJECTED = """
SELECT (SELECT count(*) FROM matching.need_line_view WHERE need_id = ANY(:needs)),
       (SELECT count(*) FROM matching.lot_view WHERE offer_id = ANY(:offers))
"""


def offer_event(i: int) -> CloudEvent:
    """A supply offer with two lots, as supply publishes it."""
    offer_id = uuid.uuid4()
    lots = [
        {
            "id": str(uuid.uuid4()),
            "version": 1,
            "item_code": projection.ITEMS[(i + k) % len(projection.ITEMS)],
            "quantity": 100,
            "quantity_reserved": 0,
            "lat": 31.2 + (i % 100) / 1000,
            "lon": 121.4,
            "region_code": "310101",
            "verification": "not_required",
        }
        for k in range(2)
    ]
    data = {"id": str(offer_id), "org": "org-bench-donor", "status": "open", "version": 1, "lots": lots}
    return CloudEvent(
        source="/reliefhub/supply", type="reliefhub.supply.offer.created", subject=str(offer_id), data=data
    )


@dataclass
class Drain:
    events: int
    seconds: float
    handled: list[float]  # per replica: events its projection applied (outcome ok)
    duplicates: float  # events a replica was handed again and skipped by the inbox
    inbox: int  # inbox rows of the group for the backlog's events
    projected: tuple[int, int]  # need lines and lots of the backlog found in the projection
    expected: tuple[int, int]


async def handled(urls: list[str], outcome: str) -> list[float]:
    """Per replica, how many events the projection group handled with this outcome."""
    return [
        sum(
            v
            for labels, v in await scrape([url], "reliefhub_events_handled_total")
            if labels == {"consumer": GROUP, "outcome": outcome}
        )
        for url in urls
    ]


async def inbox_rows(engine: AsyncEngine, ids: list[str]) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text(INBOX), {"group": GROUP, "ids": ids}) or 0)


async def drain_matching(redis_url: str, engine: AsyncEngine, urls: list[str], count: int) -> Drain:
    """Half needs events, half supply events, added to their streams at once while the replicas wait on them;
    timed until the group's inbox holds every one (each row is committed with its event's effect)."""
    needs = [projection.need_event(i) for i in range(count // 2)]
    offers = [offer_event(i) for i in range(count - len(needs))]
    ids = [e.id for e in [*needs, *offers]]
    before = await handled(urls, "ok")
    skipped = sum(await handled(urls, "duplicate"))
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        pipe = redis.pipeline()
        for e in needs:
            pipe.xadd("needs.events", {"event": e.model_dump_json()})
        for e in offers:
            pipe.xadd("supply.events", {"event": e.model_dump_json()})
        started = time.perf_counter()
        await pipe.execute()
    finally:
        await redis.aclose()
    deadline = time.monotonic() + 120
    while await inbox_rows(engine, ids) < count and time.monotonic() < deadline:  # noqa: ASYNC110 (polling a count)
        await asyncio.sleep(0.02)
    seconds = time.perf_counter() - started
    await asyncio.sleep(1.0)  # a replica applying an event a second time would do so within moments
    async with engine.connect() as conn:
        params = {
            "needs": [uuid.UUID(e.subject or "") for e in needs],
            "offers": [uuid.UUID(e.subject or "") for e in offers],
        }
        lines, lots = (await conn.execute(text(PROJECTED), params)).one()
    after = await handled(urls, "ok")
    return Drain(
        events=count,
        seconds=seconds,
        handled=[a - b for a, b in zip(after, before, strict=True)],
        duplicates=sum(await handled(urls, "duplicate")) - skipped,
        inbox=await inbox_rows(engine, ids),
        projected=(int(lines), int(lots)),
        expected=(2 * len(needs), 2 * len(offers)),
    )


def matching_row(d: Drain) -> list[str]:
    split = " / ".join(f"{n:.0f}" for n in d.handled)
    twice = max(sum(d.handled) - d.events, 0)
    return [
        f"matching worker × {len(d.handled)}",
        f"{d.events} events",
        f"{d.events / d.seconds:.0f} events/s",
        split,
        str(d.events - d.inbox),
        f"{twice:.0f}",
        f"{d.duplicates:.0f}",
        f"{d.projected[0]}/{d.expected[0]} lines, {d.projected[1]}/{d.expected[1]} lots",
    ]


async def drain_webhooks(
    settings: Settings, receivers: webhooks.Receivers, count: int, per_event: int, urls: list[str]
) -> list[str]:
    """A backlog of `count` events committed at once to the needs outbox, each owed to `per_event` endpoints."""
    _, per_s, missing = await webhooks.phase(settings, receivers, 0, count, per_event)
    return [
        f"webhooks worker × {len(urls)}",
        f"{count * per_event} deliveries",
        f"{per_s:.0f} deliveries/s",
        "—",
        str(missing),
        str(receivers.repeats),
        "—",
        "—",
    ]


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="bench.replicas")
    parser.add_argument("--events", type=int, default=4000, help="needs and supply events in the matching backlog")
    parser.add_argument("--backlog", type=int, default=1500, help="events in the webhooks backlog")
    parser.add_argument("--per-event", type=int, default=3, help="endpoints each webhook event is owed to (of 10)")
    parser.add_argument("--quick", action="store_true", help="a small trial: 400 events, a backlog of 100")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.backlog = min(args.events, 400), min(args.backlog, 100)
    rows: list[list[str]] = []
    with servers() as (db, redis):
        settings = Settings(
            environment="test",
            database_url=db,
            redis_url=redis,
            jwt_secret=SECRET,
            webhook_allowed_networks=["127.0.0.0/8"],
        )
        for spec in services().values():
            upgrade(spec, settings)
        env = {
            "DATABASE_URL": db,
            "REDIS_URL": redis,
            "RELIEFHUB_ENVIRONMENT": "test",
            "RELIEFHUB_JWT_SECRET": SECRET,
            "RELIEFHUB_DB_POOL_SIZE": "10",
            "RELIEFHUB_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        }
        with uvicorn_process("bench.common:api_gateway", env) as port:
            env["RELIEFHUB_GATEWAY_URL"] = f"http://127.0.0.1:{port}"

            async def run() -> None:
                engine = create_async_engine(db)
                receivers = webhooks.Receivers()
                try:
                    for n in (1, 2):
                        with worker_processes("matching", n, env) as urls:
                            await asyncio.sleep(2)  # consumer groups created, every replica waiting on them
                            rows.append(matching_row(await drain_matching(redis, engine, urls, args.events)))
                    await receivers.start()
                    await webhooks.make_endpoints(settings, receivers.port, args.per_event)
                    with worker_processes("needs", 1, env):
                        for n in (1, 2):
                            with worker_processes("webhooks", n, env) as urls:
                                await asyncio.sleep(2)
                                rows.append(
                                    await drain_webhooks(settings, receivers, args.backlog, args.per_event, urls)
                                )
                finally:
                    if receivers.server is not None:
                        receivers.server.close()
                    await engine.dispose()

            asyncio.run(run())
    text = (
        "## Replicas: one vs two worker processes on one backlog\n\n"
        + table(
            [
                "workers",
                "backlog",
                "throughput",
                "handled per replica",
                "missing",
                "twice",
                "redelivered, skipped",
                "projected",
            ],
            rows,
        )
        + "\n\nMatching: needs and supply events added at once to their streams, timed until the"
        ' `matching-projection` inbox holds each (committed with its effect); "twice": events applied beyond once'
        ' (the replicas\' `reliefhub_events_handled_total{outcome="ok"}` summed, less the events); "redelivered,'
        ' skipped": entries a replica was handed after another had applied them, turned away by the inbox.'
        " Webhooks: events committed at once to the needs outbox (one needs worker relays them), each owed to"
        f' {args.per_event} of 10 loopback endpoints; "twice": deliveries a receiver got more than once.'
        " The continuous runs the matching backlog sets off (its lines and lots are of 5 items) run in the same"
        " worker processes meanwhile, as they would in production."
    )
    print(text)
    print(f"\nwritten to {write_result('replicas', text)}")
    return text


if __name__ == "__main__":
    main()
