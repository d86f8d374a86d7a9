"""Builders of the supply service's bodies, and donors, offers, pledges, lots and reservations made through the
API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import NEAR_SHANGHAI, RICE


def donor_body(**over: Any) -> dict[str, Any]:
    """A grain company; `over` replaces or adds fields."""
    return {"name": "某粮油公司", "kind": "company", **over}


async def create_donor(client: httpx.AsyncClient, headers: dict[str, str], **over: Any) -> dict[str, Any]:
    """`POST /v1/donors` of `donor_body(**over)`, answered 201; the donor."""
    resp = await client.post("/v1/donors", headers=headers, json=donor_body(**over))
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def offer_body(donor_id: str, **over: Any) -> dict[str, Any]:
    """An in-kind offer of the donor (one lot of 100 rice in Xuhui unless `lots` is given); with `kind="cash"`,
    what `over` says (see `pledge_body` for a whole one)."""
    payload: dict[str, Any] = {"donor_id": donor_id, "kind": "in_kind", **over}
    if payload["kind"] == "in_kind" and "lots" not in payload:
        payload["lots"] = [{"item_code": RICE, "quantity": 100, "region_code": "310104"}]
    return payload


async def create_offer(
    client: httpx.AsyncClient, headers: dict[str, str], donor_id: str, **over: Any
) -> dict[str, Any]:
    """`POST /v1/offers` of `offer_body(donor_id, **over)`, answered 201; the offer."""
    resp = await client.post("/v1/offers", headers=headers, json=offer_body(donor_id, **over))
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def pledge_body(donor_id: str, amount: int, **over: Any) -> dict[str, Any]:
    """A cash offer of the donor: `amount` fen in CNY; `over` replaces or adds fields."""
    return {"donor_id": donor_id, "kind": "cash", "amount": amount, "currency": "CNY", **over}


async def create_pledge(
    client: httpx.AsyncClient, headers: dict[str, str], donor_id: str, amount: int, **over: Any
) -> dict[str, Any]:
    """`POST /v1/offers` of `pledge_body(donor_id, amount, **over)`, answered 201; the offer."""
    resp = await client.post("/v1/offers", headers=headers, json=pledge_body(donor_id, amount, **over))
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def fund_pledge(client: httpx.AsyncClient, auth: TokenFactory, amount: int = 100_000) -> dict[str, Any]:
    """A cash pledge of `amount` fen by a fresh foundation (of org-fund), created in supply; the offer."""
    headers = auth("donor", org="org-fund")
    donor = await create_donor(client, headers, name="爱心基金会", kind="foundation")
    offer = await create_pledge(client, headers, donor["id"], amount)
    assert offer["kind"] == "cash" and offer["amount"] == amount
    return offer


async def donor_offer(
    client: httpx.AsyncClient, auth: TokenFactory, *lots: dict[str, Any], org: str = "org-grain", **fields: Any
) -> dict[str, Any]:
    """An in-kind offer of a fresh donor; each lot defaults to 60 rice near Pudong."""
    headers = auth("donor", org=org)
    donor = await create_donor(client, headers)
    filled = [{"item_code": RICE, "quantity": 60, **NEAR_SHANGHAI, **lot} for lot in (lots or ({},))]
    return await create_offer(client, headers, donor["id"], lots=filled, **fields)


async def reservable_lot(client: httpx.AsyncClient, auth: TokenFactory, quantity: int, **lot: Any) -> dict[str, Any]:
    """A rice lot (no verification needed) of a fresh donor, open for reservations."""
    donor_headers = auth("donor", org="org-grain")
    donor = await create_donor(client, donor_headers)
    offer = await create_offer(
        client, donor_headers, donor["id"], lots=[{"item_code": RICE, "quantity": quantity, **lot}]
    )
    found: dict[str, Any] = offer["lots"][0]
    assert found["quantity_available"] == quantity
    return found


async def reserve(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    lot_id: str,
    quantity: int,
    reference: str | None = None,
    **fields: Any,
) -> httpx.Response:
    """`POST /v1/lots/{lot_id}/reservations` (a fresh reference unless given); the answer, unchecked."""
    return await client.post(
        f"/v1/lots/{lot_id}/reservations",
        headers=headers,
        json={"quantity": quantity, "reference": reference or f"ref-{uuid.uuid4()}", **fields},
    )


async def get_lot(client: httpx.AsyncClient, headers: dict[str, str], lot_id: str) -> dict[str, Any]:
    """`GET /v1/lots/{lot_id}`, answered 200; the lot."""
    resp = await client.get(f"/v1/lots/{lot_id}", headers=headers)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body
