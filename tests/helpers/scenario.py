"""A gift on its way: site → need → offer → automatic proposals → accepted → the shipment logistics planned.
Used by the logistics tests and the cross-service flow tests; everything goes through HTTP and the streams (the
`workers` fixture must be running)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE, WATER
from tests.helpers.needs import create_need, create_site
from tests.helpers.supply import create_donor, create_offer
from tests.helpers.waiting import eventually


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
    lines: tuple[tuple[str, int], ...] = ((RICE, 100), (WATER, 240)),
    region_code: str = "310115",
    org: str = "org-shelter",
    donor_org: str = "org-grain",
) -> Gift:
    """A shelter of `org` in `region_code` needs `lines`; a donor of `donor_org` offers exactly that near
    Pudong; the coordinator accepts every proposal; returns once logistics has planned the one shipment."""
    coordinator = auth("coordinator")
    recipient = auth("frontline", org=org)
    donor = auth("donor", org=donor_org)
    site = await create_site(
        client,
        recipient,
        name="浦东临时安置点",
        kind="shelter",
        region_code=region_code,
        lat=31.22,
        lon=121.54,
        contact_name="张三",
        contact_phone="13800000000",
    )
    need = await create_need(
        client,
        recipient,
        site["id"],
        *({"item_code": code, "quantity": q} for code, q in lines),
        title="安置点物资",
        urgency="high",
        beneficiaries=300,
    )
    donor_row = await create_donor(client, donor, name="粮油公司")
    offer = await create_offer(
        client,
        donor,
        donor_row["id"],
        lots=[{"item_code": code, "quantity": q, "lat": 31.3, "lon": 121.5} for code, q in lines],
    )
    need_id = need["id"]

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
        need=need,
        offer=offer,
        proposals=proposals,
        shipment=shipment,
    )
