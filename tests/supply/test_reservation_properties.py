"""Properties: whatever mix of concurrent reservations and releases hits a lot, its reserved quantity is the sum of
its active reservations, never more than the lot, and a reservation is refused only when it could not fit; and
whatever principals reserve, release, accept, ship and return in whatever order, the lot's goods are never
promised twice."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.supply.service import MATCHING, names_a_proposal
from tests.helpers.auth import TokenFactory
from tests.helpers.commitments import OUT, Match, commitments, open_proposals, proposed_match, shipments_of
from tests.helpers.problems import assert_problem
from tests.helpers.supply import get_lot, reservable_lot, reserve
from tests.helpers.waiting import eventually

RESERVE = st.tuples(st.just("reserve"), st.integers(1, 10))
# Which earlier reservation to release, modulo how many there are; two in one round may hit the same one.
RELEASE = st.tuples(st.just("release"), st.integers(0, 1_000))
ROUNDS = st.lists(st.lists(st.one_of(RESERVE, RELEASE), min_size=1, max_size=8), min_size=1, max_size=5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(quantity=st.integers(1, 30), rounds=ROUNDS)
async def test_reserved_is_the_sum_of_active_reservations(
    client, auth: TokenFactory, quantity: int, rounds: list[list[tuple[str, int]]]
) -> None:
    coordinator = auth("coordinator", sub="matching-engine")
    lot = await reservable_lot(client, auth, quantity)  # a fresh lot per example: the tables are not reset
    active: dict[str, int] = {}
    made: list[str] = []

    for ops in rounds:
        reserved_before = sum(active.values())
        calls: list[Any] = []
        kinds: list[tuple[str, Any]] = []  # (operation, its quantity or reservation id)
        for op, arg in ops:
            if op == "reserve":
                calls.append(reserve(client, coordinator, lot["id"], arg))
                kinds.append((op, arg))
            elif made:
                reservation_id = made[arg % len(made)]
                calls.append(client.delete(f"/v1/reservations/{reservation_id}", headers=coordinator))
                kinds.append((op, reservation_id))
        responses = await asyncio.gather(*calls)

        granted = 0
        refused: list[int] = []
        for (op, arg), resp in zip(kinds, responses, strict=True):
            if op == "reserve":
                if resp.status_code == 201:
                    body = resp.json()
                    assert body["quantity"] == arg and body["status"] == "active"
                    active[body["id"]] = arg
                    made.append(body["id"])
                    granted += arg
                else:
                    assert_problem(resp, 409, "over-allocation")
                    refused.append(arg)
            else:
                assert resp.status_code == 204, resp.text
                active.pop(str(arg), None)

        now = await get_lot(client, coordinator, lot["id"])
        assert now["quantity_reserved"] == sum(active.values())
        assert 0 <= now["quantity_reserved"] <= quantity
        assert now["quantity_available"] == quantity - now["quantity_reserved"]
        # Releases only make room, so when a refusal was decided at most reserved_before + granted was held.
        for asked in refused:
            assert reserved_before + granted + asked > quantity, (reserved_before, granted, asked, quantity)

    releases = await asyncio.gather(*(client.delete(f"/v1/reservations/{rid}", headers=coordinator) for rid in made))
    assert all(r.status_code == 204 for r in releases)
    final = await get_lot(client, coordinator, lot["id"])
    assert final["quantity_reserved"] == 0 and final["quantity_available"] == quantity


# --- whoever asks, in whatever order: reserve, release, accept, ship and return -----------------------------

PRINCIPALS = (  # (role, org, sub): the hub's staff, another organisation's with the same sub, impostors
    ("coordinator", "org-hub", "alice"),
    ("coordinator", "org-x", "alice"),
    ("logistics", "org-x", "alice"),
    ("admin", "org-hub", "root"),
    ("admin", "org-x", "service:matching"),
)
COUNTIES = itertools.count(1000)
KINDS = ("hold", "release", "accept", "pickup", "cancel", "lost", "receive")
# (kind, who, a, b): who picks a principal (or, for a receipt, who records it), a a quantity, b which one.
STEP = st.tuples(st.sampled_from(KINDS), st.integers(0, len(PRINCIPALS) - 1), st.integers(0, 20), st.integers(0, 50))


@dataclass
class Hold:
    id: str
    reference: str
    quantity: int
    maker: tuple[str, str]
    for_proposal: bool


@dataclass
class Model:
    """What the test has made, to judge each answer and to know what supply must end up holding."""

    holds: list[Hold] = field(default_factory=list)
    released: set[str] = field(default_factory=set)
    accepted: dict[str, int] = field(default_factory=dict)  # proposal id → accepted quantity


def slug_of(resp: httpx.Response) -> str:
    return str(resp.json().get("type", "")).rsplit(":", 1)[-1]


async def lot_and_holds(engine: AsyncEngine, lot_id: str) -> tuple[int, int, int]:
    """(quantity, quantity_reserved, sum of active reservations) in one snapshot."""
    async with engine.connect() as conn:
        row = await conn.execute(
            text(
                "SELECT l.quantity, l.quantity_reserved, (SELECT coalesce(sum(r.quantity), 0) FROM supply.reservation r"
                " WHERE r.lot_id = l.id AND r.status = 'active') FROM supply.lot l WHERE l.id = :lot"
            ),
            {"lot": lot_id},
        )
        quantity, reserved, active = row.one()
        return int(quantity), int(reserved), int(active)


async def check_invariants(client: httpx.AsyncClient, engine: AsyncEngine, match: Match, step: Any) -> int:
    quantity, reserved, active = await lot_and_holds(engine, match.lot_id)
    assert reserved == active, (step, reserved, active)
    total, parts = await commitments(client, engine, match)
    assert total <= quantity, (step, total, quantity, parts)
    # Goods that left under a proposal are still held by its reservation (until supply gives back what returned).
    for ref, out in parts["out"].items():
        assert parts["active"].get(ref, 0) >= out, (step, ref, parts)
    return reserved


def expected_held(model: Model, shipments: list[dict[str, Any]], lot_id: str) -> int:
    """What supply must hold once every shipment event is handled: live hand holds, and what of each accepted
    proposal did not come back."""
    returned: dict[str, int] = {}
    for s in shipments:
        for line in s["lines"]:
            if line["lot_id"] == lot_id and line["quantity_returned"]:
                returned[line["proposal_id"]] = returned.get(line["proposal_id"], 0) + line["quantity_returned"]
    hands = sum(h.quantity for h in model.holds if not h.for_proposal and h.id not in model.released)
    return hands + sum(q - returned.get(p, 0) for p, q in model.accepted.items())


async def run_step(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine, match: Match, model: Model, step: Any
) -> None:
    kind, who, a, b = step
    shipments = await shipments_of(client, match)
    # A step that finds nothing to act on does what it waits for instead (moves a planned shipment on, accepts a
    # proposal), so that short sequences get somewhere too.
    if kind in ("receive", "lost") and not any(s["status"] in OUT for s in shipments):
        kind = "pickup"
    if kind in ("pickup", "cancel") and not any(s["status"] == "planned" for s in shipments):
        kind = "accept"
    role, org, sub = PRINCIPALS[who]
    headers = auth(role, org=org, sub=sub)
    carrier = auth("logistics", org="org-carrier")
    if kind == "hold":
        quantity = a % 6 + 1
        hands = [h for h in model.holds if not h.for_proposal]
        proposals = [*(await open_proposals(client, match)), *({"id": p} for p in model.accepted)]
        if b % 3 == 1 and hands:
            reference = hands[b // 3 % len(hands)].reference
        elif b % 3 == 2 and proposals:
            reference = str(proposals[b // 3 % len(proposals)]["id"])
        else:
            reference = f"hold-{uuid.uuid4()}"
        _, reserved_before, _ = await lot_and_holds(engine, match.lot_id)
        r = await reserve(client, headers, match.lot_id, quantity, reference)
        if role == "logistics":
            assert_problem(r, 403, "forbidden")
        elif names_a_proposal(reference):
            assert_problem(r, 403, "proposal-reference")
        elif hold := next((h for h in hands if h.reference == reference), None):
            if hold.maker != (org, sub):
                assert_problem(r, 409, "reference-taken")
            elif hold.quantity != quantity:
                assert_problem(r, 409, "reference-reused")
            else:
                assert r.status_code == 200 and r.json()["id"] == hold.id, r.text
        elif r.status_code == 201:
            model.holds.append(Hold(r.json()["id"], reference, quantity, (org, sub), for_proposal=False))
        else:
            assert_problem(r, 409, "over-allocation")  # supply's holds only shrink behind our back, never grow
            assert quantity > match.lot["quantity"] - reserved_before, (step, reserved_before)
    elif kind == "release":
        if not model.holds:
            return
        hold = model.holds[b % len(model.holds)]
        r = await client.delete(f"/v1/reservations/{hold.id}", headers=headers)
        if role == "logistics":
            assert_problem(r, 403, "forbidden")
        elif hold.for_proposal:
            assert_problem(r, 409, "reservation-for-proposal")
        else:
            assert r.status_code == 204, r.text
            model.released.add(hold.id)
    elif kind == "accept":
        proposals = await open_proposals(client, match)
        if not proposals:
            return
        proposal = proposals[b % len(proposals)]
        r = await client.post(f"/v1/proposals/{proposal['id']}/accept", headers=match.coordinator)
        if r.status_code == 200:
            body = r.json()
            model.accepted[body["id"]] = body["accepted_quantity"]
            model.holds.append(Hold(body["reservation_id"], body["id"], body["accepted_quantity"], MATCHING, True))

            async def planned() -> bool:
                return any(
                    line["proposal_id"] == body["id"] for s in await shipments_of(client, match) for line in s["lines"]
                )

            await eventually(planned)
        else:
            assert r.status_code == 409 and slug_of(r) in ("lot-taken", "proposal-not-open"), r.text
    else:
        wanted = {"pickup": {"planned"}, "cancel": {"planned"}, "lost": OUT, "receive": OUT}[kind]
        candidates = [s for s in shipments if s["status"] in wanted]
        s = candidates[b % len(candidates)]
        url = f"/v1/shipments/{s['id']}"
        if kind in ("pickup", "cancel", "lost"):
            target = {"pickup": "picked_up", "cancel": "cancelled", "lost": "not_received"}[kind]
            r = await client.post(f"{url}/status", headers=carrier, json={"status": target})
            assert r.status_code == 200, r.text
            return
        recipient = match.recipients[
            next(i for i, site in enumerate(match.sites) if site["id"] == s["destination_site_id"])
        ]
        pin = (await client.get(url, headers=recipient)).json()["handover_pin"]
        lines = []
        for line in s["lines"]:
            got = a % (line["quantity"] + 1)
            lines.append({"line_id": line["id"], "quantity_received": got, "discrepancy_reason": "短少"})
        # Who records it: the site, a coordinator with the PIN the site reads out, or a carrier not assigned to it.
        by = (recipient, match.coordinator, carrier)[who % 3]
        r = await client.post(f"{url}/receipt", headers=by, json={"pin": pin, "lines": lines})
        if by is carrier:
            assert_problem(r, 403, "not-the-recipient")
            assert (await client.get(url, headers=recipient)).json()["version"] == s["version"]
        else:
            assert r.status_code == 200, r.text


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    quantity=st.integers(2, 12),
    demands=st.lists(st.integers(1, 8), min_size=1, max_size=2),
    steps=st.lists(STEP, min_size=3, max_size=12),
)
async def test_goods_are_never_promised_twice_whoever_asks_in_whatever_order(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    engine: AsyncEngine,
    workers: None,
    quantity: int,
    demands: list[int],
    steps: list[Any],
) -> None:
    """Holds, releases, accepts, pick-ups and returns by various principals, one after another: at every moment
    the lot's reserved quantity is the sum of its active reservations, and its live commitments (each reference's
    active hold, or what left the lot under it if more) never exceed it; in the end it holds exactly what the
    steps left held, and every other unit can be reserved once, and no more."""
    # A county of its own, so that matching pairs this example's lot and needs only with each other.
    county = f"31{next(COUNTIES):04d}"
    match = await proposed_match(client, auth, quantity, demands, tag=uuid.uuid4().hex[:8], region_code=county)
    model = Model()
    for step in steps:
        await run_step(client, auth, engine, match, model, step)
        await check_invariants(client, engine, match, step)

    async def settled() -> bool:
        expected = expected_held(model, await shipments_of(client, match), match.lot_id)
        return (await lot_and_holds(engine, match.lot_id))[1] == expected

    await eventually(settled)
    reserved = await check_invariants(client, engine, match, "settled")
    left = quantity - reserved
    if left:
        assert (await reserve(client, match.coordinator, match.lot_id, left)).status_code == 201
    assert_problem(await reserve(client, match.coordinator, match.lot_id, 1), 409, "over-allocation")
    total, parts = await commitments(client, engine, match)
    assert total == quantity, parts
