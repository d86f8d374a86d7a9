"""Money received against cash pledges: `POST/GET /v1/offers/{id}/payments`, the offer's `amount_received`, the
`reliefhub.supply.payment.recorded` event, and who may record and read payments."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers.auth import TokenFactory
from tests.helpers.funds import announce_fund, record_payment
from tests.helpers.problems import assert_problem, error_locs
from tests.helpers.streams import publish, read_events
from tests.helpers.supply import create_donor, create_offer, create_pledge

STREAM = "supply.events"
DONOR_ORG = "org-heart"


async def pledge(client: httpx.AsyncClient, auth: TokenFactory, amount: int = 100_000, **over: Any) -> dict[str, Any]:
    headers = auth("donor", org=DONOR_ORG)
    donor = await create_donor(client, headers, name="某心脏基金会", kind="foundation")
    return await create_pledge(client, headers, donor["id"], amount, **over)


async def get_offer(client: httpx.AsyncClient, auth: TokenFactory, offer_id: str) -> httpx.Response:
    r = await client.get(f"/v1/offers/{offer_id}", headers=auth("coordinator"))
    assert r.status_code == 200, r.text
    return r


async def payment_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM supply.payment"))).scalar_one())


async def test_payments_add_up_to_amount_received_and_are_published(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any, redis: Redis
) -> None:
    fund = await announce_fund(gateway)
    offer = await pledge(client, auth, 100_000, fund_id=fund["id"])
    assert offer["amount_received"] == 0 and offer["overpaid"] is False
    before = (await get_offer(client, auth, offer["id"])).headers["etag"]

    first = await record_payment(
        client,
        auth,
        offer["id"],
        60_000,
        reference="ICBC-20220402-001",
        received_at="2022-04-02T10:00:00+08:00",
        wait=False,
    )
    assert first["amount"] == 60_000 and first["currency"] == "CNY" and first["offer_id"] == offer["id"]
    assert first["reference"] == "ICBC-20220402-001"
    seen = await get_offer(client, auth, offer["id"])
    assert seen.json()["amount_received"] == 60_000 and seen.json()["overpaid"] is False
    assert seen.headers["etag"] != before  # the offer changed: a conditional GET must not answer 304

    # More than pledged arrived: recorded all the same, the pledge flagged.
    second = await record_payment(client, auth, offer["id"], 50_000, reference="ICBC-20220405-017", wait=False)
    seen = (await get_offer(client, auth, offer["id"])).json()
    assert seen["amount_received"] == 110_000 and seen["overpaid"] is True
    listed = await client.get(f"/v1/offers?kind=cash&fund_id={fund['id']}", headers=auth("coordinator"))
    assert [(o["id"], o["amount_received"]) for o in listed.json()["items"]] == [(offer["id"], 110_000)]

    r = await client.get(f"/v1/offers/{offer['id']}/payments", headers=auth("donor", org=DONOR_ORG))
    assert r.status_code == 200, r.text
    assert [p["id"] for p in r.json()["items"]] == [second["id"], first["id"]]  # newest first
    page = await client.get(f"/v1/offers/{offer['id']}/payments?limit=1", headers=auth("coordinator"))
    assert [p["id"] for p in page.json()["items"]] == [second["id"]] and page.json()["next_cursor"]

    await publish(gateway, "supply")
    recorded = [e for e in await read_events(redis, STREAM) if e["type"] == "reliefhub.supply.payment.recorded"]
    assert [e["subject"] for e in recorded] == [first["id"], second["id"]]
    data = recorded[0]["data"]
    assert {k: data[k] for k in ("id", "offer_id", "amount", "currency", "reference", "fund_id")} == {
        "id": first["id"],
        "offer_id": offer["id"],
        "amount": 60_000,
        "currency": "CNY",
        "reference": "ICBC-20220402-001",
        "fund_id": fund["id"],
    }
    assert data["received_at"].startswith("2022-04-02T02:00:00")  # 10:00 in Beijing, in UTC
    assert recorded[1]["data"]["amount_received"] == 110_000 and recorded[1]["data"]["pledged"] == 100_000
    assert recorded[0]["orgs"] == [DONOR_ORG]


async def test_a_retried_payment_is_recorded_once(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any, redis: Redis, engine: AsyncEngine
) -> None:
    offer = await pledge(client, auth)
    url = f"/v1/offers/{offer['id']}/payments"
    body = {"amount": 30_000, "received_at": "2022-04-02T10:00:00+08:00", "reference": "ABC-9"}
    keyed = auth("coordinator", idempotency_key="pay-abc-9")
    first = await client.post(url, headers=keyed, json=body)
    assert first.status_code == 201, first.text
    replayed = await client.post(url, headers=keyed, json=body)
    assert replayed.status_code == 201 and replayed.headers.get("idempotent-replayed") == "true"
    assert replayed.json() == first.json()
    # The same reference again, without a key (the statement imported twice): the payment already recorded.
    again = await client.post(url, headers=auth("coordinator"), json=body)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    # The same reference for another amount is a conflict, and records nothing.
    assert_problem(
        await client.post(url, headers=auth("coordinator"), json={**body, "amount": 31_000}),
        409,
        "payment-reference-reused",
    )
    assert await payment_rows(engine) == 1
    assert (await get_offer(client, auth, offer["id"])).json()["amount_received"] == 30_000
    await publish(gateway, "supply")
    types = [e["type"] for e in await read_events(redis, STREAM)]
    assert types.count("reliefhub.supply.payment.recorded") == 1


async def test_only_cash_pledges_take_payments_and_bad_ones_write_nothing(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine
) -> None:
    headers = auth("donor", org=DONOR_ORG)
    donor = await create_donor(client, headers)
    in_kind = await create_offer(client, headers, donor["id"])
    good = {"amount": 1_000, "received_at": "2022-04-02T10:00:00+08:00", "reference": "R-1"}
    coordinator = auth("coordinator")
    assert_problem(
        await client.post(f"/v1/offers/{in_kind['id']}/payments", headers=coordinator, json=good),
        409,
        "not-a-cash-pledge",
    )
    assert in_kind["amount_received"] is None

    offer = await pledge(client, auth)
    url = f"/v1/offers/{offer['id']}/payments"
    for wrong, loc in (
        ({"amount": 0}, ["body", "amount"]),
        ({"amount": -5}, ["body", "amount"]),
        ({"received_at": "2999-01-01T00:00:00Z"}, ["body", "received_at"]),
        ({"received_at": "2022-04-02T10:00:00"}, ["body", "received_at"]),  # no offset
        ({"reference": "  "}, ["body", "reference"]),
        ({"currency": "USD"}, ["body", "currency"]),
    ):
        body = assert_problem(await client.post(url, headers=coordinator, json={**good, **wrong}), 422)
        assert loc in error_locs(body), (wrong, body)
    assert_problem(
        await client.post("/v1/offers/00000000-0000-4000-8000-000000000009/payments", headers=coordinator, json=good),
        404,
        "offer-not-found",
    )
    assert await payment_rows(engine) == 0
    assert (await get_offer(client, auth, offer["id"])).json()["amount_received"] == 0


async def test_coordinators_and_the_fundraising_group_record_payments(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine
) -> None:
    offer = await pledge(client, auth)
    url = f"/v1/offers/{offer['id']}/payments"

    def body(reference: str) -> dict[str, Any]:
        return {"amount": 1_000, "received_at": "2022-04-02T10:00:00+08:00", "reference": reference}

    # The donor's own organisation does not book money it says it sent; nor do other working groups.
    assert_problem(await client.post(url, headers=auth("donor", org=DONOR_ORG), json=body("d")), 403)
    assert_problem(await client.post(url, headers=auth("frontline"), json=body("f")), 403)
    assert_problem(
        await client.post(url, headers=auth("working_group", org="org-g", group="procurement"), json=body("p")),
        403,
        "not-fundraiser",
    )
    assert_problem(await client.post(url, headers=auth("working_group", org="org-g"), json=body("n")), 403)
    assert await payment_rows(engine) == 0
    fundraiser = auth("working_group", org="org-charity", group="fundraising", sub="finance-1")
    made = await client.post(url, headers=fundraiser, json=body("wg-1"))
    assert made.status_code == 201, made.text
    assert made.json()["recorded_by"] == "finance-1"
    assert (await client.post(url, headers=auth("coordinator"), json=body("c-1"))).status_code == 201

    # Reading: the donor's organisation, coordinators and the fundraising group; not another donor.
    for headers in (auth("donor", org=DONOR_ORG), auth("coordinator"), fundraiser):
        r = await client.get(url, headers=headers)
        assert r.status_code == 200 and len(r.json()["items"]) == 2, r.text
    assert_problem(await client.get(url, headers=auth("donor", org="org-other")), 403)
    assert_problem(await client.get(url, headers=auth("working_group", org="org-g", group="customs")), 403)


async def test_concurrent_copies_of_a_payment_record_one(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine
) -> None:
    offer = await pledge(client, auth)
    url = f"/v1/offers/{offer['id']}/payments"
    body = {"amount": 12_345, "received_at": "2022-04-02T10:00:00+08:00", "reference": "BOC-77"}
    answers = await asyncio.gather(*(client.post(url, headers=auth("coordinator"), json=body) for _ in range(5)))
    assert sorted(r.status_code for r in answers) == [200, 200, 200, 200, 201], [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert await payment_rows(engine) == 1
    assert (await get_offer(client, auth, offer["id"])).json()["amount_received"] == 12_345
