"""A converted substitute ships in the lot's units: a need for 2 water barrels (18.9 L) served by 5 L bottles
is proposed as 2 barrels = 8 bottles, ships 8 bottles, and a receipt in bottles credits the need line in
barrels (never more than proposed); what came short goes back to the lot in bottles and re-opens the line
by what it was worth in barrels."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers.auth import TokenFactory
from tests.helpers.logistics import advance
from tests.helpers.matching import allocation_run
from tests.helpers.needs import shelter_need
from tests.helpers.streams import consume, project, publish
from tests.helpers.supply import donor_offer, get_lot

BARREL = "water.barrel.l18_9"
BOTTLE = "water.bottled.large_5l"
SERVICES = ("needs", "supply", "matching", "logistics")


async def _settle(gateway: Any) -> None:
    """Every service's events relayed and consumed until nothing new comes."""
    while True:
        moved = await publish(gateway, *SERVICES)
        for name in SERVICES:
            moved += await consume(gateway, name)
        if not moved:
            return


async def _shipped(client: httpx.AsyncClient, auth: TokenFactory, gateway: Any) -> tuple[dict[str, Any], ...]:
    """The need, the lot and the shipment of 2 barrels matched to bottles and accepted."""
    need = await shelter_need(client, auth, {"item_code": BARREL, "quantity": 2})
    offer = await donor_offer(client, auth, {"item_code": BOTTLE, "quantity": 6, "unit": "carton"})
    lot = offer["lots"][0]
    await project(gateway)
    (proposal,) = (await allocation_run(client, auth, item_codes=[BARREL]))["proposals"]
    assert (proposal["quantity"], proposal["lot_quantity"]) == (2, 8)
    coordinator = auth("coordinator")
    r = await client.post(f"/v1/proposals/{proposal['id']}/accept", headers=coordinator, json={})
    assert r.status_code == 200, r.text
    await _settle(gateway)
    # The receiving site lists it with the handover PIN.
    r = await client.get(f"/v1/shipments?need_id={need['id']}", headers=auth("frontline", org="org-shelter"))
    (shipment,) = r.json()["items"]
    # What physically moves: 8 bottles of the lot, not 2 of the line's barrels.
    ((line),) = shipment["lines"]
    assert (line["item_code"], line["quantity"], line["lot_id"]) == (BOTTLE, 8, lot["id"])
    assert line["line_quantity"] == 2  # what it credits the barrels line
    await advance(client, auth("logistics"), shipment["id"], "picked_up", "delivered")
    await _settle(gateway)
    in_transit = await _need(client, auth, need)
    assert in_transit["lines"][0]["quantity_in_transit"] == 2
    return need, lot, shipment


async def _need(client: httpx.AsyncClient, auth: TokenFactory, need: dict[str, Any]) -> dict[str, Any]:
    r = await client.get(f"/v1/needs/{need['id']}", headers=auth("coordinator"))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_full_receipt_of_the_bottles_delivers_the_barrels(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any
) -> None:
    need, lot, shipment = await _shipped(client, auth, gateway)
    r = await client.post(
        f"/v1/shipments/{shipment['id']}/receipt",
        headers=auth("frontline", org="org-shelter"),
        json={"pin": shipment["handover_pin"], "lines": [{"item_code": BOTTLE, "quantity_received": 8}]},
    )
    assert r.status_code == 200 and r.json()["status"] == "received", r.text
    await _settle(gateway)
    closed = await _need(client, auth, need)
    (line,) = closed["lines"]
    assert (line["quantity_delivered"], line["quantity_in_transit"], line["quantity_matched"]) == (2, 0, 2)
    assert closed["status"] == "fulfilled"
    bottles = await get_lot(client, auth("coordinator"), lot["id"])
    assert (bottles["quantity_delivered"], bottles["quantity_reserved"]) == (8, 8)


async def test_bottles_short_go_back_to_the_lot_and_reopen_what_they_were_worth(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any
) -> None:
    need, lot, shipment = await _shipped(client, auth, gateway)
    r = await client.post(
        f"/v1/shipments/{shipment['id']}/receipt",
        headers=auth("coordinator"),
        json={
            "pin": shipment["handover_pin"],
            "lines": [{"item_code": BOTTLE, "quantity_received": 6, "discrepancy": {"code": "short"}}],
        },
    )
    assert r.status_code == 200, r.text
    received = r.json()
    assert received["status"] == "received_with_problem"
    assert (received["lines"][0]["quantity_received"], received["lines"][0]["quantity_returned"]) == (6, 2)
    await _settle(gateway)
    # 6 bottles are 30 L: 1 whole barrel (18.9 L) credited, 1 barrel open again (never more than arrived).
    reopened = await _need(client, auth, need)
    (line,) = reopened["lines"]
    assert (line["quantity_delivered"], line["quantity_in_transit"], line["quantity_matched"]) == (1, 0, 1)
    assert reopened["status"] == "open"
    # The 2 bottles that did not come are the lot's again.
    bottles = await get_lot(client, auth("coordinator"), lot["id"])
    assert (bottles["quantity_delivered"], bottles["quantity_reserved"]) == (6, 6)
    assert bottles["quantity_available"] == 24 - 6
