"""A gift on its way: site → need → offer → automatic proposals → accepted (`accept_a_gift`) → the shipment
logistics planned (`ship_a_gift`).
Used by the logistics tests and the cross-service flow tests; everything goes through HTTP and the streams (the
`workers` fixture must be running)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE, WATER
from tests.helpers.needs import PUDONG_SHELTER, create_need, create_site
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
    shipment: dict[str, Any] = field(default_factory=dict)  # once logistics has planned it

    @property
    def tracking_code(self) -> str:
        return str(self.offer["tracking_code"])


async def accept_a_gift(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    *,
    lines: tuple[tuple[str, int], ...] = ((RICE, 100), (WATER, 240)),
    region_code: str = "310115",
    org: str = "org-shelter",
    donor_org: str = "org-grain",
) -> Gift:
    """A shelter of `org` in `region_code` needs `lines`; a donor of `donor_org` offers exactly that near
    Pudong; returns once the coordinator has accepted every proposal matching made (no shipment yet)."""
    coordinator = auth("coordinator")
    recipient = auth("frontline", org=org)
    donor = auth("donor", org=donor_org)
    site = await create_site(client, recipient, **{**PUDONG_SHELTER, "region_code": region_code})
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

    async def proposed() -> list[dict[str, Any]] | None:
        r = await client.get(f"/v1/proposals?need_id={need['id']}&status=proposed", headers=coordinator)
        items = list(r.json()["items"])
        return items if len(items) == len(lines) else None

    proposals = await eventually(proposed)
    for p in proposals:
        accepted = await client.post(f"/v1/proposals/{p['id']}/accept", headers=coordinator)
        assert accepted.status_code == 200, accepted.text
    return Gift(
        coordinator=coordinator,
        carrier=auth("logistics", org="org-carrier"),
        recipient=recipient,
        donor=donor,
        site=site,
        need=need,
        offer=offer,
        proposals=proposals,
    )


async def ship_a_gift(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    *,
    lines: tuple[tuple[str, int], ...] = ((RICE, 100), (WATER, 240)),
    region_code: str = "310115",
    org: str = "org-shelter",
    donor_org: str = "org-grain",
) -> Gift:
    """`accept_a_gift`, then wait until logistics has planned the one shipment of it."""
    gift = await accept_a_gift(client, auth, lines=lines, region_code=region_code, org=org, donor_org=donor_org)

    async def planned() -> dict[str, Any] | None:
        r = await client.get(f"/v1/shipments?need_id={gift.need['id']}", headers=gift.recipient)
        items = r.json()["items"]
        return items[0] if items and len(items[0]["lines"]) == len(lines) else None

    gift.shipment = await eventually(planned)
    return gift
