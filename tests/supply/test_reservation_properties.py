"""Property: whatever mix of concurrent reservations and releases hits a lot, its reserved quantity is the sum of
its active reservations, never more than the lot, and a reservation is refused only when it could not fit."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import TokenFactory
from tests.supply.helpers import get_lot, problem, reservable_lot, reserve

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
        calls, kinds = [], []
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
                    problem(resp, 409, "over-allocation")
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
