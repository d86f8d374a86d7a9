"""Verification per lot: the working group its item names gives a verdict on one lot — verified, rejected, or
reclassified as another catalog item; other groups get 403; the offer-level verdict still covers every lot."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import IBUPROFEN, RICE
from tests.helpers.problems import assert_problem as problem
from tests.helpers.supply import create_donor, create_offer, get_lot

SURGICAL, KN95 = "ppe.mask.surgical", "ppe.mask.kn95"


@pytest.fixture
async def offer(client: httpx.AsyncClient, auth: TokenFactory) -> dict[str, Any]:
    donor_headers = auth("donor", org="org-medtech")
    donor = await create_donor(client, donor_headers, name="某医疗器械公司")
    return await create_offer(
        client,
        donor_headers,
        donor["id"],
        lots=[
            {"item_code": SURGICAL, "quantity": 1000},
            {"item_code": SURGICAL, "quantity": 500},
            {"item_code": IBUPROFEN, "quantity": 300},
            {"item_code": RICE, "quantity": 50},
        ],
    )


def devices(auth: TokenFactory) -> dict[str, str]:
    return auth("working_group", org="wg", group="medical_device", sub="reviewer-1")


async def _verify(client: httpx.AsyncClient, headers: dict[str, str], lot_id: str, **body: Any) -> httpx.Response:
    return await client.post(f"/v1/lots/{lot_id}/verification", headers=headers, json=body)


async def test_batch_by_batch_verdicts(client: httpx.AsyncClient, auth: TokenFactory, offer: dict[str, Any]) -> None:
    first, second, pills, rice = offer["lots"]
    coordinator = auth("coordinator")

    r = await _verify(client, devices(auth), first["id"], verdict="verified", notes="批号 A 合格")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verification"] == "verified" and body["verification_notes"] == "批号 A 合格"
    assert body["quantity_available"] == 1000 and r.headers["etag"] == f'"{first["version"] + 1}"'
    # The second batch of the same item is still pending: verdicts go lot by lot.
    assert (await get_lot(client, coordinator, second["id"]))["verification"] == "pending"

    r = await _verify(client, devices(auth), second["id"], verdict="reclassified", item_code=KN95, notes="非医用")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["item_code"] == KN95 and body["verification"] == "reclassified"
    assert body["quantity_available"] == 500 and body["verification_notes"] == "非医用"

    # Given once: a second verdict on the same lot is a 409.
    problem(await _verify(client, devices(auth), first["id"], verdict="rejected"), 409, "nothing-to-verify")
    # Another group's token, or a group on a lot nobody checks, is 403; the lot is untouched.
    pharmacy = auth("working_group", org="wg", group="pharmacy")
    problem(await _verify(client, pharmacy, first["id"], verdict="rejected"), 403)
    problem(await _verify(client, devices(auth), pills["id"], verdict="verified"), 403)
    problem(await _verify(client, devices(auth), rice["id"], verdict="verified"), 403)
    problem(await _verify(client, coordinator, pills["id"], verdict="verified"), 403)
    assert (await get_lot(client, coordinator, pills["id"]))["verification"] == "pending"

    r = await _verify(client, pharmacy, pills["id"], verdict="rejected", notes="过期")
    assert r.status_code == 200 and r.json()["verification"] == "rejected" and r.json()["quantity_available"] == 0


async def test_bad_verdicts_are_422_and_change_nothing(
    client: httpx.AsyncClient, auth: TokenFactory, offer: dict[str, Any]
) -> None:
    lot = offer["lots"][0]
    for body in (
        {"verdict": "reclassified"},
        {"verdict": "verified", "item_code": KN95},
        {"verdict": "reclassified", "item_code": "ppe.mask.unknown_thing"},
        {"verdict": "approved"},
    ):
        problem(await _verify(client, devices(auth), lot["id"], **body), 422)
    after = await get_lot(client, auth("coordinator"), lot["id"])
    assert after["verification"] == "pending" and after["item_code"] == SURGICAL
    assert after["version"] == lot["version"]


async def test_reclassified_to_an_item_another_group_checks_waits_for_it(
    client: httpx.AsyncClient, auth: TokenFactory, offer: dict[str, Any]
) -> None:
    lot = offer["lots"][1]
    r = await _verify(client, devices(auth), lot["id"], verdict="reclassified", item_code=IBUPROFEN)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["item_code"], body["verification"], body["check_by"]) == (IBUPROFEN, "pending", "pharmacy")
    pharmacy = auth("working_group", org="wg", group="pharmacy")
    r = await _verify(client, pharmacy, lot["id"], verdict="verified")
    assert r.status_code == 200 and r.json()["quantity_available"] == 500


async def test_the_offer_verdict_still_covers_every_lot(
    client: httpx.AsyncClient, auth: TokenFactory, offer: dict[str, Any]
) -> None:
    _, second, _, _ = offer["lots"]
    r = await client.post(f"/v1/offers/{offer['id']}/verification", headers=devices(auth), json={"verdict": "verified"})
    assert r.status_code == 200, r.text
    assert [lot["verification"] for lot in r.json()["lots"][:2]] == ["verified", "verified"]
    problem(await _verify(client, devices(auth), second["id"], verdict="rejected"), 409, "nothing-to-verify")
