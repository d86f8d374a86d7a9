"""The same goods are never promised twice: nobody but matching reserves under a proposal's id, nobody releases
a proposal's reservation by hand (whatever `sub` their token carries), and an accept adopts only matching's own
active hold. Through the API and the event flow."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers.auth import TokenFactory
from tests.helpers.commitments import Match, commitments, proposed_match, shipments_of
from tests.helpers.logistics import advance
from tests.helpers.problems import assert_problem
from tests.helpers.supply import get_lot, reserve
from tests.helpers.waiting import eventually


async def planned_shipment(client: httpx.AsyncClient, match: Match, proposal_id: str) -> dict[str, Any]:
    async def planned() -> dict[str, Any] | None:
        for s in await shipments_of(client, match):
            if s["status"] == "planned" and any(line["proposal_id"] == proposal_id for line in s["lines"]):
                return s
        return None

    found: dict[str, Any] = await eventually(planned)
    return found


async def test_a_proposals_goods_are_promised_once_whoever_asks(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine, workers: None
) -> None:
    match = await proposed_match(client, auth, 10, [10])
    (proposal,) = match.proposals
    lot_id, coordinator = match.lot_id, match.coordinator
    # Tokens carrying matching's sub in other organisations, and the hub's own staff.
    carrier = auth("logistics", org="org-l", sub="service:matching")
    impostor = auth("admin", org="org-x", sub="service:matching")

    # A logistics token may not reserve at all; nobody but matching under a proposal's id.
    assert_problem(await reserve(client, carrier, lot_id, 10, proposal["id"]), 403, "forbidden")
    for headers in (coordinator, impostor):
        assert_problem(await reserve(client, headers, lot_id, 10, proposal["id"]), 403, "proposal-reference")
    assert (await get_lot(client, match.coordinator, match.lot_id))["quantity_reserved"] == 0

    accepted = await client.post(f"/v1/proposals/{proposal['id']}/accept", headers=coordinator)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    reservation_url = f"/v1/reservations/{accepted.json()['reservation_id']}"

    # Nobody releases it by hand: not another organisation's token with matching's sub, not the hub's staff.
    assert_problem(await client.delete(reservation_url, headers=carrier), 403, "forbidden")
    for headers in (coordinator, impostor, auth("admin", org="org-hub")):
        assert_problem(await client.delete(reservation_url, headers=headers), 409, "reservation-for-proposal")
    lot = await get_lot(client, match.coordinator, match.lot_id)
    assert (lot["quantity_reserved"], lot["quantity_available"]) == (10, 0)

    shipment = await planned_shipment(client, match, proposal["id"])
    await advance(client, auth("logistics", org="org-carrier"), shipment["id"], "picked_up", "in_transit")

    async def shipped() -> dict[str, Any] | None:
        body = await get_lot(client, match.coordinator, match.lot_id)
        return body if body["quantity_shipped"] == 10 else None

    lot = await eventually(shipped)
    assert (lot["quantity_reserved"], lot["quantity_available"]) == (10, 0)
    # Nothing more can be promised from the lot while its goods are on the road.
    assert_problem(await reserve(client, coordinator, lot_id, 10, "second-promise"), 409, "over-allocation")
    assert_problem(await reserve(client, coordinator, lot_id, 1, "one-more"), 409, "over-allocation")
    assert (await commitments(client, engine, match))[0] == 10

    # What did not arrive comes back, and only that becomes available again.
    recipient = match.recipients[0]
    pin = (await client.get(f"/v1/shipments/{shipment['id']}", headers=recipient)).json()["handover_pin"]
    (line,) = shipment["lines"]
    receipt = {"pin": pin, "lines": [{"line_id": line["id"], "quantity_received": 7, "discrepancy_reason": "湿了"}]}
    received = await client.post(f"/v1/shipments/{shipment['id']}/receipt", headers=recipient, json=receipt)
    assert received.status_code == 200, received.text

    async def returned() -> dict[str, Any] | None:
        body = await get_lot(client, match.coordinator, match.lot_id)
        return body if body["quantity_reserved"] == 7 else None

    lot = await eventually(returned)
    assert (lot["quantity_available"], lot["quantity_shipped"], lot["quantity_delivered"]) == (3, 7, 7)
    assert_problem(await reserve(client, coordinator, lot_id, 4, "too-much"), 409, "over-allocation")
    assert (await reserve(client, coordinator, lot_id, 3, "the-rest")).status_code == 201
    total, parts = await commitments(client, engine, match)
    assert total == 10, parts


@pytest.mark.parametrize(
    "maker,status",
    [
        (("org-l", "service:matching"), "active"),  # another organisation's token with matching's sub
        ((None, "carrier-7"), "active"),  # a row from before makers' organisations were recorded
        (("reliefhub", "service:matching"), "released"),  # matching's own hold, no longer holding anything
    ],
    ids=["same-sub-other-org", "unknown-maker", "released-own-hold"],
)
async def test_accept_never_adopts_a_reservation_that_is_not_its_active_hold(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    engine: AsyncEngine,
    workers: None,
    maker: tuple[str | None, str],
    status: str,
) -> None:
    match = await proposed_match(client, auth, 10, [10])
    (proposal,) = match.proposals
    # Such rows can no longer be made through the API; they are what an older version may have left.
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO supply.reservation (id, lot_id, quantity, reference, status, created_by, created_by_org,"
                " created_at, released_at) VALUES (:id, :lot, 10, :ref, :status, :sub, :org, :now, :released)"
            ),
            {
                "id": uuid.uuid4(),
                "lot": match.lot_id,
                "ref": proposal["id"],
                "status": status,
                "sub": maker[1],
                "org": maker[0],
                "now": datetime.now(UTC),
                "released": datetime.now(UTC) if status != "active" else None,
            },
        )
        if status == "active":
            await conn.execute(
                text("UPDATE supply.lot SET quantity_reserved = quantity_reserved + 10 WHERE id = :lot"),
                {"lot": match.lot_id},
            )

    r = await client.post(f"/v1/proposals/{proposal['id']}/accept", headers=match.coordinator)
    assert_problem(r, 409, "lot-taken")
    after = (await client.get(f"/v1/proposals/{proposal['id']}", headers=match.coordinator)).json()
    assert after["status"] == "cancelled" and after["reservation_id"] is None, after
    assert [d["action"] for d in after["decisions"]] == ["cancel"]
    assert await shipments_of(client, match) == []
