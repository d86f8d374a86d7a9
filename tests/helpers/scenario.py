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
from tests.helpers.needs import PUDONG_SHELTER, create_site, need_body
from tests.helpers.supply import create_donor, offer_body
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


async def _created(client: httpx.AsyncClient, headers: dict[str, str], path: str, body: dict[str, Any]) -> Any:
    """`POST path` of `body`, answered 201; the resource. With a relief operation in it, asked again while it is
    422 (until the service has heard of the operation)."""

    async def created() -> Any:
        r = await client.post(path, headers=headers, json=body)
        if r.status_code == 422 and body.get("operation_id"):
            return None
        assert r.status_code == 201, r.text
        return r.json()

    return await eventually(created)


async def accept_a_gift(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    *,
    lines: tuple[tuple[str, int], ...] = ((RICE, 100), (WATER, 240)),
    region_code: str = "310115",
    org: str = "org-shelter",
    donor_org: str = "org-grain",
    operation_id: str | None = None,
) -> Gift:
    """A shelter of `org` in `region_code` needs `lines`; a donor of `donor_org` offers exactly that near
    Pudong; returns once the coordinator has accepted every proposal matching made (no shipment yet). With
    `operation_id`, the need and the offer are of that relief operation."""
    coordinator = auth("coordinator")
    recipient = auth("frontline", org=org)
    donor = auth("donor", org=donor_org)
    of_operation = {"operation_id": operation_id} if operation_id else {}
    site = await create_site(client, recipient, **{**PUDONG_SHELTER, "region_code": region_code})
    need_lines = ({"item_code": code, "quantity": q} for code, q in lines)
    body = need_body(site["id"], *need_lines, title="安置点物资", urgency="high", beneficiaries=300, **of_operation)
    need = await _created(client, recipient, "/v1/needs", body)
    donor_row = await create_donor(client, donor, name="粮油公司")
    lots = [{"item_code": code, "quantity": q, "lat": 31.3, "lon": 121.5} for code, q in lines]
    offer = await _created(client, donor, "/v1/offers", offer_body(donor_row["id"], lots=lots, **of_operation))

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
    operation_id: str | None = None,
) -> Gift:
    """`accept_a_gift`, then wait until logistics has planned the one shipment of it."""
    gift = await accept_a_gift(
        client, auth, lines=lines, region_code=region_code, org=org, donor_org=donor_org, operation_id=operation_id
    )

    async def planned() -> dict[str, Any] | None:
        r = await client.get(f"/v1/shipments?need_id={gift.need['id']}", headers=gift.recipient)
        items = r.json()["items"]
        return items[0] if items and len(items[0]["lines"]) == len(lines) else None

    gift.shipment = await eventually(planned)
    return gift
