"""Rebuilding a projection by replaying the durable event log: each publisher's outbox, in order.

Redis streams are the transport and are trimmed once every consumer group has what it needs; PostgreSQL's
outbox keeps every event (docs/design.md: "PostgreSQL stays the source of truth and can replay"). The
consumer's own handlers are applied to each event, exactly as they would be on delivery, so a rebuilt
projection equals one built live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, text

from shared.db import create_engine, make_sessionmaker
from shared.events import CloudEvent
from shared.service import ServiceSpec
from shared.settings import Settings

BATCH = 1000


@dataclass
class ReplayReport:
    events: dict[str, int]


async def rebuild(
    consumer: ServiceSpec,
    publishers: dict[str, ServiceSpec],
    settings: Settings,
    *,
    tables: list[str],
    group: str,
    progress: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Empty `tables` of `consumer`, then apply the handlers of its consumer group `group` (the one that
    builds those tables) to every event their subscriptions cover."""
    engine = create_engine(settings, pool_size=2)
    try:
        consume = make_sessionmaker(engine, consumer.kit, consumer.name)
        async with consume() as session, session.begin():
            names = ", ".join(f'"{consumer.metadata.schema}"."{t}"' for t in tables)
            await session.execute(text(f"TRUNCATE {names}"))
        counts: dict[str, int] = {}
        for sub in (s for s in consumer.subscriptions if s.group == group):
            publisher = publishers[sub.stream.split(".")[0]]
            outbox = publisher.kit.outbox
            last, seen = 0, 0
            while True:
                async with engine.connect() as conn:
                    rows = (
                        await conn.execute(
                            select(outbox.c.seq, outbox.c.envelope)
                            .where(outbox.c.seq > last)
                            .order_by(outbox.c.seq)
                            .limit(BATCH)
                        )
                    ).all()
                if not rows:
                    break
                async with consume() as session, session.begin():
                    for _seq, envelope in rows:
                        await sub.handler(session, CloudEvent.model_validate(envelope))
                last, seen = rows[-1][0], seen + len(rows)
                if progress is not None:
                    progress(len(rows))
            counts[sub.stream] = seen
        return ReplayReport(events=counts)
    finally:
        await engine.dispose()
