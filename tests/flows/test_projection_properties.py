"""Property: every consumer's projection reaches the same state whatever order, and however often, its events
arrive. One recorded history (tests/helpers/history.py) is fed to each consumer's own subscription
handlers, one transaction per event as the consumer runs them, in a shuffled order with some events repeated
(an event that refers to something not seen yet fails and comes back later, as a redelivery would), and the
projection is compared with the one the same events make in the order they happened — which is also what the
live consumers made while the scenario ran."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter, deque
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from reliefhub.gateway import Gateway
from services.logistics.events import NotProjectedYet
from services.matching.events import LotNotProjectedYet
from shared.events import CloudEvent
from shared.settings import Settings
from tests.helpers.auth import TokenFactory
from tests.helpers.db import restore, truncate, truncate_services
from tests.helpers.history import SUPPLY_TABLES, History, record_history

ROOT = Path(__file__).resolve().parents[2]
RETRYABLE = (LotNotProjectedYet, NotProjectedYet)
# Each example replays the whole history against PostgreSQL: no shrinking (a failing order is reported as drawn).
PROPERTY = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)

# What each consumer projects, as rows to compare (timestamps of when a row was written left out).
STATE: dict[str, dict[str, str]] = {
    "needs": {
        "lines": "SELECT n.id, n.status, l.id, l.quantity_matched, l.quantity_in_transit, l.quantity_delivered "
        "FROM needs.need n JOIN needs.need_line l ON l.need_id = n.id ORDER BY n.id, l.id",
        "line_match": "SELECT * FROM needs.line_match ORDER BY 1",
        "line_shipment": "SELECT * FROM needs.line_shipment ORDER BY 1",
    },
    "supply": {
        "lots": "SELECT id, quantity_reserved, quantity_shipped, quantity_delivered FROM supply.lot ORDER BY id",
        "reservations": "SELECT id, quantity, status FROM supply.reservation ORDER BY id",
        "lot_shipment": "SELECT * FROM supply.lot_shipment ORDER BY 1",
    },
    "matching": {
        "need_line_view": "SELECT line_id, need_id, need_version, site_id, org, site_kind, region_code, lat, lon, "
        "item_code, quantity, quantity_delivered, urgency, needed_by, need_status, verification, beneficiary_groups "
        "FROM matching.need_line_view ORDER BY 1",
        "lot_view": "SELECT lot_id, offer_id, lot_version, offer_version, org, item_code, quantity, "
        "quantity_reserved, lat, lon, region_code, available_from, expires_at, verification, offer_status, "
        "restrictions FROM matching.lot_view ORDER BY 1",
        "proposals": "SELECT id, status, reservation_projected, quantity_returned FROM matching.proposal ORDER BY 1",
        "shipment_return": "SELECT * FROM matching.shipment_return ORDER BY 1",
    },
    "logistics": {
        "site_view": "SELECT * FROM logistics.site_view ORDER BY 1",
        "need_view": "SELECT * FROM logistics.need_view ORDER BY 1",
        "offer_view": "SELECT * FROM logistics.offer_view ORDER BY 1",
        "track_entry": "SELECT * FROM logistics.track_entry ORDER BY 1",
        "accepted_proposal": "SELECT * FROM logistics.accepted_proposal ORDER BY 1",
        "ledger": "SELECT ref, kind, amount, currency, offer_id, procurement_id, shipment_id, region_code, item_code, "
        "quantity, memo FROM logistics.ledger_entry ORDER BY ref",
        # Which lines share a planned shipment, not the shipment's own (random) id, PIN or position of a line.
        "shipments": "SELECT s.origin_key, s.origin_org, s.destination_site_id, s.destination_org, s.region_code, "
        "s.status, s.auto, s.version, array_agg(l.proposal_id || ':' || l.quantity ORDER BY l.proposal_id) "
        "FROM logistics.shipment s JOIN logistics.shipment_line l ON l.shipment_id = s.id "
        "GROUP BY s.id ORDER BY 3, 1",
    },
}
LOGISTICS_TABLES = [
    "logistics.site_view",
    "logistics.need_view",
    "logistics.offer_view",
    "logistics.track_entry",
    "logistics.accepted_proposal",
    "logistics.shipment",
    "logistics.ledger_entry",
    "logistics.outbox_event",
]


@pytest.fixture(scope="module")
async def history(gateway: Gateway, engine: AsyncEngine, redis: Any, auth: TokenFactory, migrated: Settings) -> History:
    await truncate_services(migrated.database_url)
    await redis.flushdb()
    return await record_history(gateway, engine, redis, auth)


async def state(engine: AsyncEngine, consumer: str) -> dict[str, list[tuple[Any, ...]]]:
    async with engine.connect() as conn:
        return {
            name: [tuple(r) for r in (await conn.execute(text(sql))).all()] for name, sql in STATE[consumer].items()
        }


async def reset(engine: AsyncEngine, history: History, consumer: str) -> None:
    """The consumer's tables as they were before any of its events was handled."""
    if consumer == "needs":
        tables = ["needs.site", "needs.need", "needs.need_line"]
        await truncate(engine, [*tables, "needs.line_match", "needs.line_shipment", "needs.outbox_event"])
        await restore(engine, history.tables, tables)
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE needs.need_line SET quantity_matched = 0, quantity_in_transit = 0, quantity_delivered = 0")
            )
            await conn.execute(
                text("UPDATE needs.need SET status = 'open' WHERE status IN ('matched', 'in_transit', 'fulfilled')")
            )
    elif consumer == "supply":
        await truncate(engine, [*SUPPLY_TABLES, "supply.lot_shipment", "supply.outbox_event"])
        await restore(engine, history.before_moves, SUPPLY_TABLES)
    elif consumer == "matching":
        await truncate(
            engine,
            [
                "matching.allocation_run",
                "matching.proposal",
                "matching.need_line_view",
                "matching.lot_view",
                "matching.shipment_return",
                "matching.dirty_scope",
            ],
        )
        await restore(engine, history.tables, ["matching.allocation_run", "matching.proposal"])
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE matching.proposal SET reservation_projected = false, quantity_returned = 0")
            )
    else:
        await truncate(engine, LOGISTICS_TABLES)


def consumed(gateway: Gateway, history: History, consumer: str) -> list[tuple[Any, CloudEvent]]:
    """(handler, event) for every event of the streams the consumer subscribes to, in the order they happened."""
    handlers: dict[str, list[Any]] = {}
    for s in gateway.apps[consumer].state.runtime.spec.subscriptions:  # a stream may have several subscriptions
        handlers.setdefault(s.stream, []).append(s.handler)
    # A run's completion is a third of matching's events and none of these consumers reads it.
    fed = [
        (handler, e)
        for stream, e in history.of(*handlers)
        if e.type != "reliefhub.matching.run.completed"
        for handler in handlers[stream]
    ]
    return sorted(fed, key=lambda pair: _time(pair[1]))


def _time(event: CloudEvent) -> datetime:
    return event.time


async def feed(gateway: Gateway, consumer: str, fed: list[tuple[Any, CloudEvent]], order: list[int]) -> None:
    rt = gateway.apps[consumer].state.runtime
    queue, failures = deque(order), Counter[int]()
    while queue:
        i = queue.popleft()
        handler, event = fed[i]
        try:
            async with rt.sessionmaker() as session, session.begin():
                await handler(session, event)
        except RETRYABLE:
            failures[i] += 1
            assert failures[i] <= len(fed), f"{event.type} never became applicable"
            queue.append(i)  # redelivered later


@st.composite
def arrivals(draw: st.DrawFn, n: int) -> list[int]:
    """Every event once in a shuffled order, and some of them again at random places."""
    order = list(draw(st.permutations(range(n))))
    for event, place in draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n)), max_size=n // 3)):
        order.insert(place, event)
    return order


_in_order: dict[str, dict[str, list[tuple[Any, ...]]]] = {}


async def in_order(gateway: Gateway, engine: AsyncEngine, history: History, consumer: str) -> dict[str, Any]:
    if consumer not in _in_order:
        fed = consumed(gateway, history, consumer)
        await reset(engine, history, consumer)
        await feed(gateway, consumer, fed, list(range(len(fed))))
        _in_order[consumer] = await state(engine, consumer)
    return _in_order[consumer]


async def check(gateway: Gateway, engine: AsyncEngine, history: History, consumer: str, order: list[int]) -> None:
    expected = await in_order(gateway, engine, history, consumer)
    await reset(engine, history, consumer)
    await feed(gateway, consumer, consumed(gateway, history, consumer), order)
    got = await state(engine, consumer)
    for name in expected:
        assert got[name] == expected[name], name


async def live(engine: AsyncEngine, history: History, consumer: str) -> dict[str, Any]:
    """The projection the real consumers made during the scenario."""
    tables = [t for t in history.tables if t.startswith(f"{consumer}.") and not t.endswith(("inbox_event", "_event"))]
    await truncate(engine, tables)
    await restore(engine, history.tables, tables)
    return await state(engine, consumer)


@PROPERTY
@given(data=st.data())
async def test_needs_roll_up_is_the_same_in_any_order(
    gateway: Gateway, engine: AsyncEngine, history: History, data: st.DataObject
) -> None:
    n = len(consumed(gateway, history, "needs"))
    await check(gateway, engine, history, "needs", data.draw(arrivals(n)))


@PROPERTY
@given(data=st.data())
async def test_supply_lot_roll_up_is_the_same_in_any_order(
    gateway: Gateway, engine: AsyncEngine, history: History, data: st.DataObject
) -> None:
    n = len(consumed(gateway, history, "supply"))
    await check(gateway, engine, history, "supply", data.draw(arrivals(n)))


@PROPERTY
@given(data=st.data())
async def test_matching_projection_and_returns_are_the_same_in_any_order(
    gateway: Gateway, engine: AsyncEngine, history: History, data: st.DataObject
) -> None:
    n = len(consumed(gateway, history, "matching"))
    await check(gateway, engine, history, "matching", data.draw(arrivals(n)))


@PROPERTY
@given(data=st.data())
async def test_logistics_projections_are_the_same_in_any_order(
    gateway: Gateway, engine: AsyncEngine, history: History, data: st.DataObject
) -> None:
    n = len(consumed(gateway, history, "logistics"))
    await check(gateway, engine, history, "logistics", data.draw(arrivals(n)))


async def test_in_order_replay_equals_the_live_projections_and_the_scenario(
    gateway: Gateway, engine: AsyncEngine, history: History
) -> None:
    for consumer in ("needs", "supply", "matching"):
        assert await in_order(gateway, engine, history, consumer) == await live(engine, history, consumer), consumer
    lines = {(str(r[0]), str(r[2])): r for r in (await in_order(gateway, engine, history, "needs"))["lines"]}
    by_gift: dict[str, dict[str, tuple[str, int, int, int]]] = {}
    for name, gift in history.gifts.items():
        need = gift.need
        by_gift[name] = {
            line["item_code"]: (lambda r: (r[1], r[3], r[4], r[5]))(lines[need["id"], line["id"]])
            for line in need["lines"]
        }
    rice, water = "food.grain.rice", "water.bottled.small_550ml"
    # (status, matched, in transit, delivered)
    assert by_gift["received"] == {rice: ("fulfilled", 100, 0, 100), water: ("fulfilled", 240, 0, 240)}
    assert by_gift["short"] == {rice: ("open", 63, 0, 63), water: ("open", 120, 0, 120)}
    assert by_gift["cancelled"] == {rice: ("open", 0, 0, 0)}
    assert by_gift["not_received"] == {water: ("open", 0, 0, 0), rice: ("open", 0, 0, 0)}
    assert by_gift["moving"] == {rice: ("in_transit", 40, 40, 0), water: ("in_transit", 90, 90, 0)}


async def test_the_migrations_backfill_the_rows_from_the_events_each_consumer_handled(
    engine: AsyncEngine, history: History
) -> None:
    """An existing deployment upgraded: the new tables filled from the publishers' outboxes and the consumers'
    inboxes hold what the live consumers kept."""
    kept = {
        "needs": ["needs.line_match", "needs.line_shipment"],
        "supply": ["supply.lot_shipment"],
        "matching": ["matching.shipment_return"],
    }
    revisions = {"needs": "835572f1775e", "supply": "fb503c0342b9", "matching": "14bfcee4597f"}
    logs = ["matching.outbox_event", "logistics.outbox_event", *(f"{s}.inbox_event" for s in kept)]
    await truncate(engine, [*logs, *(t for ts in kept.values() for t in ts)])
    await restore(engine, history.tables, logs)
    for service, revision in revisions.items():
        (path,) = (ROOT / "services" / service / "migrations" / "versions").glob(f"{revision}_*.py")
        spec = importlib.util.spec_from_file_location(f"migration_{revision}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        async with engine.begin() as conn:
            for _table, sql in module.BACKFILL:
                await conn.execute(text(sql))
    async with engine.connect() as conn:
        for table in (t for ts in kept.values() for t in ts):
            got = (await conn.execute(text(f"SELECT COALESCE(json_agg(t), '[]')::text FROM {table} t"))).scalar_one()
            assert by_key(got) == by_key(history.tables[table]), table
            assert by_key(got), table


def by_key(saved: str) -> dict[str, dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(saved)
    return {str(next(iter(r.values()))): r for r in rows}


async def test_events_carry_each_shipment_line_state_and_the_proposal_version(history: History) -> None:
    shipments = [e for _, e in history.of("logistics.events") if e.type.startswith("reliefhub.logistics.shipment.")]
    short = history.gifts["short"].shipment["id"]
    seen: dict[str, list[tuple[int, str, list[tuple[int, int, int | None]]]]] = {}
    for event in shipments:
        lines = [
            (ln["quantity_in_transit"], ln["quantity_delivered"], ln["quantity_returned"]) for ln in event.data["lines"]
        ]
        seen.setdefault(event.data["id"], []).append((event.data["version"], event.data["status"], lines))
    for steps in seen.values():
        versions = [v for v, _, _ in steps]
        assert versions == sorted(set(versions)), "one event per version, in order"
    # The short shipment of 70 rice (63 arrived) and 120 water: planned, picked up, delivered, received.
    by_status = {status: sorted(lines) for _, status, lines in seen[short]}
    assert by_status["picked_up"] == by_status["delivered"] == [(70, 0, None), (120, 0, None)]
    assert by_status["received_with_problem"] == [(0, 63, 7), (0, 120, 0)]
    assert by_status["planned"] == [(0, 0, None)] * 2  # its second line joined it by a second planned event

    accepted = [e for _, e in history.of("matching.events") if e.type == "reliefhub.matching.proposal.accepted"]
    assert accepted and all(isinstance(e.data["version"], int) and e.data["version"] >= 2 for e in accepted)
