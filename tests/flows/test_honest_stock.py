"""Honest stock after receipt, across the services over HTTP and the streams: a receipt line's discrepancy
code decides whether the missing units go back to the lot (short, refused) or are written off it (damaged,
expired, lost). The need line re-opens either way; matching never proposes written-off units again, and the
ledger books their value as written off."""

from __future__ import annotations

from typing import Any

import httpx

from shared.catalog import get_catalog
from tests.helpers.auth import TokenFactory
from tests.helpers.logistics import advance
from tests.helpers.scenario import Gift, ship_a_gift
from tests.helpers.waiting import eventually

WATER = "water.bottled.small_550ml"


async def _lot(client: httpx.AsyncClient, gift: Gift, field: str, value: int) -> dict[str, Any] | None:
    [lot] = gift.offer["lots"]
    body = (await client.get(f"/v1/lots/{lot['id']}", headers=gift.coordinator)).json()
    return dict(body) if body[field] == value else None


async def _receive(client: httpx.AsyncClient, gift: Gift, line: dict[str, Any], *, expect: int = 200) -> dict[str, Any]:
    r = await client.post(
        f"/v1/shipments/{gift.shipment['id']}/receipt",
        headers=gift.recipient,
        json={"pin": gift.shipment["handover_pin"], "lines": [line]},
    )
    assert r.status_code == expect, r.text
    return dict(r.json())


async def _reopened(client: httpx.AsyncClient, gift: Gift, delivered: int) -> dict[str, Any]:
    async def settled() -> dict[str, Any] | None:
        body = (await client.get(f"/v1/needs/{gift.need['id']}", headers=gift.recipient)).json()
        return body if body["lines"][0]["quantity_delivered"] == delivered else None

    need = await eventually(settled)
    assert need["status"] == "open" and need["lines"][0]["quantity_matched"] == delivered
    return need


async def _proposed(client: httpx.AsyncClient, gift: Gift) -> list[dict[str, Any]] | None:
    r = await client.get(f"/v1/proposals?need_id={gift.need['id']}&status=proposed", headers=gift.coordinator)
    return list(r.json()["items"]) or None


async def test_damaged_units_are_written_off_and_never_proposed_again(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth, lines=((WATER, 1500),))
    await advance(client, gift.carrier, gift.shipment["id"], "picked_up", "delivered")
    before = await eventually(lambda: _lot(client, gift, "quantity_shipped", 1500))
    assert before["quantity_available"] == 0 and before["quantity_written_off"] == 0

    received = await _receive(
        client,
        gift,
        {
            "item_code": WATER,
            "quantity_received": 1480,
            "discrepancy": {"code": "damaged", "note": "20 污染 discarded"},
        },
    )
    assert received["status"] == "received_with_problem"
    [line] = received["lines"]
    assert (line["quantity_received"], line["quantity_returned"], line["quantity_written_off"]) == (1480, 20, 20)
    assert line["discrepancy_code"] == "damaged" and line["discrepancy_reason"] == "20 污染 discarded"
    assert received["history"][-1]["note"] == "damaged: 20 污染 discarded"

    # The lot: 20 written off, available unchanged (0); the need line re-opens for the 20.
    lot = await eventually(lambda: _lot(client, gift, "quantity_written_off", 20))
    assert lot["quantity_available"] == before["quantity_available"] == 0
    assert lot["quantity_delivered"] == 1480 and lot["quantity_reserved"] == 1480
    await _reopened(client, gift, 1480)

    # Matching sees the open 20 and proposes them from fresh supply only, never the written-off units.
    fresh = await client.post(
        "/v1/offers",
        headers=gift.donor,
        json={
            "donor_id": gift.offer["donor_id"],
            "kind": "in_kind",
            "lots": [{"item_code": WATER, "quantity": 5, "lat": 31.3, "lon": 121.5}],
        },
    )
    assert fresh.status_code == 201, fresh.text
    [proposal] = await eventually(lambda: _proposed(client, gift))
    assert proposal["lot_id"] == fresh.json()["lots"][0]["id"] and proposal["quantity"] == 5
    reservation = await client.post(
        f"/v1/lots/{lot['id']}/reservations",
        headers=gift.coordinator,
        json={"quantity": 1, "reference": "written-off-probe"},
    )
    assert reservation.status_code == 409, reservation.text  # nothing left to reserve

    # The ledger books the 20 at catalog value as written off.
    water = get_catalog().get(WATER)
    assert water is not None
    r = await client.get(f"/v1/ledger?kind=written_off&shipment_id={gift.shipment['id']}", headers=gift.coordinator)
    [entry] = r.json()["items"]
    assert entry["quantity"] == 20 and entry["amount"] == 20 * water.unit_value_fen and entry["item_code"] == WATER


async def test_short_units_return_to_stock_and_are_proposed_again(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth, lines=((WATER, 1500),))
    await advance(client, gift.carrier, gift.shipment["id"], "picked_up", "delivered")
    await eventually(lambda: _lot(client, gift, "quantity_shipped", 1500))

    received = await _receive(
        client, gift, {"item_code": WATER, "quantity_received": 1480, "discrepancy": {"code": "short"}}
    )
    [line] = received["lines"]
    assert (line["quantity_returned"], line["quantity_written_off"], line["discrepancy_code"]) == (20, 0, "short")

    lot = await eventually(lambda: _lot(client, gift, "quantity_available", 20))
    assert lot["quantity_written_off"] == 0 and lot["quantity_delivered"] == 1480
    await _reopened(client, gift, 1480)
    [proposal] = await eventually(lambda: _proposed(client, gift))
    assert proposal["lot_id"] == lot["id"] and proposal["quantity"] == 20
    r = await client.get(f"/v1/ledger?kind=written_off&shipment_id={gift.shipment['id']}", headers=gift.coordinator)
    assert r.json()["items"] == []


async def test_refused_units_return_and_a_bare_reason_counts_as_other(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth, lines=((WATER, 300),))
    await advance(client, gift.carrier, gift.shipment["id"], "picked_up", "delivered")
    sid = gift.shipment["id"]

    # Bad discrepancies are 422 problems and record nothing.
    for line, loc in (
        ({"item_code": WATER, "quantity_received": 290}, "discrepancy"),
        ({"item_code": WATER, "quantity_received": 290, "discrepancy": {"code": "stolen"}}, "code"),
        ({"item_code": WATER, "quantity_received": 290, "discrepancy": {"code": "other"}}, "note"),
        (
            {
                "item_code": WATER,
                "quantity_received": 290,
                "discrepancy": {"code": "short"},
                "discrepancy_reason": "both",
            },
            "lines",
        ),
    ):
        problem = await _receive(client, gift, line, expect=422)
        assert problem["type"].endswith("validation-error") or problem["status"] == 422
        assert any(loc in [str(p) for p in e["loc"]] for e in problem["errors"]), problem
    shipment = (await client.get(f"/v1/shipments/{sid}", headers=gift.recipient)).json()
    assert shipment["status"] == "delivered" and shipment["lines"][0]["quantity_received"] is None

    received = await _receive(
        client, gift, {"item_code": WATER, "quantity_received": 290, "discrepancy_reason": "10 瓶标签错误"}
    )
    [line] = received["lines"]
    assert line["discrepancy_code"] == "other" and line["discrepancy_reason"] == "10 瓶标签错误"
    assert line["quantity_written_off"] == 0
    lot = await eventually(lambda: _lot(client, gift, "quantity_available", 10))
    assert lot["quantity_written_off"] == 0


async def test_refused_units_go_back_to_the_lot(client: httpx.AsyncClient, auth: TokenFactory, workers: None) -> None:
    gift = await ship_a_gift(client, auth, lines=((WATER, 300),))
    await advance(client, gift.carrier, gift.shipment["id"], "picked_up", "delivered")
    received = await _receive(
        client,
        gift,
        {"item_code": WATER, "quantity_received": 0, "discrepancy": {"code": "refused", "note": "wrong goods"}},
    )
    assert received["status"] == "not_received"
    lot = await eventually(lambda: _lot(client, gift, "quantity_available", 300))
    assert lot["quantity_written_off"] == 0
