"""Events on `supply.events`: CloudEvents envelopes, published only for committed changes, no private data."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

from redis.asyncio import Redis
from sqlalchemy import text

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import CONCENTRATOR, RICE
from tests.helpers.problems import assert_problem
from tests.helpers.streams import publish, read_entries, read_events, run_job
from tests.helpers.supply import create_donor, create_offer, reservable_lot, reserve

STREAM = "supply.events"
CONTACT = {"name": "张女士", "phone": "+86 137 5555 0101", "email": "zhang@example.cn"}


async def test_supply_events_flow(client, auth: TokenFactory, gateway, redis: Redis) -> None:
    donor_headers = auth("donor", org="org-medtech")
    coordinator = auth("coordinator", sub="matching-engine")
    donor = await create_donor(client, donor_headers, name="某医疗器械公司", contact=CONTACT)
    offer = await create_offer(
        client,
        donor_headers,
        donor["id"],
        lots=[{"item_code": CONCENTRATOR, "quantity": 10}, {"item_code": RICE, "quantity": 5}],
        restrictions={"region_codes": ["31"]},
    )
    code = offer["tracking_code"]
    device_lot, rice_lot = offer["lots"]
    verdict = await client.post(
        f"/v1/offers/{offer['id']}/verification",
        headers=auth("working_group", org="wg", group="medical_device", sub="reviewer-9"),
        json={"verdict": "verified", "notes": "ok"},
    )
    assert verdict.status_code == 200, verdict.text
    held = (await reserve(client, coordinator, device_lot["id"], 4, "proposal-e1")).json()
    # Refused and replayed requests publish nothing.
    assert_problem(await reserve(client, coordinator, device_lot["id"], 7, "proposal-e2"), 409, "over-allocation")
    assert (await reserve(client, coordinator, device_lot["id"], 4, "proposal-e1")).status_code == 200
    assert (await client.delete(f"/v1/reservations/{held['id']}", headers=coordinator)).status_code == 204
    assert (await client.delete(f"/v1/reservations/{held['id']}", headers=coordinator)).status_code == 204
    assert_problem(await client.post("/v1/donors", headers=donor_headers, json={"name": "X", "kind": "x"}), 422)

    assert await publish(gateway, "supply") == 5
    assert await publish(gateway, "supply") == 0
    events = await read_entries(redis, STREAM, "tests-supply")
    types = [env["type"] for _, env in events]
    assert types == [
        "reliefhub.supply.donor.created",
        "reliefhub.supply.offer.created",
        "reliefhub.supply.lot.verified",
        "reliefhub.supply.reservation.created",
        "reliefhub.supply.reservation.released",
    ]

    for fields, env in events:
        assert fields["type"] == env["type"]
        assert env["specversion"] == "1.0"
        assert env["source"] == "/reliefhub/supply"
        assert env["datacontenttype"] == "application/json"
        assert datetime.fromisoformat(env["time"]).tzinfo is not None
        uuid.UUID(env["id"])
        assert isinstance(env["data"], dict)
        # Never the tracking code, never the donor's contact.
        assert code not in fields["event"]
        for secret in CONTACT.values():
            assert secret not in fields["event"]
    assert len({env["id"] for _, env in events}) == len(events)

    donor_ev, offer_ev, verified_ev, created_ev, released_ev = (env for _, env in events)
    assert donor_ev["subject"] == donor["id"]
    assert donor_ev["data"] == {
        "id": donor["id"],
        "org": "org-medtech",
        "name": "某医疗器械公司",
        "kind": "company",
        "version": 1,
        "public_name": None,
    }
    assert "contact" not in donor_ev["data"]

    assert offer_ev["subject"] == offer["id"]
    data = offer_ev["data"]
    assert data["tracking_ref"] == hashlib.sha256(code.encode()).hexdigest()
    assert len(data["tracking_ref"]) == 64 and "tracking_code" not in data
    assert data["donor_id"] == donor["id"] and data["kind"] == "in_kind" and data["status"] == "open"
    assert data["restrictions"]["region_codes"] == ["31"]
    assert [(lot["id"], lot["verification"], lot["check_by"]) for lot in data["lots"]] == [
        (device_lot["id"], "pending", "medical_device"),
        (rice_lot["id"], "not_required", None),
    ]

    assert verified_ev["subject"] == offer["id"]
    assert verified_ev["data"]["group"] == "medical_device" and verified_ev["data"]["verdict"] == "verified"
    assert verified_ev["data"]["notes"] == "ok"
    assert [lot["id"] for lot in verified_ev["data"]["lots"]] == [device_lot["id"]]
    assert verified_ev["data"]["lots"][0]["verification"] == "verified"

    assert created_ev["subject"] == held["id"]
    assert created_ev["data"] == {
        "id": held["id"],
        "lot_id": device_lot["id"],
        "offer_id": offer["id"],
        "item_code": CONCENTRATOR,
        "quantity": 4,
        "reference": "proposal-e1",
        "status": "active",
        "expires_at": None,
        "lot_quantity": 10,
        "lot_quantity_reserved": 4,
        "lot_version": 3,  # created 1, verified 2, reserved 3: orders the lot's events for consumers
    }
    assert released_ev["subject"] == held["id"]
    assert released_ev["data"]["lot_version"] == 4
    assert released_ev["data"]["status"] == "released"
    assert released_ev["data"]["quantity"] == 4 and released_ev["data"]["lot_quantity_reserved"] == 0


async def test_offer_lifecycle_events(client, auth: TokenFactory, gateway, redis: Redis) -> None:
    donor_headers = auth("donor", org="org-grain")
    donor = await create_donor(client, donor_headers)
    offer = await create_offer(client, donor_headers, donor["id"])
    patched = await client.patch(
        f"/v1/offers/{offer['id']}",
        headers={**donor_headers, "If-Match": '"1"'},
        json={"restrictions": {"site_kinds": ["shelter"]}},
    )
    assert patched.status_code == 200, patched.text
    withdrawn = await client.post(f"/v1/offers/{offer['id']}/withdraw", headers=donor_headers, json={"reason": "改捐"})
    assert withdrawn.status_code == 200, withdrawn.text
    assert_problem(await client.post(f"/v1/offers/{offer['id']}/withdraw", headers=donor_headers), 409)

    await publish(gateway, "supply")
    envs = await read_events(redis, STREAM, "tests-offers")
    assert [e["type"] for e in envs] == [
        "reliefhub.supply.donor.created",
        "reliefhub.supply.offer.created",
        "reliefhub.supply.offer.updated",
        "reliefhub.supply.offer.withdrawn",
    ]
    created, updated, gone = envs[1:]
    ref = hashlib.sha256(offer["tracking_code"].encode()).hexdigest()
    assert created["data"]["tracking_ref"] == updated["data"]["tracking_ref"] == gone["data"]["tracking_ref"] == ref
    assert [e["data"]["version"] for e in envs[1:]] == [1, 2, 3]
    assert updated["data"]["restrictions"]["site_kinds"] == ["shelter"]
    assert gone["data"]["status"] == "withdrawn" and gone["data"]["reason"] == "改捐"


async def test_expired_hold_publishes_expired_event(client, auth: TokenFactory, gateway, engine, redis: Redis) -> None:
    coordinator = auth("coordinator")
    lot = await reservable_lot(client, auth, 9)
    held = (await reserve(client, coordinator, lot["id"], 9, "hold-e", hold_seconds=30)).json()
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE supply.reservation SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": held["id"]},
        )
    assert await run_job(gateway, "supply", "expire-reservations") == 1

    await publish(gateway, "supply")
    envs = await read_events(redis, STREAM, "tests-expiry")
    assert [e["type"].rsplit(".", 2)[-2:] for e in envs][-2:] == [
        ["reservation", "created"],
        ["reservation", "expired"],
    ]
    expired = envs[-1]["data"]
    assert expired["id"] == held["id"] and expired["status"] == "expired" and expired["lot_quantity_reserved"] == 0
