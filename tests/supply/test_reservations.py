"""Reservations: never beyond a lot's quantity, even under concurrency; idempotent by reference; released once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from shared.worker import run_job_once
from tests.helpers.auth import TokenFactory
from tests.helpers.problems import assert_problem
from tests.helpers.supply import get_lot, reservable_lot, reserve


@pytest.fixture
def coordinator(auth: TokenFactory) -> dict[str, str]:
    return auth("coordinator", sub="matching-engine")


async def test_reserve_and_read_back(client, auth: TokenFactory, coordinator) -> None:
    lot = await reservable_lot(client, auth, 50)
    resp = await reserve(client, coordinator, lot["id"], 20, "proposal-1")
    assert resp.status_code == 201, resp.text
    res = resp.json()
    assert resp.headers["location"] == f"/v1/reservations/{res['id']}"
    assert res["lot_id"] == lot["id"] and res["quantity"] == 20 and res["reference"] == "proposal-1"
    assert res["status"] == "active" and res["expires_at"] is None and res["released_at"] is None
    after = await get_lot(client, coordinator, lot["id"])
    assert after["quantity_reserved"] == 20 and after["quantity_available"] == 30
    assert after["version"] == lot["version"] + 1


async def test_concurrent_reservations_never_over_allocate(client, auth: TokenFactory, coordinator) -> None:
    lot = await reservable_lot(client, auth, 37)
    responses = await asyncio.gather(*(reserve(client, coordinator, lot["id"], 1, f"race-{i}") for i in range(100)))
    created = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code == 409]
    assert len(created) == 37, sorted({r.status_code for r in responses})
    assert len(refused) == 63
    for r in refused:
        assert_problem(r, 409, "over-allocation")
    assert len({r.json()["id"] for r in created}) == 37
    after = await get_lot(client, coordinator, lot["id"])
    assert after["quantity_reserved"] == 37 and after["quantity_available"] == 0
    assert_problem(await reserve(client, coordinator, lot["id"], 1), 409, "over-allocation")


async def test_over_allocation_names_what_is_left(client, auth: TokenFactory, coordinator) -> None:
    lot = await reservable_lot(client, auth, 10)
    assert (await reserve(client, coordinator, lot["id"], 7)).status_code == 201
    body = assert_problem(await reserve(client, coordinator, lot["id"], 4, "too-much"), 409, "over-allocation")
    assert "Only 3 of 10" in body["detail"]
    # The refused reference was not kept: it can be used again once it fits.
    resp = await reserve(client, coordinator, lot["id"], 3, "too-much")
    assert resp.status_code == 201, resp.text
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == 10
    assert_problem(await reserve(client, coordinator, lot["id"], 11), 409, "over-allocation")


async def test_same_reference_is_idempotent(client, auth: TokenFactory, coordinator) -> None:
    lot = await reservable_lot(client, auth, 40)
    first = await reserve(client, coordinator, lot["id"], 15, "proposal-7")
    second = await reserve(client, coordinator, lot["id"], 15, "proposal-7")
    assert first.status_code == 201, first.text
    assert second.status_code == 200, second.text
    assert second.json() == first.json()
    assert second.headers["location"] == f"/v1/reservations/{first.json()['id']}"
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == 15


async def test_same_reference_other_quantity_or_lot_is_409(client, auth: TokenFactory, coordinator) -> None:
    lot = await reservable_lot(client, auth, 40)
    other = await reservable_lot(client, auth, 40)
    assert (await reserve(client, coordinator, lot["id"], 15, "proposal-8")).status_code == 201
    assert_problem(await reserve(client, coordinator, lot["id"], 16, "proposal-8"), 409, "reference-reused")
    assert_problem(await reserve(client, coordinator, other["id"], 15, "proposal-8"), 409, "reference-reused")
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == 15
    assert (await get_lot(client, coordinator, other["id"]))["quantity_reserved"] == 0


async def test_concurrent_requests_with_one_reference_make_one_reservation(
    client, auth: TokenFactory, coordinator
) -> None:
    lot = await reservable_lot(client, auth, 100)
    responses = await asyncio.gather(*(reserve(client, coordinator, lot["id"], 6, "proposal-dup") for _ in range(20)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 19 + [201], codes
    assert len({r.json()["id"] for r in responses}) == 1
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == 6


async def test_release_returns_quantity_once(client, auth: TokenFactory, coordinator) -> None:
    lot = await reservable_lot(client, auth, 30)
    a = (await reserve(client, coordinator, lot["id"], 10, "a")).json()
    assert (await reserve(client, coordinator, lot["id"], 5, "b")).status_code == 201
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == 15

    resp = await client.delete(f"/v1/reservations/{a['id']}", headers=coordinator)
    assert resp.status_code == 204 and resp.content == b""
    after = await get_lot(client, coordinator, lot["id"])
    assert after["quantity_reserved"] == 5 and after["quantity_available"] == 25

    again = await client.delete(f"/v1/reservations/{a['id']}", headers=coordinator)
    assert again.status_code == 204
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == 5

    # The released reservation keeps its reference; replaying it returns it, released.
    replay = await reserve(client, coordinator, lot["id"], 10, "a")
    assert replay.status_code == 200
    assert replay.json()["id"] == a["id"] and replay.json()["status"] == "released"
    assert replay.json()["released_at"] is not None
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == 5


async def test_concurrent_releases_of_one_reservation_release_once(client, auth: TokenFactory, coordinator) -> None:
    lot = await reservable_lot(client, auth, 30)
    keep = await reserve(client, coordinator, lot["id"], 8)
    assert keep.status_code == 201, keep.text
    drop = (await reserve(client, coordinator, lot["id"], 12)).json()
    responses = await asyncio.gather(
        *(client.delete(f"/v1/reservations/{drop['id']}", headers=coordinator) for _ in range(10))
    )
    assert [r.status_code for r in responses] == [204] * 10
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == keep.json()["quantity"]


async def test_release_unknown_or_malformed(client, auth: TokenFactory, coordinator) -> None:
    assert_problem(
        await client.delete(f"/v1/reservations/{uuid.uuid4()}", headers=coordinator), 404, "reservation-not-found"
    )
    assert_problem(await client.delete("/v1/reservations/abc", headers=coordinator), 422, "invalid-request")


async def test_reserve_unknown_or_malformed_lot(client, auth: TokenFactory, coordinator) -> None:
    assert_problem(await reserve(client, coordinator, str(uuid.uuid4()), 1), 404, "lot-not-found")
    assert_problem(await reserve(client, coordinator, "lot-1", 1), 422, "invalid-request")


@pytest.mark.parametrize(
    "body",
    [
        {"quantity": 0, "reference": "r"},
        {"quantity": -1, "reference": "r"},
        {"quantity": 1.5, "reference": "r"},
        {"quantity": 1},
        {"quantity": 1, "reference": ""},
        {"quantity": 1, "reference": "r" * 201},
        {"quantity": 1, "reference": "r", "hold_seconds": 0},
        {"quantity": 1, "reference": "r", "hold_seconds": 31 * 86400},
        {"quantity": 1, "reference": "r", "lot_id": "x"},
    ],
)
async def test_invalid_reservation_is_422(client, auth: TokenFactory, coordinator, body: dict) -> None:
    lot = await reservable_lot(client, auth, 5)
    resp = await client.post(f"/v1/lots/{lot['id']}/reservations", headers=coordinator, json=body)
    assert_problem(resp, 422, "invalid-request")
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == 0


@pytest.mark.parametrize("role", ["donor", "frontline", "working_group", "logistics"])
async def test_only_coordinators_reserve(client, auth: TokenFactory, coordinator, role: str) -> None:
    lot = await reservable_lot(client, auth, 5)
    headers = auth(role, org="org-grain", group="medical_device")
    assert_problem(await reserve(client, headers, lot["id"], 1), 403, "forbidden")
    held = await reserve(client, coordinator, lot["id"], 1)
    assert held.status_code == 201, held.text
    assert_problem(await client.delete(f"/v1/reservations/{held.json()['id']}", headers=headers), 403, "forbidden")
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == 1


def matching(auth: TokenFactory) -> dict[str, str]:
    """The matching service's token (shared.http): admin, org "reliefhub", sub "service:matching"."""
    return auth("admin", org="reliefhub", sub="service:matching")


async def test_a_proposal_reference_is_for_the_matching_service_alone(client, auth: TokenFactory, coordinator) -> None:
    lot = await reservable_lot(client, auth, 10)
    proposal_id = uuid.uuid4()
    # Every spelling Python's UUID parser (and so matching's projection) reads as that proposal.
    spellings = [str(proposal_id), str(proposal_id).upper(), proposal_id.hex, f"urn:uuid:{proposal_id}"]
    impostors = {
        "coordinator": coordinator,
        "admin": auth("admin", org="org-hub"),
        "admin of another org with matching's sub": auth("admin", org="org-x", sub="service:matching"),
        "coordinator with matching's org and sub": auth("coordinator", org="reliefhub", sub="service:matching"),
    }
    for who, headers in impostors.items():
        for reference in spellings:
            body = assert_problem(await reserve(client, headers, lot["id"], 4, reference), 403, "proposal-reference")
            assert "accept the proposal" in body["detail"], who
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == 0

    made = await reserve(client, matching(auth), lot["id"], 4, str(proposal_id))
    assert made.status_code == 201, made.text
    assert (made.json()["created_by_org"], made.json()["created_by"]) == ("reliefhub", "service:matching")
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == 4
    # A hand hold under a reference of one's own still works.
    assert (await reserve(client, coordinator, lot["id"], 2, f"proposal-{proposal_id}")).status_code == 201


async def test_a_repeated_reference_answers_only_the_principal_that_made_it(client, auth: TokenFactory) -> None:
    lot = await reservable_lot(client, auth, 10)
    alice = auth("coordinator", org="org-hub", sub="alice")
    first = await reserve(client, alice, lot["id"], 4, "hold-1")
    assert first.status_code == 201, first.text
    assert (first.json()["created_by_org"], first.json()["created_by"]) == ("org-hub", "alice")
    # The same sub in another organisation is someone else; so is another subject of the same organisation.
    for other in (
        auth("coordinator", org="org-x", sub="alice"),
        auth("admin", org="org-x", sub="alice"),
        auth("coordinator", org="org-hub", sub="bob"),
    ):
        body = assert_problem(await reserve(client, other, lot["id"], 4, "hold-1"), 409, "reference-taken")
        assert "4" not in body["detail"] and lot["id"] not in body["detail"]  # nothing of the hold is told
    again = await reserve(client, alice, lot["id"], 4, "hold-1")
    assert again.status_code == 200 and again.json() == first.json()
    assert_problem(await reserve(client, alice, lot["id"], 5, "hold-1"), 409, "reference-reused")
    assert (await get_lot(client, alice, lot["id"]))["quantity_reserved"] == 4


async def test_a_proposal_reservation_is_given_back_by_its_shipment_not_by_hand(
    client, auth: TokenFactory, coordinator
) -> None:
    lot = await reservable_lot(client, auth, 10)
    made = await reserve(client, matching(auth), lot["id"], 6, str(uuid.uuid4()))
    assert made.status_code == 201, made.text
    url = f"/v1/reservations/{made.json()['id']}"
    for headers in (
        coordinator,
        auth("admin", org="org-hub"),
        auth("admin", org="org-x", sub="service:matching"),
        auth("coordinator", org="reliefhub", sub="service:matching-2"),
    ):
        body = assert_problem(await client.delete(url, headers=headers), 409, "reservation-for-proposal")
        assert "shipment" in body["detail"]
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == 6
    # Matching itself may.
    assert (await client.delete(url, headers=matching(auth))).status_code == 204
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == 0


async def test_a_hold_whose_maker_is_unknown_is_released_by_staff(
    client, auth: TokenFactory, engine, coordinator
) -> None:
    """Rows from before the maker's organisation was recorded: nobody is their maker any more."""
    lot = await reservable_lot(client, auth, 10)
    held = (await reserve(client, coordinator, lot["id"], 3, "old-hold")).json()
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE supply.reservation SET created_by_org = NULL WHERE id = :id"), {"id": held["id"]}
        )
    assert_problem(await reserve(client, coordinator, lot["id"], 3, "old-hold"), 409, "reference-taken")
    other = auth("coordinator", org="org-elsewhere", sub="carol")
    assert (await client.delete(f"/v1/reservations/{held['id']}", headers=other)).status_code == 204
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == 0


async def test_reserving_needs_a_token(client, auth: TokenFactory, coordinator) -> None:
    lot = await reservable_lot(client, auth, 5)
    assert_problem(await reserve(client, {}, lot["id"], 1), 401, "unauthorized")


# --- expiry ---------------------------------------------------------------------------------------------


async def test_expired_hold_is_released_by_the_job(client, auth: TokenFactory, gateway, engine, coordinator) -> None:
    rt = gateway.apps["supply"].state.runtime
    job = next(j for j in rt.spec.jobs if j.name == "expire-reservations")
    lot = await reservable_lot(client, auth, 20)

    resp = await reserve(client, coordinator, lot["id"], 7, "hold-short", hold_seconds=600)
    assert resp.status_code == 201, resp.text
    short = resp.json()
    created_at = datetime.fromisoformat(short["created_at"])
    assert datetime.fromisoformat(short["expires_at"]) - created_at == timedelta(seconds=600)
    long_hold = (await reserve(client, coordinator, lot["id"], 4, "hold-long", hold_seconds=600)).json()
    no_hold = (await reserve(client, coordinator, lot["id"], 2, "no-hold")).json()
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == 13

    # Nothing has run out yet.
    assert await run_job_once(rt, job) == 0
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == 13

    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE supply.reservation SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": short["id"]},
        )
    assert await run_job_once(rt, job) == 1
    after = await get_lot(client, coordinator, lot["id"])
    assert after["quantity_reserved"] == 6 and after["quantity_available"] == 14

    replay = await reserve(client, coordinator, lot["id"], 7, "hold-short", hold_seconds=600)
    assert replay.status_code == 200
    assert replay.json()["id"] == short["id"]
    assert replay.json()["status"] == "expired" and replay.json()["released_at"] is not None
    for other, ref, qty in ((long_hold, "hold-long", 4), (no_hold, "no-hold", 2)):
        still = await reserve(client, coordinator, lot["id"], qty, ref)
        assert still.json()["id"] == other["id"] and still.json()["status"] == "active"

    # Running again, or releasing the expired hold by hand, gives nothing back twice.
    assert await run_job_once(rt, job) == 0
    assert (await client.delete(f"/v1/reservations/{short['id']}", headers=coordinator)).status_code == 204
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == 6


async def test_released_hold_is_not_expired_again(client, auth: TokenFactory, gateway, engine, coordinator) -> None:
    rt = gateway.apps["supply"].state.runtime
    job = next(j for j in rt.spec.jobs if j.name == "expire-reservations")
    lot = await reservable_lot(client, auth, 20)
    keep = await reserve(client, coordinator, lot["id"], 5)
    assert keep.status_code == 201, keep.text
    hold = (await reserve(client, coordinator, lot["id"], 3, hold_seconds=60)).json()
    assert (await client.delete(f"/v1/reservations/{hold['id']}", headers=coordinator)).status_code == 204
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE supply.reservation SET expires_at = now() - interval '1 hour' WHERE id = :id"),
            {"id": hold["id"]},
        )
    assert await run_job_once(rt, job) == 0
    assert (await get_lot(client, coordinator, lot["id"]))["quantity_reserved"] == keep.json()["quantity"]


async def test_expired_lot_cannot_be_reserved(client, auth: TokenFactory, engine, coordinator) -> None:
    lot = await reservable_lot(client, auth, 20, expires_at="2099-01-01T00:00:00Z")
    assert (await reserve(client, coordinator, lot["id"], 5)).status_code == 201
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE supply.lot SET expires_at = now() - interval '1 minute' WHERE id = :id"), {"id": lot["id"]}
        )
    body = assert_problem(await reserve(client, coordinator, lot["id"], 1), 409, "lot-unavailable")
    assert "expired" in body["detail"]
    after = await get_lot(client, coordinator, lot["id"])
    assert after["quantity_reserved"] == 5
    assert after["quantity_available"] == 0
