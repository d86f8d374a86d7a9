"""A partner covers a need line itself, end to end with the registry on: registered and approved by the hub
covering it, it claims 200 of 300 kg of rice; a coordinator outside the region is refused, one inside confirms;
the line's open quantity drops for the need and for matching; logistics plans the partner's own shipment with it
as carrier; the site receives it with the PIN and rates it; the claim is fulfilled and what arrived counts once,
as delivered. An organisation not yet approved may not claim."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.settings import Settings
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE
from tests.helpers.logistics import advance, full_receipt
from tests.helpers.needs import create_need, create_site
from tests.helpers.partners import approve, approved_hub, eventually, problem, register


@pytest.fixture
def registry_on(migrated: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(migrated, "org_registry", True)
    return migrated


async def test_a_partner_claims_a_line_brings_it_and_the_site_receives_it_with_the_pin(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine, registry_on: Settings, workers: None
) -> None:
    hub = await approved_hub(client, auth, "hub-flow-sh", ["31"])
    home = auth("frontline", org="org-flow-home")
    await register(client, home, name="瑞金医院", kind="ngo", region_codes=["310101"], parent_id="hub-flow-sh")
    await approve(client, hub, "org-flow-home")
    site = await create_site(client, home)  # 310101
    need = await create_need(client, home, site["id"], {"item_code": RICE, "quantity": 300})
    line = need["lines"][0]
    body = {"lines": [{"line_id": line["id"], "quantity": 200}], "note": "我们自带 200 公斤大米"}

    partner = auth("logistics", org="ngo-flow-meals")
    await register(
        client, partner, name="爱心餐车队", kind="volunteer_team", region_codes=["31"], parent_id="hub-flow-sh"
    )
    refused = problem(
        await client.post(f"/v1/needs/{need['id']}/claims", headers=partner, json=body),
        403,
        "organisation-not-approved",
    )
    assert refused["org_status"] == "pending"
    await approve(client, hub, "ngo-flow-meals")
    made = await client.post(f"/v1/needs/{need['id']}/claims", headers=partner, json=body)
    assert made.status_code == 201, made.text
    claim = made.json()

    outside = auth("coordinator", org="hub-flow-hn", regions=["4101"])
    await register(client, outside, name="郑州枢纽", kind="hub", region_codes=["4101"])
    await approve(client, auth("admin", org="reliefhub-ops"), "hub-flow-hn")
    problem(await client.post(f"/v1/claims/{claim['id']}/confirm", headers=outside), 403, "out-of-region")
    inside = auth("coordinator", org="hub-flow-sh", regions=["31"])
    confirmed = await client.post(f"/v1/claims/{claim['id']}/confirm", headers=inside)
    assert confirmed.status_code == 200, confirmed.text

    got = (await client.get(f"/v1/needs/{need['id']}", headers=home)).json()
    assert got["lines"][0]["quantity_claimed"] == 200 and got["status"] == "matched"

    # Matching sees only what is still open: 100 kg.
    async def matching_sees() -> Any:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT quantity FROM matching.need_line_view WHERE line_id = :id"), {"id": line["id"]}
                )
            ).first()
        return row if row is not None and row.quantity == 100 else None

    await eventually(matching_sees)

    # Logistics plans the partner's own shipment, the partner as carrier.
    async def planned() -> Any:
        r = await client.get("/v1/shipments", headers=home, params={"need_id": need["id"]})
        items = r.json()["items"]
        return items[0] if items else None

    shipment = await eventually(planned)
    assert shipment["carrier"] == "ngo-flow-meals" and shipment["status"] == "planned"
    assert [(x["need_line_id"], x["quantity"]) for x in shipment["lines"]] == [(line["id"], 200)]
    pin = shipment["handover_pin"]  # the receiving site sees it
    assert pin
    await advance(client, partner, shipment["id"], "picked_up", "in_transit", "delivered")
    received = await client.post(
        f"/v1/shipments/{shipment['id']}/receipt", headers=home, json=full_receipt(shipment, pin)
    )
    assert received.status_code == 200, received.text
    rated = await client.post(
        f"/v1/shipments/{shipment['id']}/feedback", headers=home, json={"rating": 5, "comment": "谢谢爱心餐车队"}
    )
    assert rated.status_code in (200, 201), rated.text

    async def fulfilled() -> Any:
        got = (await client.get(f"/v1/claims/{claim['id']}", headers=partner)).json()
        return got if got["status"] == "fulfilled" else None

    await eventually(fulfilled)
    line_now = (await client.get(f"/v1/needs/{need['id']}", headers=home)).json()["lines"][0]
    assert (line_now["quantity_delivered"], line_now["quantity_claimed"]) == (200, 0)  # counted once
    await eventually(matching_sees)  # 300 asked, 200 delivered: still 100 open to matching

    # No event in between showed the line wholly open: once confirmed, every state of the need published has
    # the 200 kg covered, first as claimed, then as delivered (settling the claim and rolling up the receipt
    # publish the need once).
    async with engine.connect() as conn:
        states = (
            (
                await conn.execute(
                    text(
                        "SELECT envelope->'data'->'lines'->0 FROM needs.outbox_event WHERE subject = :need"
                        " AND type = 'reliefhub.needs.need.progressed' ORDER BY seq"
                    ),
                    {"need": need["id"]},
                )
            )
            .scalars()
            .all()
        )
    covered = [(s["quantity_claimed"], s["quantity_delivered"]) for s in states]
    since_confirmed = covered[covered.index((200, 0)) :]
    assert all(claimed + delivered >= 200 for claimed, delivered in since_confirmed), covered
    assert since_confirmed[-1] == (0, 200), covered
