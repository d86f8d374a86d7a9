"""A working group re-classifies a lot (medical masks that are not fit for medical use) and matching proposes
it as the new item, for a need of that item, without anything restarting."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers.auth import TokenFactory
from tests.helpers.waiting import eventually

SURGICAL, KN95 = "ppe.mask.surgical", "ppe.mask.kn95"


async def test_a_reclassified_lot_is_matched_as_its_new_item(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    coordinator, recipient = auth("coordinator"), auth("frontline", org="org-community")
    donor = auth("donor", org="org-masks")
    site = (
        await client.post(
            "/v1/sites",
            headers=recipient,
            json={"name": "社区服务中心", "kind": "community", "region_code": "310115", "lat": 31.22, "lon": 121.54},
        )
    ).json()
    need = await client.post(
        "/v1/needs",
        headers=recipient,
        json={"site_id": site["id"], "title": "口罩", "lines": [{"item_code": KN95, "quantity": 400}]},
    )
    assert need.status_code == 201, need.text
    donor_row = (await client.post("/v1/donors", headers=donor, json={"name": "口罩厂", "kind": "company"})).json()
    offer = await client.post(
        "/v1/offers",
        headers=donor,
        json={
            "donor_id": donor_row["id"],
            "kind": "in_kind",
            "lots": [{"item_code": SURGICAL, "quantity": 400, "lat": 31.3, "lon": 121.5}],
        },
    )
    assert offer.status_code == 201, offer.text
    [lot] = offer.json()["lots"]
    assert lot["verification"] == "pending"

    group = auth("working_group", org="wg", group="medical_device")
    r = await client.post(
        f"/v1/lots/{lot['id']}/verification",
        headers=group,
        json={"verdict": "reclassified", "item_code": KN95, "notes": "无医疗器械注册证，非医用"},
    )
    assert r.status_code == 200, r.text

    async def proposed() -> list[dict[str, Any]] | None:
        got = await client.get(f"/v1/proposals?need_id={need.json()['id']}&status=proposed", headers=coordinator)
        return list(got.json()["items"]) or None

    [proposal] = await eventually(proposed)
    assert proposal["lot_id"] == lot["id"] and proposal["quantity"] == 400
    assert proposal["lot_item_code"] == KN95  # matched as the item it now is, not as a substitute
