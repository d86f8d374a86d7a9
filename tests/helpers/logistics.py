"""Moving shipments through the logistics service's API, and the bodies of receipts and procurements."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE
from tests.helpers.funds import record_payment
from tests.helpers.supply import create_donor, create_pledge
from tests.helpers.waiting import eventually


async def advance(
    client: httpx.AsyncClient, headers: dict[str, str], shipment_id: str, *statuses: str
) -> dict[str, Any]:
    """Move a shipment through `statuses` by `POST …/status`, each step answered 200; the last answer."""
    body: dict[str, Any] = {}
    for target in statuses:
        r = await client.post(f"/v1/shipments/{shipment_id}/status", headers=headers, json={"status": target})
        assert r.status_code == 200, f"→ {target}: {r.text}"
        body = r.json()
    return body


def full_receipt(shipment: dict[str, Any], pin: str) -> dict[str, Any]:
    """A receipt body that confirms every line of `shipment` arrived whole."""
    return {
        "pin": pin,
        "lines": [{"line_id": line["id"], "quantity_received": line["quantity"]} for line in shipment["lines"]],
    }


def procurement_body(offer_id: str, *, quantity: int = 10, unit_price: int = 5_000, **fields: Any) -> dict[str, Any]:
    """A purchase of `quantity` rice from a Pudong wholesaler for Shanghai, paid in full by the pledge `offer_id`;
    `fields` replace or add fields."""
    total = quantity * unit_price
    return {
        "supplier": {"name": "浦东粮油批发市场", "region_code": "310115", "lat": 31.2, "lon": 121.6},
        "lines": [{"item_code": RICE, "quantity": quantity, "unit_price": unit_price}],
        "funding": [{"offer_id": offer_id, "amount": total}],
        "region_code": "3101",
        **fields,
    }


async def known_pledge(
    client: httpx.AsyncClient, auth: TokenFactory, amount: int = 100_000, *, paid: int | None = None, **over: Any
) -> dict[str, Any]:
    """A cash pledge of `amount` fen by a fresh foundation (`over` adds fields such as `restrictions`) that
    logistics has heard of (its `pledged` ledger entry is in), and `paid` fen of it received (all of it unless
    told; 0 for none) and booked, since a pledge outside any fund spends only money received; the offer."""
    headers = auth("donor", org="org-fund")
    donor = await create_donor(client, headers, name="爱心基金会", kind="foundation")
    offer = await create_pledge(client, headers, donor["id"], amount, **over)
    coordinator = auth("coordinator")

    async def booked() -> list[dict[str, Any]]:
        r = await client.get(f"/v1/ledger?kind=pledged&offer_id={offer['id']}", headers=coordinator)
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    entries = await eventually(booked)
    assert [(e["amount"], e["currency"]) for e in entries] == [(amount, "CNY")]
    paid = amount if paid is None else paid
    if paid:
        await record_payment(client, auth, offer["id"], paid)
    return offer


async def draft(client: httpx.AsyncClient, auth: TokenFactory, body: dict[str, Any]) -> httpx.Response:
    """`POST /v1/procurements` by a coordinator, retried while logistics has not yet heard of the destination."""

    async def answered() -> httpx.Response | None:
        r = await client.post("/v1/procurements", headers=auth("coordinator"), json=body)
        if r.status_code == 409 and str(r.json()["type"]).endswith("destination-unavailable"):
            assert r.headers["retry-after"] == "1"
            return None
        return r

    response: httpx.Response = await eventually(answered)
    return response
