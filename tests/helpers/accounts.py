"""A donor's books, built through the API with the workers running: an in-kind gift of rice matched, shipped,
received and given feedback on, and a cash pledge that paid for a purchase of rice that was shipped and received
too — with contact names, phone numbers, a street address and handover PINs that no public page may show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE
from tests.helpers.funds import record_payment
from tests.helpers.logistics import advance, full_receipt, procurement_body
from tests.helpers.needs import create_need, create_site
from tests.helpers.supply import create_donor, create_offer, create_pledge
from tests.helpers.waiting import eventually

SITE_CONTACT = {"contact_name": "赵铁柱", "contact_phone": "13912345678"}
SITE_ADDRESS = "上海市浦东新区川沙路5558弄12号"
DONOR_CONTACT = {"name": "钱多多", "phone": "13700001111"}
DONOR_NAME = "钱多多个人"  # the donor's own name: never public (only `public_name` is)


@dataclass
class Books:
    coordinator: dict[str, str]
    donor: dict[str, str]  # a token of the donor's organisation
    donor_row: dict[str, Any]
    site: dict[str, Any]
    gift: dict[str, Any]  # the in-kind offer
    pledge: dict[str, Any]
    procurement: dict[str, Any]
    shipments: list[dict[str, Any]] = field(default_factory=list)  # the gift's, then the purchase's
    pins: list[str] = field(default_factory=list)
    fund: dict[str, Any] = field(default_factory=dict)  # a public fund, where a test adds one
    operation: dict[str, Any] = field(default_factory=dict)  # a relief operation, where a test adds one

    def secrets(self) -> list[str]:
        """What the public must never read."""
        return [*SITE_CONTACT.values(), SITE_ADDRESS, *DONOR_CONTACT.values(), DONOR_NAME, *self.pins]


async def _accept_and_ship(
    client: httpx.AsyncClient, coordinator: dict[str, str], recipient: dict[str, str], need_id: str
) -> dict[str, Any]:
    """Accept every proposal matching made for the need; the shipment logistics planned for it."""

    async def proposed() -> list[dict[str, Any]] | None:
        r = await client.get(f"/v1/proposals?need_id={need_id}&status=proposed", headers=coordinator)
        return list(r.json()["items"]) or None

    for p in await eventually(proposed):
        accepted = await client.post(f"/v1/proposals/{p['id']}/accept", headers=coordinator)
        assert accepted.status_code == 200, accepted.text

    async def planned() -> dict[str, Any] | None:
        items = (await client.get(f"/v1/shipments?need_id={need_id}", headers=recipient)).json()["items"]
        return items[0] if items else None

    shipment: dict[str, Any] = await eventually(planned)
    return shipment


async def _deliver(
    client: httpx.AsyncClient,
    carrier: dict[str, str],
    recipient: dict[str, str],
    shipment: dict[str, Any],
    feedback: dict[str, Any] | None,
) -> str:
    """Pick up, deliver and receive the shipment whole (and give `feedback`); its handover PIN."""
    await advance(client, carrier, shipment["id"], "picked_up", "delivered")
    s = (await client.get(f"/v1/shipments/{shipment['id']}", headers=recipient)).json()
    pin = str(s["handover_pin"])
    r = await client.post(f"/v1/shipments/{shipment['id']}/receipt", headers=recipient, json=full_receipt(s, pin))
    assert r.status_code == 200, r.text
    if feedback is not None:
        r = await client.post(f"/v1/shipments/{shipment['id']}/feedback", headers=recipient, json=feedback)
        assert r.status_code == 201, r.text
    return pin


async def donor_books(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    *,
    donor_org: str = "org-giver",
    site_org: str = "org-shelter",
    public_name: str | None = None,
) -> Books:
    """The donor's two gifts through to the site's receipt: 100 kg of rice in kind (feedback: 120 elderly
    people and 30 children served), and a pledge of ¥1,000.00 (¥600.00 of it received) that paid ¥500.00 for
    10 kg of rice."""
    coordinator, recipient = auth("coordinator"), auth("frontline", org=site_org)
    donor, carrier = auth("donor", org=donor_org), auth("logistics", org="org-carrier")
    site = await create_site(
        client, recipient, name="川沙安置点", kind="shelter", region_code="310115", address=SITE_ADDRESS, **SITE_CONTACT
    )
    need = await create_need(
        client, recipient, site["id"], {"item_code": RICE, "quantity": 100}, title="大米", urgency="high"
    )
    extra = {"public_name": public_name} if public_name else {}
    donor_row = await create_donor(client, donor, name=DONOR_NAME, kind="individual", contact=DONOR_CONTACT, **extra)
    gift = await create_offer(
        client, donor, donor_row["id"], lots=[{"item_code": RICE, "quantity": 100, "lat": 31.3, "lon": 121.5}]
    )
    shipment = await _accept_and_ship(client, coordinator, recipient, need["id"])
    served = {"elderly": 120, "children": 30}
    feedback = {"rating": 5, "comment": "大米已发放", "beneficiaries_served": 150, "served_by_group": served}
    pins = [await _deliver(client, carrier, recipient, shipment, feedback)]

    pledge = await create_pledge(client, donor, donor_row["id"], 100_000)
    await record_payment(client, auth, pledge["id"], 60_000)  # spending draws on money received
    bought = await create_need(
        client, recipient, site["id"], {"item_code": RICE, "quantity": 10}, title="补充大米", urgency="high"
    )

    async def drafted() -> httpx.Response | None:  # 409 until logistics has heard of the pledge
        r = await client.post("/v1/procurements", headers=coordinator, json=procurement_body(pledge["id"]))
        return None if r.status_code == 409 else r

    procurement = (await eventually(drafted)).json()
    for action in ("order", "receive"):
        r = await client.post(f"/v1/procurements/{procurement['id']}/{action}", headers=coordinator)
        assert r.status_code == 200, r.text
    second = await _accept_and_ship(client, coordinator, recipient, bought["id"])
    pins.append(await _deliver(client, carrier, recipient, second, None))
    return Books(coordinator, donor, donor_row, site, gift, pledge, r.json(), [shipment, second], pins)
