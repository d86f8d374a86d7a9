"""Small HTTP helpers shared by the supply tests: make a donor, an offer, a reservable lot; check a problem."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import TokenFactory

RICE = "food.grain.rice"
WATER = "water.bottled.small_550ml"
CONCENTRATOR = "medical_device.oxygen.concentrator_5l"
IBUPROFEN = "medicine.antipyretic.ibuprofen"
PROBLEM_JSON = "application/problem+json"


def problem(resp: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 problem with this status (and type slug); return its body."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM_JSON), resp.headers["content-type"]
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert body["title"]
    if slug is not None:
        assert body["type"].rsplit(":", 1)[-1] == slug, body["type"]
    return body


async def create_donor(
    client: httpx.AsyncClient, headers: dict[str, str], *, name: str = "某粮油公司", **fields: Any
) -> dict[str, Any]:
    resp = await client.post("/v1/donors", headers=headers, json={"name": name, "kind": "company", **fields})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def create_offer(
    client: httpx.AsyncClient, headers: dict[str, str], donor_id: str, **fields: Any
) -> dict[str, Any]:
    payload: dict[str, Any] = {"donor_id": donor_id, "kind": "in_kind", **fields}
    if payload["kind"] == "in_kind" and "lots" not in payload:
        payload["lots"] = [{"item_code": RICE, "quantity": 100, "region_code": "310104"}]
    resp = await client.post("/v1/offers", headers=headers, json=payload)
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


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
    return await client.post(
        f"/v1/lots/{lot_id}/reservations",
        headers=headers,
        json={"quantity": quantity, "reference": reference or f"ref-{uuid.uuid4()}", **fields},
    )


async def get_lot(client: httpx.AsyncClient, headers: dict[str, str], lot_id: str) -> dict[str, Any]:
    resp = await client.get(f"/v1/lots/{lot_id}", headers=headers)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body
