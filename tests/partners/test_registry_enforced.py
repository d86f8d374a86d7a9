"""With the organisations registry on, every service refuses writes by organisations it has not approved:
registration → pending (refused) → approval by the hub covering it → allowed → suspension → refused again."""

from __future__ import annotations

import httpx
import pytest

from shared.settings import Settings
from tests.helpers.partners import approve, approved_hub, problem, register

SITE = {"name": "金水区养老院", "kind": "nursing_home", "region_code": "410105", "lat": 34.8, "lon": 113.7}


@pytest.fixture
def registry_on(migrated: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(migrated, "org_registry", True)
    return migrated


async def test_a_pending_organisation_may_read_but_not_write_until_approved(
    client: httpx.AsyncClient, auth, registry_on: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = await approved_hub(client, auth, "hub-enf-zz", ["4101"])
    home = auth("frontline", org="ngo-enf-home")
    # Registering is open to anyone: it is how an organisation starts.
    await register(client, home, name="金水区养老院", kind="ngo", region_codes=["410105"], parent_id="hub-enf-zz")

    refused = problem(await client.post("/v1/sites", headers=home, json=SITE), 403, "organisation-not-approved")
    assert refused["org_status"] == "pending" and "awaits approval" in refused["detail"]
    # Reading is not writing.
    assert (await client.get("/v1/needs", headers=home)).status_code == 200
    # Every service applies it: supply too.
    donor = problem(
        await client.post("/v1/donors", headers=auth("donor", org="ngo-enf-home"), json={"name": "x", "kind": "group"}),
        403,
        "organisation-not-approved",
    )
    assert donor["org_status"] == "pending"
    # An organisation never registered is told to register.
    stranger = problem(
        await client.post("/v1/sites", headers=auth("frontline", org="ngo-enf-unknown"), json=SITE),
        403,
        "organisation-not-approved",
    )
    assert stranger["org_status"] is None and "POST /v1/organizations" in stranger["detail"]

    await approve(client, hub, "ngo-enf-home")
    site = await client.post("/v1/sites", headers=home, json=SITE)
    assert site.status_code == 201, site.text
    need = await client.post(
        "/v1/needs",
        headers=home,
        json={
            "site_id": site.json()["id"],
            "title": "口罩",
            "urgency": "high",
            "lines": [{"item_code": "ppe.mask.kn95", "quantity": 50}],
        },
    )
    assert need.status_code == 201, need.text

    # Suspended: refused again once the approval it was remembered by has run out (here at once).
    monkeypatch.setattr(registry_on, "org_status_cache_seconds", 0.0)
    assert (await client.post("/v1/organizations/ngo-enf-home/suspend", headers=hub)).status_code == 200
    again = problem(await client.post("/v1/sites", headers=home, json=SITE), 403, "organisation-not-approved")
    assert again["org_status"] == "suspended"


async def test_operators_and_the_services_own_calls_are_not_organisations(
    client: httpx.AsyncClient, auth, registry_on: Settings
) -> None:
    admin = auth("admin", org="reliefhub-ops")
    resp = await client.post("/v1/sites", headers=admin, json={**SITE, "org": "ngo-enf-any"})
    assert resp.status_code == 201, resp.text


async def test_a_request_without_a_token_is_still_a_401(client: httpx.AsyncClient, registry_on: Settings) -> None:
    problem(await client.post("/v1/sites", json=SITE), 401)
