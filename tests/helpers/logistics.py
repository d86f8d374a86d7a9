"""Moving shipments through the logistics service's API, and the bodies of their receipts."""

from __future__ import annotations

from typing import Any

import httpx


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
