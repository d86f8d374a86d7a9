"""Site → need → donor → offer → working-group verdict → reservation, through HTTP alone."""

from __future__ import annotations

import json

from redis.asyncio import Redis

from tests.conftest import TokenFactory


async def test_intake_to_reservation_with_events(client, auth: TokenFactory, redis: Redis) -> None:
    frontline = auth("frontline", org="org-hospital")
    donor_org = auth("donor", org="org-donor")
    coordinator = auth("coordinator")
    device_group = auth("working_group", org="wg-devices", group="medical_device")

    site = await client.post(
        "/v1/sites",
        headers=frontline,
        json={
            "name": "瑞金医院",
            "kind": "hospital",
            "region_code": "310101",
            "lat": 31.21,
            "lon": 121.47,
            "contact_name": "王医生",
            "contact_phone": "+86 138 0000 0000",
        },
    )
    assert site.status_code == 201, site.text
    need = await client.post(
        "/v1/needs",
        headers=frontline,
        json={
            "site_id": site.json()["id"],
            "title": "ICU oxygen",
            "urgency": "critical",
            "beneficiaries": 40,
            "lines": [{"item_code": "medical_device.oxygen.concentrator_5l", "quantity": 10}],
        },
    )
    assert need.status_code == 201, need.text
    assert need.json()["status"] == "open" and need.json()["lines"][0]["quantity_matched"] == 0

    donor = await client.post("/v1/donors", headers=donor_org, json={"name": "某医疗器械公司", "kind": "company"})
    assert donor.status_code == 201, donor.text
    offer = await client.post(
        "/v1/offers",
        headers=donor_org,
        json={
            "donor_id": donor.json()["id"],
            "kind": "in_kind",
            "lots": [{"item_code": "medical_device.oxygen.concentrator_5l", "quantity": 12, "region_code": "310104"}],
            "restrictions": {"region_codes": ["31"], "site_kinds": ["hospital"]},
        },
    )
    assert offer.status_code == 201, offer.text
    body = offer.json()
    assert body["tracking_code"] and len(body["tracking_code"]) >= 20
    lot = body["lots"][0]
    assert lot["verification"] == "pending" and lot["quantity_available"] == 0

    blocked = await client.post(
        f"/v1/lots/{lot['id']}/reservations", headers=coordinator, json={"quantity": 5, "reference": "p-1"}
    )
    assert blocked.status_code == 409, blocked.text

    verdict = await client.post(
        f"/v1/offers/{body['id']}/verification",
        headers=device_group,
        json={"verdict": "verified", "notes": "CE/NMPA certificates checked"},
    )
    assert verdict.status_code == 200, verdict.text
    assert verdict.json()["lots"][0]["quantity_available"] == 12

    res = await client.post(
        f"/v1/lots/{lot['id']}/reservations", headers=coordinator, json={"quantity": 5, "reference": "p-1"}
    )
    assert res.status_code == 201, res.text
    again = await client.get(f"/v1/offers/{body['id']}", headers=donor_org)
    assert again.json()["lots"][0]["quantity_reserved"] == 5
    assert again.json()["tracking_code"] is None
    print(json.dumps(again.json())[:50])
