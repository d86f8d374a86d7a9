"""Projection backlog drain: one matching worker's `matching-projection` consumer applying a backlog of needs
events (committed beforehand to `needs.events`), events per second, batched as the worker runs it.

    python -m bench.projection [--events 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime

from bench.common import servers, table, write_result
from reliefhub.registry import services
from shared.events import CloudEvent
from shared.migrations import upgrade
from shared.runtime import Runtime
from shared.settings import Settings
from shared.worker import consumers_for

ITEMS = ("water", "rice", "masks", "tents", "blankets")


def need_event(i: int) -> CloudEvent:
    need_id = uuid.uuid4()
    data = {
        "id": str(need_id),
        "site_id": str(uuid.uuid4()),
        "org": "org-bench",
        "site_kind": "shelter",
        "region_code": "310115",
        "lat": 31.2 + (i % 100) / 1000,
        "lon": 121.5,
        "urgency": "high",
        "needed_by": None,
        "status": "open",
        "verification": "unverified",
        "version": 1,
        "created_at": datetime.now(UTC).isoformat(),
        "lines": [
            {"id": str(uuid.uuid4()), "item_code": ITEMS[(i + k) % len(ITEMS)], "quantity": 10 + k} for k in range(2)
        ],
    }
    return CloudEvent(source="/reliefhub/needs", type="reliefhub.needs.need.created", subject=str(need_id), data=data)


async def drain(settings: Settings, count: int) -> float:
    rt = Runtime.start(services()["matching"], settings)
    try:
        [consumer] = [c for c in consumers_for(rt) if (c.stream, c.group) == ("needs.events", "matching-projection")]
        await consumer.ensure_group()
        pipe = rt.redis.pipeline()
        for i in range(count):
            pipe.xadd("needs.events", {"event": need_event(i).model_dump_json()})
        await pipe.execute()
        started, handled = time.perf_counter(), 0
        while handled < count:
            handled += await consumer.read_new(block_ms=100)
        return count / (time.perf_counter() - started)
    finally:
        await rt.close()


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="bench.projection")
    parser.add_argument("--events", type=int, default=4000)
    args = parser.parse_args(argv)
    with servers() as (db, redis):
        settings = Settings(environment="test", database_url=db, redis_url=redis, jwt_secret="bench-secret-" * 3)
        upgrade(services()["matching"], settings)
        rate = asyncio.run(drain(settings, args.events))
    text = table(
        ["consumer", "backlog (needs events)", "events/s", "goal"],
        [["matching-projection, one process", str(args.events), f"{rate:.0f}", "≥ 2,000"]],
    )
    print(text)
    write_result("projection", text)
    return text


if __name__ == "__main__":
    main()
