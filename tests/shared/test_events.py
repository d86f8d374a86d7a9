"""The event bus against real PostgreSQL and Redis: outbox, relay, consumer groups with an inbox, dead letters,
and MINID trimming."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from reliefhub.gateway import Gateway
from services.needs.events import SITE_CREATED
from services.supply.events import OFFER_CREATED
from shared.events import CloudEvent, publish
from shared.events.consumer import Consumer, concerns, in_sequence
from shared.events.relay import OutboxRelay
from shared.events.trim import safe_minid, trim_stream
from shared.runtime import Runtime
from tests.helpers.waiting import eventually

STREAM = "needs.events"
DEAD = "needs.events.dead"
GROUP = "test-group"


class SimulatedCrash(Exception):
    """Stands for the process dying at that point."""


@pytest.fixture
def rt(gateway: Gateway, engine: AsyncEngine, redis: Redis) -> Runtime:
    runtime: Runtime = gateway.apps["needs"].state.runtime
    return runtime


@pytest.fixture
async def effects(engine: AsyncEngine) -> AsyncEngine:
    """kit_test.effect: one row per time a handler's write was committed (deliberately no unique key)."""
    async with engine.begin() as conn:
        await conn.execute(text("CREATE SCHEMA IF NOT EXISTS kit_test"))
        await conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS kit_test.effect ("
                "event_id text NOT NULL, consumer text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
        )
        await conn.execute(text("TRUNCATE kit_test.effect"))
    return engine


def site_data(n: int = 0) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "org": "org-test",
        "name": f"测试站点 {n}",
        "kind": "hospital",
        "region_code": "310101",
        "lat": 31.2,
        "lon": 121.4,
        "version": 1,
    }


async def publish_sites(rt: Runtime, n: int) -> list[CloudEvent]:
    """n committed SITE_CREATED events, one transaction each."""
    out = []
    for i in range(n):
        async with rt.sessionmaker() as s, s.begin():
            out.append(await publish(s, SITE_CREATED, site_data(i), subject=f"site-{i}"))
    return out


def relay_of(rt: Runtime, **overrides: Any) -> OutboxRelay:
    settings = rt.settings.model_copy(update=overrides) if overrides else rt.settings
    return OutboxRelay(engine=rt.engine, kit=rt.spec.kit, redis=rt.redis, settings=settings)


def consumer_of(rt: Runtime, handler: Any, *, name: str, cls: type[Consumer] = Consumer, **overrides: Any) -> Consumer:
    settings = rt.settings.model_copy(update=overrides) if overrides else rt.settings
    return cls(
        group=GROUP,
        stream=STREAM,
        handler=handler,
        sessionmaker=rt.sessionmaker,
        redis=rt.redis,
        settings=settings,
        name=name,
    )


async def record_effect(session: AsyncSession, event: CloudEvent) -> None:
    await session.execute(
        text("INSERT INTO kit_test.effect (event_id, consumer) VALUES (:id, :c)"), {"id": event.id, "c": GROUP}
    )


async def effect_counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT event_id, count(*) FROM kit_test.effect GROUP BY event_id"))).all()
    return {r[0]: int(r[1]) for r in rows}


async def inbox_ids(engine: AsyncEngine, group: str = GROUP) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT event_id FROM needs.inbox_event WHERE consumer = :g"), {"g": group})
        return {r[0] for r in rows}


async def pending_count(redis: Redis, stream: str = STREAM, group: str = GROUP) -> int:
    summary: Any = await redis.xpending(stream, group)
    return int(summary["pending"])


# --- outbox and relay --------------------------------------------------------------------------------------


async def test_relay_publishes_committed_rows_in_seq_order_once(rt: Runtime, engine: AsyncEngine, redis: Redis) -> None:
    events = await publish_sites(rt, 3)
    async with rt.sessionmaker() as s, s.begin():  # two events of one transaction
        events.append(await publish(s, SITE_CREATED, site_data(3)))
        events.append(await publish(s, SITE_CREATED, site_data(4)))
    relay = relay_of(rt, relay_batch_size=2)
    assert await relay.backlog() == 5

    assert [await relay.publish_batch() for _ in range(4)] == [2, 2, 1, 0]

    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id, published_at FROM needs.outbox_event ORDER BY seq"))).all()
    assert [str(r[0]) for r in rows] == [e.id for e in events]
    assert all(r[1] is not None for r in rows)
    entries: Any = await redis.xrange(STREAM)
    published = [json.loads(fields["event"]) for _id, fields in entries]
    assert [p["id"] for p in published] == [e.id for e in events]
    assert {fields["type"] for _id, fields in entries} == {SITE_CREATED.name}
    first = published[0]
    assert first["specversion"] == "1.0" and first["source"] == "/reliefhub/needs"
    assert first["subject"] == "site-0" and first["data"]["name"] == "测试站点 0"
    assert CloudEvent.model_validate(first).id == events[0].id

    assert await relay.publish_batch() == 0
    assert await relay.backlog() == 0
    assert await redis.xlen(STREAM) == 5


async def test_an_idle_relay_is_woken_by_a_row_committed_in_its_process(rt: Runtime, redis: Redis) -> None:
    relay = relay_of(rt, relay_poll_seconds=60.0)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.sleep(0.5)  # its first batch found nothing: it sleeps until the poll, a minute away
        (event,) = await publish_sites(rt, 1)

        async def published() -> Any:
            return await redis.xrange(STREAM)

        entries = await eventually(published, seconds=20)
        assert [json.loads(fields["event"])["id"] for _id, fields in entries] == [event.id]
    finally:
        stop.set()
        await task


async def test_rolled_back_transaction_leaves_no_event(rt: Runtime, redis: Redis) -> None:
    with pytest.raises(SimulatedCrash):
        async with rt.sessionmaker() as s, s.begin():
            await publish(s, SITE_CREATED, site_data())
            raise SimulatedCrash
    relay = relay_of(rt)
    assert await relay.backlog() == 0
    assert await relay.publish_batch() == 0
    assert await redis.exists(STREAM) == 0


async def test_publish_refuses_invalid_data_and_other_services_types(rt: Runtime) -> None:
    async with rt.sessionmaker() as s, s.begin():
        with pytest.raises(ValidationError):
            await publish(s, SITE_CREATED, {"id": "not-a-uuid"})
        with pytest.raises(ValueError, match="cannot publish"):
            await publish(s, OFFER_CREATED, {})
    assert await relay_of(rt).backlog() == 0


# --- consumers ---------------------------------------------------------------------------------------------


async def test_each_event_is_handled_once_per_group(rt: Runtime, effects: AsyncEngine, redis: Redis) -> None:
    events = await publish_sites(rt, 3)
    await relay_of(rt).publish_batch()
    consumer = consumer_of(rt, record_effect, name="c1")
    await consumer.ensure_group()
    await consumer.ensure_group()  # idempotent

    assert await consumer.read_new(block_ms=50) == 3
    assert await consumer.read_new(block_ms=50) == 0

    ids = {e.id for e in events}
    assert await effect_counts(effects) == dict.fromkeys(ids, 1)
    assert await inbox_ids(effects) == ids
    assert await pending_count(redis) == 0

    # The relay may publish a batch twice (crash between XADD and its UPDATE): the inbox absorbs it.
    published_entries: Any = await redis.xrange(STREAM)
    for _id, fields in published_entries:
        await redis.xadd(STREAM, fields)
    assert await consumer.read_new(block_ms=50) == 3
    assert await effect_counts(effects) == dict.fromkeys(ids, 1)
    assert await pending_count(redis) == 0


async def test_crash_after_db_write_before_ack_is_redelivered_with_its_effect_exactly_once(
    rt: Runtime, effects: AsyncEngine, redis: Redis
) -> None:
    """A handler that crashes after its DB write but before its ack is redelivered and has its effect exactly once."""

    class CrashBeforeAck(Consumer):
        crashed = False

        async def ack(self, msg_ids: list[str]) -> None:
            if not self.crashed:
                self.crashed = True
                raise SimulatedCrash("died after commit, before XACK")
            await super().ack(msg_ids)

    events = await publish_sites(rt, 3)
    await relay_of(rt).publish_batch()
    doomed = consumer_of(rt, record_effect, name="doomed", cls=CrashBeforeAck)
    await doomed.ensure_group()
    with pytest.raises(SimulatedCrash):
        await doomed.read_new(block_ms=50)

    ids = {e.id for e in events}
    assert await effect_counts(effects) == dict.fromkeys(ids, 1)  # committed before the crash
    assert await pending_count(redis) == 3  # but never acked

    rescuer = consumer_of(rt, record_effect, name="rescuer", consumer_claim_idle_ms=400)
    assert await rescuer.reclaim() == 0  # not idle long enough yet: the owner may still be working
    await asyncio.sleep(0.5)
    assert await rescuer.reclaim() == 3

    assert await effect_counts(effects) == dict.fromkeys(ids, 1)
    assert await pending_count(redis) == 0
    assert await inbox_ids(effects) == ids


async def test_a_handler_that_fails_before_commit_is_retried_and_applied_once(
    rt: Runtime, effects: AsyncEngine, redis: Redis
) -> None:
    calls: list[str] = []

    async def flaky(session: AsyncSession, event: CloudEvent) -> None:
        calls.append(event.id)
        await record_effect(session, event)
        if len(calls) == 1:
            raise SimulatedCrash("after the write, before commit")

    [event] = await publish_sites(rt, 1)
    await relay_of(rt).publish_batch()
    consumer = consumer_of(rt, flaky, name="c1", consumer_claim_idle_ms=0)
    await consumer.ensure_group()
    assert await consumer.read_new(block_ms=50) == 0
    assert await effect_counts(effects) == {}  # rolled back with its inbox row
    assert await inbox_ids(effects) == set()
    assert await pending_count(redis) == 1

    assert await consumer.reclaim() == 1
    assert calls == [event.id, event.id]
    assert await effect_counts(effects) == {event.id: 1}
    assert await pending_count(redis) == 0


async def test_a_handler_that_keeps_failing_goes_to_dead_letters_after_max_deliveries(
    rt: Runtime, effects: AsyncEngine, redis: Redis
) -> None:
    attempts: list[str] = []

    async def broken(session: AsyncSession, event: CloudEvent) -> None:
        attempts.append(event.id)
        await record_effect(session, event)
        raise SimulatedCrash("always")

    [event] = await publish_sites(rt, 1)
    await relay_of(rt).publish_batch()
    entries: Any = await redis.xrange(STREAM)
    [(msg_id, original)] = entries
    consumer = consumer_of(rt, broken, name="c1", consumer_claim_idle_ms=0, consumer_max_deliveries=3)
    await consumer.ensure_group()

    assert await consumer.read_new(block_ms=50) == 0  # delivery 1
    assert await consumer.reclaim() == 0  # delivery 2
    assert await consumer.reclaim() == 0  # delivery 3
    assert await redis.xlen(DEAD) == 0
    assert await pending_count(redis) == 1
    await consumer.reclaim()  # delivery 4 > 3: dead letter

    assert len(attempts) == 3
    assert await pending_count(redis) == 0
    dead_entries: Any = await redis.xrange(DEAD)
    [(_dead_id, dead)] = dead_entries
    assert dead["original_id"] == msg_id and dead["group"] == GROUP
    assert "delivered 4 times" in dead["reason"]
    assert dead["event"] == original["event"] and json.loads(dead["event"])["id"] == event.id
    assert await effect_counts(effects) == {}
    assert await inbox_ids(effects) == set()  # so a replay from the dead letters is handled for real


async def test_an_undecodable_entry_goes_to_dead_letters_at_once(
    rt: Runtime, effects: AsyncEngine, redis: Redis
) -> None:
    handled: list[str] = []

    async def handler(session: AsyncSession, event: CloudEvent) -> None:
        handled.append(event.id)

    consumer = consumer_of(rt, handler, name="c1")
    await consumer.ensure_group()
    garbage = await redis.xadd(STREAM, {"type": "x", "event": "{not json"})
    no_event = await redis.xadd(STREAM, {"type": "x"})
    wrong_shape = await redis.xadd(STREAM, {"event": json.dumps({"id": "1", "data": "not an object"})})

    assert await consumer.read_new(block_ms=50) == 3
    assert handled == []
    assert await pending_count(redis) == 0
    dead: Any = await redis.xrange(DEAD)
    assert [d["original_id"] for _id, d in dead] == [garbage, no_event, wrong_shape]
    assert all(d["group"] == GROUP and d["reason"].startswith("undecodable") for _id, d in dead)
    assert dead[0][1]["event"] == "{not json"


# --- trimming ----------------------------------------------------------------------------------------------

TRIM = "kit_test.trim"


@pytest.fixture
async def trim_redis(redis: Redis) -> Redis:
    await redis.delete(TRIM)
    return redis


async def _fill(redis: Redis, n: int) -> list[str]:
    return [str(await redis.xadd(TRIM, {"n": str(i)})) for i in range(n)]


async def _read(redis: Redis, group: str, count: int) -> list[str]:
    resp: Any = await redis.xreadgroup(group, f"{group}-1", {TRIM: ">"}, count=count)
    return [msg_id for _stream, entries in resp for msg_id, _fields in entries] if resp else []


async def _ids(redis: Redis) -> list[str]:
    entries: Any = await redis.xrange(TRIM)
    return [msg_id for msg_id, _fields in entries]


async def test_trim_without_groups_trims_nothing(trim_redis: Redis) -> None:
    redis = trim_redis
    assert await trim_stream(redis, TRIM) == 0  # no stream at all
    ids = await _fill(redis, 5)
    assert await safe_minid(redis, TRIM) is None
    assert await trim_stream(redis, TRIM) == 0
    assert await _ids(redis) == ids


async def test_trim_never_removes_entries_pending_for_any_group(trim_redis: Redis) -> None:
    redis = trim_redis
    ids = await _fill(redis, 5)
    for group in ("fast", "slow"):
        await redis.xgroup_create(TRIM, group, id="0")
    assert await _read(redis, "fast", 5) == ids
    await redis.xack(TRIM, "fast", *ids)
    assert await _read(redis, "slow", 5) == ids  # delivered to slow, none acked

    assert await trim_stream(redis, TRIM) == 0
    assert await _ids(redis) == ids

    await redis.xack(TRIM, "slow", ids[0], ids[1], ids[3])  # ids[2] and ids[4] still pending
    assert await trim_stream(redis, TRIM) == 2
    assert await _ids(redis) == ids[2:]


async def test_trim_keeps_entries_not_yet_delivered_to_a_lagging_group(trim_redis: Redis) -> None:
    redis = trim_redis
    ids = await _fill(redis, 5)
    for group in ("ahead", "behind", "idle"):
        await redis.xgroup_create(TRIM, group, id="0")
    await redis.xack(TRIM, "ahead", *await _read(redis, "ahead", 5))
    await redis.xack(TRIM, "behind", *await _read(redis, "behind", 2))

    assert await trim_stream(redis, TRIM) == 0  # "idle" has read nothing
    assert await _ids(redis) == ids

    await redis.xack(TRIM, "idle", *await _read(redis, "idle", 5))
    assert await trim_stream(redis, TRIM) == 1  # below what "behind" last got
    assert await _ids(redis) == ids[1:]


async def test_trim_with_every_group_caught_up_trims_below_the_last_delivered_id(trim_redis: Redis) -> None:
    redis = trim_redis
    ids = await _fill(redis, 5)
    for group in ("a", "b"):
        await redis.xgroup_create(TRIM, group, id="0")
        await redis.xack(TRIM, group, *await _read(redis, group, 5))
    assert await safe_minid(redis, TRIM) == ids[-1]
    assert await trim_stream(redis, TRIM) == 4
    assert await _ids(redis) == ids[-1:]
    assert await trim_stream(redis, TRIM) == 0


# --- batches -----------------------------------------------------------------------------------------------


def batch_consumer_of(rt: Runtime, handler: Any, *, name: str, **overrides: Any) -> Consumer:
    consumer = consumer_of(rt, handler, name=name, **overrides)
    consumer.batch_handler = in_sequence(handler)
    return consumer


def lag_count(group: str = GROUP) -> float:
    """How many events the projection-lag histogram of `group` has counted, as /metrics exposes it."""
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        for s in family.samples:
            if s.name == "reliefhub_projection_lag_seconds_count" and s.labels.get("group") == group:
                return s.value
    return 0.0


async def test_a_batch_is_applied_in_one_go_and_its_redelivery_doubles_nothing(
    rt: Runtime, effects: AsyncEngine, redis: Redis
) -> None:
    events = await publish_sites(rt, 5)
    await relay_of(rt).publish_batch()
    consumer = batch_consumer_of(rt, record_effect, name="c1")
    await consumer.ensure_group()
    before = lag_count()

    assert await consumer.read_new(block_ms=50) == 5
    ids = {e.id for e in events}
    assert await effect_counts(effects) == dict.fromkeys(ids, 1)
    assert await pending_count(redis) == 0
    assert lag_count() == before + 5  # one lag observation per event applied

    # The same entries again (a relay re-publishing, a consumer dying before its ack): nothing doubles.
    published_entries: Any = await redis.xrange(STREAM)
    for _id, fields in published_entries:
        await redis.xadd(STREAM, fields)
    assert await consumer.read_new(block_ms=50) == 5
    assert await effect_counts(effects) == dict.fromkeys(ids, 1)
    assert await pending_count(redis) == 0
    assert lag_count() == before + 5  # duplicates are not applied, so not counted as applied


async def test_a_poison_event_in_a_batch_does_not_hold_back_the_others(
    rt: Runtime, effects: AsyncEngine, redis: Redis
) -> None:
    events = await publish_sites(rt, 4)
    poison = events[1].id

    async def picky(session: AsyncSession, event: CloudEvent) -> None:
        await record_effect(session, event)
        if event.id == poison:
            raise SimulatedCrash("this event always fails")

    await relay_of(rt).publish_batch()
    consumer = batch_consumer_of(rt, picky, name="c1", consumer_claim_idle_ms=0, consumer_max_deliveries=2)
    await consumer.ensure_group()

    assert await consumer.read_new(block_ms=50) == 3
    assert await effect_counts(effects) == {e.id: 1 for e in events if e.id != poison}
    assert await pending_count(redis) == 1
    await consumer.reclaim()  # delivery 2
    await consumer.reclaim()  # delivery 3 > 2: dead letter
    assert await pending_count(redis) == 0
    dead_entries: Any = await redis.xrange(DEAD)
    assert [json.loads(d["event"])["id"] for _i, d in dead_entries] == [poison]
    assert await effect_counts(effects) == {e.id: 1 for e in events if e.id != poison}


async def collide(session: AsyncSession) -> None:
    """What a transaction that lost a deadlock gets from PostgreSQL: SQLSTATE 40P01, raised by the server."""
    await session.execute(text("DO $$ BEGIN RAISE EXCEPTION 'collided' USING ERRCODE = '40P01'; END $$"))


async def test_a_batch_that_lost_a_collision_is_run_again_as_a_batch(
    rt: Runtime, effects: AsyncEngine, redis: Redis
) -> None:
    events = await publish_sites(rt, 3)
    batches: list[int] = []

    async def colliding_once(session: AsyncSession, batch: list[CloudEvent]) -> None:
        batches.append(len(batch))
        for event in batch:
            await record_effect(session, event)
        if len(batches) == 1:
            await collide(session)

    await relay_of(rt).publish_batch()
    consumer = consumer_of(rt, record_effect, name="c1", consumer_claim_idle_ms=60_000)
    consumer.batch_handler = colliding_once
    await consumer.ensure_group()

    assert await consumer.read_new(block_ms=50) == 3
    assert batches == [3, 3]  # rolled back, then the same batch again: not event by event
    assert await effect_counts(effects) == {e.id: 1 for e in events}
    assert await pending_count(redis) == 0


async def test_an_event_that_lost_a_collision_is_handled_again_at_once(
    rt: Runtime, effects: AsyncEngine, redis: Redis
) -> None:
    [event] = await publish_sites(rt, 1)
    calls: list[str] = []

    async def colliding_twice(session: AsyncSession, event: CloudEvent) -> None:
        calls.append(event.id)
        await record_effect(session, event)
        if len(calls) <= 2:
            await collide(session)

    await relay_of(rt).publish_batch()
    # Redelivery would wait a minute: the event is handled within the read all the same.
    consumer = consumer_of(rt, colliding_twice, name="c1", consumer_claim_idle_ms=60_000)
    await consumer.ensure_group()

    assert await consumer.read_new(block_ms=50) == 1
    assert calls == [event.id] * 3
    assert await effect_counts(effects) == {event.id: 1}
    assert await pending_count(redis) == 0


# --- event types a group acts on -----------------------------------------------------------------------------


def test_a_group_concerns_itself_with_its_names_and_prefixes() -> None:
    types = ("reliefhub.needs.need.", "reliefhub.needs.site.created")
    assert concerns(types, "reliefhub.needs.need.created") and concerns(types, "reliefhub.needs.site.created")
    assert not concerns(types, "reliefhub.needs.site.updated")
    assert not concerns(types, "reliefhub.needs.needs")  # a prefix ends at its dot
    assert not concerns(("reliefhub.needs.site",), "reliefhub.needs.site.created")  # a name matches whole
    assert concerns(None, "anything")


async def retyped(redis: Redis, event_type: str) -> str:
    """Another event on the stream, a copy of its first entry with a new id and `event_type`; its id."""
    entries: Any = await redis.xrange(STREAM, count=1)
    envelope = {**json.loads(entries[0][1]["event"]), "id": str(uuid.uuid4()), "type": event_type}
    await redis.xadd(STREAM, {"type": event_type, "event": json.dumps(envelope)})
    return str(envelope["id"])


@pytest.mark.parametrize("batch", [False, True])
async def test_events_a_group_does_not_act_on_are_acked_without_a_transaction(
    rt: Runtime, effects: AsyncEngine, redis: Redis, batch: bool
) -> None:
    events = await publish_sites(rt, 3)
    await relay_of(rt).publish_batch()
    other = await retyped(redis, "reliefhub.needs.need.created")
    consumer = (batch_consumer_of if batch else consumer_of)(rt, record_effect, name="c1")
    consumer.types = (SITE_CREATED.name,)
    await consumer.ensure_group()

    assert await consumer.read_new(block_ms=50) == 4  # every entry done with
    ids = {e.id for e in events}
    assert await effect_counts(effects) == dict.fromkeys(ids, 1)
    assert await inbox_ids(effects) == ids  # the other type was never handled: no inbox row for it
    assert other not in await inbox_ids(effects)
    assert await pending_count(redis) == 0
    assert await consumer.read_new(block_ms=50) == 0
