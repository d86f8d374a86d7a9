"""Services matched to partners' capacities, through the API: a partner approved by the hub covering county
410102 declares 30 psychological-support sessions a day for 7 days there; a nursing home there needs 20;
matching proposes that capacity — never one whose area or window does not cover the line — and accepting it
reserves nothing in supply and plans no shipment."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from shared.settings import Settings
from tests.helpers.auth import TokenFactory
from tests.helpers.needs import shelter_need
from tests.helpers.partners import approve, approved_hub, register
from tests.helpers.waiting import eventually

PSYCH = "service.psych.support_session"
TODAY = date.today()
ZHENGZHOU = {"region_code": "410102", "lat": 34.75, "lon": 113.62}


def capacity(region_codes: list[str], start: int = 0, days: int = 7) -> dict[str, Any]:
    return {
        "service_code": PSYCH,
        "units_per_day": 30,
        "region_codes": region_codes,
        "starts_on": str(TODAY + timedelta(days=start)),
        "ends_on": str(TODAY + timedelta(days=start + days - 1)),
    }


@pytest.fixture
def registry_on(migrated: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(migrated, "org_registry", True)
    return migrated


async def declare(client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]) -> str:
    resp = await client.post("/v1/capacities", headers=headers, json=body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def test_a_service_need_is_matched_to_the_capacity_covering_it_and_accepting_ships_nothing(
    client: httpx.AsyncClient, auth: TokenFactory, registry_on: Settings, workers: None
) -> None:
    await approved_hub(client, auth, "hub-sa-zz", ["4101"])
    hub = auth("coordinator", org="hub-sa-zz", regions=["4101"])
    partner = auth("frontline", org="ngo-sa-xinli")
    await register(client, partner, name="中原心理援助队", kind="ngo", parent_id="hub-sa-zz", region_codes=["410102"])
    await approve(client, hub, "ngo-sa-xinli")
    here = await declare(client, partner, capacity(["410102"]))
    # Elsewhere (another county of the city) and later (a window starting after the need's date): never proposed.
    other = auth("frontline", org="ngo-sa-other")
    await register(
        client, other, name="二七区志愿队", kind="volunteer_team", parent_id="hub-sa-zz", region_codes=["4101"]
    )
    await approve(client, hub, "ngo-sa-other")
    elsewhere = await declare(client, other, capacity(["410103"]))
    later = await declare(client, other, capacity(["4101"], start=10))

    home = auth("frontline", org="org-sa-home")
    await register(
        client, home, name="金水区养老院", kind="community_group", parent_id="hub-sa-zz", region_codes=["410102"]
    )
    await approve(client, hub, "org-sa-home")
    need = await shelter_need(
        client,
        auth,
        {"item_code": PSYCH, "quantity": 20},
        where=ZHENGZHOU,
        org="org-sa-home",
        kind="nursing_home",
        title="养老院心理疏导",
        needed_by=f"{TODAY + timedelta(days=2)}T12:00:00+08:00",
    )

    async def proposed() -> list[dict[str, Any]]:
        r = await client.get(f"/v1/proposals?need_id={need['id']}&status=proposed", headers=hub)
        return list(r.json()["items"])

    proposals = await eventually(proposed)
    assert [(p["capacity_id"], p["lot_id"], p["quantity"]) for p in proposals] == [(here, None, 20)]
    assert {p["capacity_id"] for p in proposals}.isdisjoint({elsewhere, later})
    proposal = proposals[0]
    assert proposal["factors"]["distance"] == 0 and proposal["factors"]["urgency"] > 0

    accepted = await client.post(f"/v1/proposals/{proposal['id']}/accept", headers=hub)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted" and accepted.json()["reservation_id"] is None

    async def rolled_up() -> dict[str, Any] | None:
        body = (await client.get(f"/v1/needs/{need['id']}", headers=hub)).json()
        return body if body["lines"][0]["quantity_matched"] == 20 else None

    await eventually(rolled_up)
    shipments = await client.get("/v1/shipments", headers=hub, params={"need_id": need["id"]})
    assert shipments.status_code == 200 and shipments.json()["items"] == []

    # The accepted proposal becomes the partner's assignment (once, however often the event comes).
    async def assigned() -> list[dict[str, Any]]:
        r = await client.get("/v1/assignments", headers=partner, params={"org": "ngo-sa-xinli"})
        return list(r.json()["items"])

    [assignment] = await eventually(assigned)
    assert assignment["proposal_id"] == proposal["id"] and assignment["capacity_id"] == here
    assert assignment["status"] == "assigned" and assignment["quantity"] == 20
    assert assignment["need_id"] == need["id"] and assignment["service_code"] == PSYCH
    url = f"/v1/assignments/{assignment['id']}"
    # Another organisation neither confirms nor reports it; reporting before confirming is refused.
    assert (await client.post(f"{url}/confirm", headers=other)).status_code == 403
    report = {"units_delivered": 18, "people_served": 25, "served_by_group": {"elderly": 25}, "note": "两位老人改期"}
    early = await client.post(f"{url}/report", headers=partner, json=report)
    assert early.status_code == 409, early.text

    confirmed = await client.post(f"{url}/confirm", headers=partner)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "confirmed" and confirmed.json()["confirmed_at"]
    too_many = await client.post(f"{url}/report", headers=partner, json={**report, "units_delivered": 21})
    assert too_many.status_code == 422, too_many.text
    done = await client.post(f"{url}/report", headers=partner, json=report)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "done" and done.json()["units_delivered"] == 18
    assert done.json()["served_by_group"] == {"elderly": 25}
    again = await client.post(f"{url}/report", headers=partner, json=report)
    assert again.status_code == 200 and again.json()["version"] == done.json()["version"]
    assert (await client.get(url, headers=hub)).json()["status"] == "done"

    # The partner's record shows what it delivered.
    record = (await client.get("/v1/organizations/ngo-sa-xinli", headers=hub)).json()
    assert record["delivered"] == {"assignments_done": 1, "units_delivered": 18, "people_served": 25}

    # The impact report counts what the partner delivered (logistics learns it from the partners' event).
    async def counted() -> dict[str, Any] | None:
        r = await client.get("/v1/reports/impact", headers=hub, params={"region_code": "4101"})
        assert r.status_code == 200, r.text
        services = r.json()["services"]
        return services if services["assignments_done"] else None

    assert await eventually(counted) == {"assignments_done": 1, "units_delivered": 18, "people_served": 25}
