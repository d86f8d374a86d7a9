"""Donors: who may register them for which organisation, and who may see their contact details."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.helpers.auth import TokenFactory
from tests.helpers.problems import assert_problem
from tests.helpers.supply import create_donor, donor_body, pledge_body

CONTACT = {"name": "李经理", "phone": "+86 139 1234 5678", "email": "li@example.cn"}


async def test_donor_registers_for_own_org(client, auth: TokenFactory) -> None:
    headers = auth("donor", org="org-grain")
    resp = await client.post(
        "/v1/donors", headers=headers, json={"name": "  某粮油公司 ", "kind": "company", "contact": CONTACT}
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["org"] == "org-grain"
    assert body["name"] == "某粮油公司"
    assert body["kind"] == "company"
    assert body["contact"] == CONTACT
    assert body["version"] == 1
    assert resp.headers["location"] == f"/v1/donors/{body['id']}"
    assert resp.headers["etag"] == '"1"'

    again = await client.get(f"/v1/donors/{body['id']}", headers=headers)
    assert again.status_code == 200, again.text
    assert again.json() == body
    assert again.headers["etag"] == '"1"'


async def test_donor_may_name_own_org_explicitly(client, auth: TokenFactory) -> None:
    donor = await create_donor(client, auth("donor", org="org-grain"), org="org-grain")
    assert donor["org"] == "org-grain"


async def test_donor_may_not_register_for_another_org(client, auth: TokenFactory) -> None:
    headers = auth("donor", org="org-grain")
    resp = await client.post("/v1/donors", headers=headers, json={"name": "X", "kind": "company", "org": "org-other"})
    assert_problem(resp, 403, "not-your-donor")


async def test_coordinator_may_register_for_another_org(client, auth: TokenFactory) -> None:
    donor = await create_donor(client, auth("coordinator", org="org-hub"), org="org-foundation", kind="foundation")
    assert donor["org"] == "org-foundation"
    assert donor["kind"] == "foundation"
    # The donor's organisation now owns it: its donor tokens see the contact and may make offers.
    offer = await client.post(
        "/v1/offers",
        headers=auth("donor", org="org-foundation"),
        json=pledge_body(donor["id"], 100),
    )
    assert offer.status_code == 201, offer.text


async def test_coordinator_without_org_registers_for_own_org(client, auth: TokenFactory) -> None:
    donor = await create_donor(client, auth("coordinator", org="org-hub"))
    assert donor["org"] == "org-hub"


@pytest.mark.parametrize("role", ["frontline", "logistics", "working_group"])
async def test_other_roles_may_not_register_donors(client, auth: TokenFactory, role: str) -> None:
    resp = await client.post("/v1/donors", headers=auth(role, org="org-x"), json={"name": "X", "kind": "company"})
    assert_problem(resp, 403, "forbidden")


async def test_registering_needs_a_token(client) -> None:
    resp = await client.post("/v1/donors", json={"name": "X", "kind": "company"})
    assert_problem(resp, 401, "unauthorized")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "kind": "company"},
        {"name": "   ", "kind": "company"},
        {"name": "X", "kind": "charity"},
        {"kind": "company"},
        {"name": "X", "kind": "company", "contact": {"phone": "call me"}},
        {"name": "X", "kind": "company", "contact": {"email": "nobody"}},
        {"name": "X", "kind": "company", "contact": {"wechat": "abc"}},
        {"name": "X", "kind": "company", "tax_id": "123"},
    ],
)
async def test_invalid_donor_is_422(client, auth: TokenFactory, body: dict) -> None:
    resp = await client.post("/v1/donors", headers=auth("donor", org="org-grain"), json=body)
    err = assert_problem(resp, 422, "invalid-request")
    assert err["errors"] and all("loc" in e and "msg" in e for e in err["errors"])


@pytest.mark.parametrize(
    ("role", "org", "sees_contact"),
    [
        ("donor", "org-grain", True),
        ("frontline", "org-grain", True),
        ("coordinator", "org-hub", True),
        ("admin", "org-ops", True),
        ("donor", "org-other", False),
        ("frontline", "org-hospital", False),
        ("logistics", "org-trucks", False),
        ("working_group", "wg", False),
    ],
)
async def test_contact_only_for_owner_org_and_coordinators(
    client, auth: TokenFactory, role: str, org: str, sees_contact: bool
) -> None:
    donor = await create_donor(client, auth("donor", org="org-grain"), contact=CONTACT)
    resp = await client.get(f"/v1/donors/{donor['id']}", headers=auth(role, org=org))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["name"] == donor["name"] and body["org"] == "org-grain"
    if sees_contact:
        assert body["contact"] == CONTACT
    else:
        assert body["contact"] is None
        assert CONTACT["phone"] not in resp.text and CONTACT["email"] not in resp.text


async def test_coordinator_sees_contact_it_entered_for_another_org(client, auth: TokenFactory) -> None:
    # A coordinator registering for another org still sees what they entered.
    donor = await create_donor(client, auth("coordinator"), org="org-foundation", contact=CONTACT)
    assert donor["contact"] == CONTACT


async def test_unknown_donor_is_404(client, auth: TokenFactory) -> None:
    missing = uuid.uuid4()
    resp = await client.get(f"/v1/donors/{missing}", headers=auth("coordinator"))
    body = assert_problem(resp, 404, "donor-not-found")
    assert str(missing) in body["detail"]
    assert body["instance"] == f"/v1/donors/{missing}"


async def test_malformed_donor_id_is_422(client, auth: TokenFactory) -> None:
    resp = await client.get("/v1/donors/not-a-uuid", headers=auth("coordinator"))
    body = assert_problem(resp, 422, "invalid-request")
    assert any(e["loc"][:2] == ["path", "donor_id"] for e in body["errors"])


async def test_reading_a_donor_needs_a_token(client, auth: TokenFactory) -> None:
    donor = await create_donor(client, auth("donor", org="org-grain"))
    assert_problem(await client.get(f"/v1/donors/{donor['id']}"), 401)


async def test_a_donor_may_give_a_public_name(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    """A donor names itself publicly only when it gives `public_name`; without it there is none."""
    headers = auth("donor", org="org-heart")
    named = await create_donor(client, headers, public_name="  爱心企业  ")
    assert named["public_name"] == "爱心企业"
    r = await client.get(f"/v1/donors/{named['id']}", headers=headers)
    assert r.json()["public_name"] == "爱心企业"
    anonymous = await create_donor(client, headers)
    assert anonymous["public_name"] is None
    r = await client.post("/v1/donors", headers=headers, json=donor_body(public_name=""))
    assert_problem(r, 422)
