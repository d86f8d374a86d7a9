"""A gift on its way: site → need → offer → automatic proposals → accepted → the shipment logistics planned.
Shared by the logistics tests and the cross-service flow test; everything goes through HTTP and the streams."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.conftest import TokenFactory, eventually


@dataclass
class Gift:
    coordinator: dict[str, str]
    carrier: dict[str, str]
    recipient: dict[str, str]
    donor: dict[str, str]
    site: dict[str, Any]
    need: dict[str, Any]
    offer: dict[str, Any]
    proposals: list[dict[str, Any]]
    shipment: dict[str, Any]

    @property
    def tracking_code(self) -> str:
        return str(self.offer["tracking_code"])


async def ship_a_gift(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    *,
    lines: tuple[tuple[str, int], ...] = (("food.grain.rice", 100), ("water.bottled.small_550ml", 240)),
    region_code: str = "310115",
    org: str = "org-shelter",
    donor_org: str = "org-grain",
) -> Gift:
    coordinator = auth("coordinator")
    recipient = auth("frontline", org=org)
    donor = auth("donor", org=donor_org)
    site = (
        await client.post(
            "/v1/sites",
            headers=recipient,
            json={
                "name": "浦东临时安置点",
                "kind": "shelter",
                "region_code": region_code,
                "lat": 31.22,
                "lon": 121.54,
                "contact_name": "张三",
                "contact_phone": "13800000000",
            },
        )
    ).json()
    need = await client.post(
        "/v1/needs",
        headers=recipient,
        json={
            "site_id": site["id"],
            "title": "安置点物资",
            "urgency": "high",
            "beneficiaries": 300,
            "lines": [{"item_code": code, "quantity": q} for code, q in lines],
        },
    )
    assert need.status_code == 201, need.text
    donor_row = (await client.post("/v1/donors", headers=donor, json={"name": "粮油公司", "kind": "company"})).json()
    offer = await client.post(
        "/v1/offers",
        headers=donor,
        json={
            "donor_id": donor_row["id"],
            "kind": "in_kind",
            "lots": [{"item_code": code, "quantity": q, "lat": 31.3, "lon": 121.5} for code, q in lines],
        },
    )
    assert offer.status_code == 201, offer.text
    need_id = need.json()["id"]

    async def proposed() -> list[dict[str, Any]] | None:
        r = await client.get(f"/v1/proposals?need_id={need_id}&status=proposed", headers=coordinator)
        items = list(r.json()["items"])
        return items if len(items) == len(lines) else None

    proposals = await eventually(proposed)
    for p in proposals:
        accepted = await client.post(f"/v1/proposals/{p['id']}/accept", headers=coordinator)
        assert accepted.status_code == 200, accepted.text

    async def planned() -> dict[str, Any] | None:
        r = await client.get(f"/v1/shipments?need_id={need_id}", headers=recipient)
        items = r.json()["items"]
        return items[0] if items and len(items[0]["lines"]) == len(lines) else None

    shipment = await eventually(planned)
    return Gift(
        coordinator=coordinator,
        carrier=auth("logistics", org="org-carrier"),
        recipient=recipient,
        donor=donor,
        site=site,
        need=need.json(),
        offer=offer.json(),
        proposals=proposals,
        shipment=shipment,
    )


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
