"""A converted substitute over HTTP: a need for 18.9 L water barrels served by 5 L bottles is proposed in both
units, and accepting it reserves the bottles the barrels are worth (never fewer litres than asked)."""

from __future__ import annotations

from tests.helpers.auth import TokenFactory
from tests.helpers.matching import allocation_run
from tests.helpers.needs import shelter_need
from tests.helpers.streams import project
from tests.helpers.supply import donor_offer, get_lot

BARREL = "water.barrel.l18_9"
BOTTLE = "water.bottled.large_5l"


async def test_barrels_served_by_bottles_are_proposed_and_reserved_in_the_bottles_unit(
    client, auth: TokenFactory, gateway
) -> None:
    await shelter_need(client, auth, {"item_code": BARREL, "quantity": 2})
    # 6 cartons of 4 bottles, converted on intake to 24 bottles.
    offer = await donor_offer(client, auth, {"item_code": BOTTLE, "quantity": 6, "unit": "carton"})
    lot = offer["lots"][0]
    assert (lot["quantity"], lot["unit"]) == (24, "bottle")
    await project(gateway)
    (proposal,) = (await allocation_run(client, auth, item_codes=[BARREL]))["proposals"]
    # 2 barrels are 37.8 L: 8 bottles (40 L) go, never 7 (35 L).
    assert (proposal["item_code"], proposal["lot_item_code"]) == (BARREL, BOTTLE)
    assert (proposal["quantity"], proposal["lot_quantity"]) == (2, 8)

    coordinator = auth("coordinator")
    r = await client.post(f"/v1/proposals/{proposal['id']}/accept", headers=coordinator, json={})
    assert r.status_code == 200, r.text
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == 8
