"""The working-group loop over HTTP and the event streams: a site needs a medical device; the device-check
group's webhook hears of a donor's offer of one, whose lot awaits its check; the group verifies it from its
receiver; the lot becomes available and matching proposes it for the need."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.helpers.auth import TokenFactory
from tests.helpers.needs import create_need, create_site
from tests.helpers.receiver import serve_receiver
from tests.helpers.supply import create_donor, create_offer
from tests.helpers.waiting import eventually
from tests.helpers.webhooks import create_endpoint

ITEMS = Path(__file__).resolve().parents[2] / "shared" / "catalog" / "items.json"


def _device() -> str:
    items = json.loads(ITEMS.read_text())["items"]
    return str(
        next(i["code"] for i in items if i["check_by"] == "medical_device" and i["code"].startswith("medical_device."))
    )


async def test_the_device_group_verifies_from_its_webhook_and_matching_follows(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    device = _device()
    coordinator = auth("coordinator")
    frontline = auth("frontline", org="org-hospital")
    group = auth("working_group", org="org-device-check", group="medical_device")
    donor_org = auth("donor", org="org-maker")

    # 1. A frontline site needs the device.
    site = await create_site(client, frontline)
    need = await create_need(
        client, frontline, site["id"], {"item_code": device, "quantity": 2}, title="制氧机", urgency="critical"
    )
    need_id = need["id"]

    async with serve_receiver() as receiver:
        # 2. The device-check group listens for offers of medical devices.
        await create_endpoint(
            client,
            group,
            receiver,
            "/device-check",
            ["reliefhub.supply.offer.created"],
            filters={"item_codes": ["medical_device."]},
            description="器械核验组",
        )

        verdicts: list[httpx.Response] = []
        seen: list[dict[str, Any]] = []

        async def check(event: dict[str, Any]) -> None:
            """The group's own system: look at the offered lots, then give its verdict through the API."""
            seen.append(event)
            assert all(lot["verification"] == "pending" for lot in event["data"]["lots"])
            verdicts.append(
                await client.post(
                    f"/v1/offers/{event['data']['id']}/verification",
                    headers=group,
                    json={"verdict": "verified", "notes": "资质齐全"},
                )
            )

        receiver.on_event["/device-check"] = check

        # 3. A donor offers the device; its lot awaits the group's check.
        donor = await create_donor(client, donor_org, name="鱼跃医疗")
        offer = await create_offer(
            client,
            donor_org,
            donor["id"],
            lots=[{"item_code": device, "quantity": 2, "lat": 31.25, "lon": 121.45, "region_code": "310106"}],
        )
        offer_id = offer["id"]
        [lot] = offer["lots"]
        assert lot["verification"] == "pending" and lot["check_by"] == "medical_device"
        assert lot["quantity_available"] == 0

        # 4. The event reaches the group, signed; its receiver verifies the lot with the group's token.
        [verdict] = await eventually(lambda: _ready(verdicts))
        assert verdict.status_code == 200, verdict.text
        assert verdict.json()["lots"][0]["verification"] == "verified"
        [got] = receiver.at("/device-check")
        assert got.verified_with == [receiver.secrets["/device-check"]]
        [event] = seen
        assert event["type"] == "reliefhub.supply.offer.created" and event["data"]["id"] == offer_id
        assert event["id"] == got.headers["webhook-id"]

    # 5. The lot is available, and matching proposes it for the need by itself.
    after = (await client.get(f"/v1/offers/{offer_id}", headers=coordinator)).json()
    assert after["lots"][0]["verification"] == "verified" and after["lots"][0]["quantity_available"] == 2

    async def proposed() -> list[dict[str, Any]]:
        r = await client.get(f"/v1/proposals?need_id={need_id}", headers=coordinator)
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    [proposal] = await eventually(proposed)
    assert proposal["lot_id"] == lot["id"] and proposal["quantity"] == 2 and proposal["status"] == "proposed"


async def _ready(items: list[Any]) -> list[Any] | None:
    return items or None
