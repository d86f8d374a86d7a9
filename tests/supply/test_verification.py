"""Working-group verification: only the group that checks an item class gives the verdict; only verified lots
(or lots that need no check) can be reserved."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import CONCENTRATOR, IBUPROFEN, RICE
from tests.helpers.problems import assert_problem
from tests.helpers.supply import create_donor, create_offer, get_lot, reserve


@pytest.fixture
def donor_headers(auth: TokenFactory) -> dict[str, str]:
    return auth("donor", org="org-medtech")


@pytest.fixture
async def mixed_offer(client, donor_headers) -> dict[str, Any]:
    """Concentrators (medical_device), ibuprofen (pharmacy) and rice (no check)."""
    donor = await create_donor(client, donor_headers, name="某医疗器械公司")
    offer = await create_offer(
        client,
        donor_headers,
        donor["id"],
        lots=[
            {"item_code": CONCENTRATOR, "quantity": 12},
            {"item_code": IBUPROFEN, "quantity": 300},
            {"item_code": RICE, "quantity": 500},
        ],
    )
    assert [lot["verification"] for lot in offer["lots"]] == ["pending", "pending", "not_required"]
    assert [lot["check_by"] for lot in offer["lots"]] == ["medical_device", "pharmacy", None]
    return offer


def devices(auth: TokenFactory) -> dict[str, str]:
    return auth("working_group", org="wg", group="medical_device", sub="reviewer-1")


async def test_checking_group_verifies_its_lots(client, auth: TokenFactory, mixed_offer) -> None:
    coordinator = auth("coordinator")
    device, pills, rice = mixed_offer["lots"]
    assert_problem(await reserve(client, coordinator, device["id"], 1), 409, "lot-unavailable")

    resp = await client.post(
        f"/v1/offers/{mixed_offer['id']}/verification",
        headers=devices(auth),
        json={"verdict": "verified", "notes": "NMPA 注册证已核"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["etag"] == '"2"'
    body = resp.json()
    assert body["version"] == 2
    v_device, v_pills, v_rice = body["lots"]
    assert v_device["verification"] == "verified" and v_device["verification_notes"] == "NMPA 注册证已核"
    assert v_device["quantity_available"] == 12 and v_device["version"] == device["version"] + 1
    # Lots another group checks, or nobody checks, are untouched.
    assert v_pills["verification"] == "pending" and v_pills["quantity_available"] == 0
    assert v_pills["version"] == pills["version"]
    assert v_rice == rice

    assert (await get_lot(client, coordinator, device["id"]))["quantity_available"] == 12
    held = await reserve(client, coordinator, device["id"], 12)
    assert held.status_code == 201, held.text
    assert_problem(await reserve(client, coordinator, pills["id"], 1), 409, "lot-unavailable")

    pharmacy = auth("working_group", org="wg-pharma", group="pharmacy")
    resp = await client.post(
        f"/v1/offers/{mixed_offer['id']}/verification", headers=pharmacy, json={"verdict": "verified"}
    )
    assert resp.status_code == 200, resp.text
    assert [lot["verification"] for lot in resp.json()["lots"]] == ["verified", "verified", "not_required"]
    assert (await reserve(client, coordinator, pills["id"], 300)).status_code == 201


async def test_group_that_checks_none_of_the_items_is_403(client, auth: TokenFactory, mixed_offer) -> None:
    url = f"/v1/offers/{mixed_offer['id']}/verification"
    food = auth("working_group", org="wg-food", group="food_safety")
    assert_problem(await client.post(url, headers=food, json={"verdict": "verified"}), 403, "not-your-check")
    groupless = auth("working_group", org="wg")
    assert_problem(await client.post(url, headers=groupless, json={"verdict": "verified"}), 403, "not-your-check")
    offer = (await client.get(f"/v1/offers/{mixed_offer['id']}", headers=food)).json()
    assert [lot["verification"] for lot in offer["lots"]] == ["pending", "pending", "not_required"]


async def test_rice_only_offer_cannot_be_verified(client, auth: TokenFactory, donor_headers) -> None:
    donor = await create_donor(client, donor_headers)
    offer = await create_offer(client, donor_headers, donor["id"])
    resp = await client.post(
        f"/v1/offers/{offer['id']}/verification", headers=devices(auth), json={"verdict": "verified"}
    )
    assert_problem(resp, 403, "not-your-check")


@pytest.mark.parametrize("role", ["frontline", "donor", "coordinator", "logistics"])
async def test_only_working_groups_verify(client, auth: TokenFactory, mixed_offer, role: str) -> None:
    headers = auth(role, org="org-medtech", group="medical_device")
    resp = await client.post(
        f"/v1/offers/{mixed_offer['id']}/verification", headers=headers, json={"verdict": "verified"}
    )
    assert_problem(resp, 403, "forbidden")
    offer = (await client.get(f"/v1/offers/{mixed_offer['id']}", headers=headers)).json()
    assert offer["lots"][0]["verification"] == "pending"


async def test_second_verdict_has_nothing_to_verify(client, auth: TokenFactory, mixed_offer) -> None:
    url = f"/v1/offers/{mixed_offer['id']}/verification"
    assert (await client.post(url, headers=devices(auth), json={"verdict": "verified"})).status_code == 200
    assert_problem(
        await client.post(url, headers=devices(auth), json={"verdict": "rejected"}), 409, "nothing-to-verify"
    )
    lot = await get_lot(client, devices(auth), mixed_offer["lots"][0]["id"])
    assert lot["verification"] == "verified"


async def test_rejected_lot_stays_unavailable(client, auth: TokenFactory, mixed_offer) -> None:
    coordinator = auth("coordinator")
    device = mixed_offer["lots"][0]
    resp = await client.post(
        f"/v1/offers/{mixed_offer['id']}/verification",
        headers=devices(auth),
        json={"verdict": "rejected", "notes": "无注册证"},
    )
    assert resp.status_code == 200, resp.text
    lot = await get_lot(client, coordinator, device["id"])
    assert lot["verification"] == "rejected" and lot["verification_notes"] == "无注册证"
    assert lot["quantity_available"] == 0
    body = assert_problem(await reserve(client, coordinator, device["id"], 1), 409, "lot-unavailable")
    assert "rejected" in body["detail"]
    assert (await get_lot(client, coordinator, device["id"]))["quantity_reserved"] == 0
    assert_problem(
        await client.post(
            f"/v1/offers/{mixed_offer['id']}/verification", headers=devices(auth), json={"verdict": "verified"}
        ),
        409,
        "nothing-to-verify",
    )
    # The rice lot of the same offer is unaffected.
    assert (await reserve(client, coordinator, mixed_offer["lots"][2]["id"], 5)).status_code == 201


async def test_admin_gives_every_groups_verdict(client, auth: TokenFactory, mixed_offer) -> None:
    resp = await client.post(
        f"/v1/offers/{mixed_offer['id']}/verification", headers=auth("admin", org="ops"), json={"verdict": "verified"}
    )
    assert resp.status_code == 200, resp.text
    assert [lot["verification"] for lot in resp.json()["lots"]] == ["verified", "verified", "not_required"]


@pytest.mark.parametrize("body", [{}, {"verdict": "maybe"}, {"verdict": "verified", "score": 5}])
async def test_bad_verdict_is_422(client, auth: TokenFactory, mixed_offer, body: dict[str, Any]) -> None:
    resp = await client.post(f"/v1/offers/{mixed_offer['id']}/verification", headers=devices(auth), json=body)
    assert_problem(resp, 422, "invalid-request")


async def test_verifying_unknown_offer_is_404(client, auth: TokenFactory) -> None:
    resp = await client.post(
        f"/v1/offers/{uuid.uuid4()}/verification", headers=devices(auth), json={"verdict": "verified"}
    )
    assert_problem(resp, 404, "offer-not-found")
