"""Relief operations, special funds, pledges into them and payments received, made through the API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from reliefhub.gateway import Gateway
from shared.events import CloudEvent
from tests.helpers.auth import TokenFactory
from tests.helpers.streams import consume, runtime, xadd_event
from tests.helpers.supply import create_donor
from tests.helpers.waiting import eventually

LOGISTICS_STREAM = "logistics.events"


def operation_body(**over: Any) -> dict[str, Any]:
    """A Shanghai relief operation for spring 2022; `over` replaces or adds fields."""
    return {
        "name": "上海抗疫专项行动",
        "region_code": "31",
        "starts_at": "2022-03-28T00:00:00+08:00",
        "ends_at": "2022-06-30T00:00:00+08:00",
        **over,
    }


async def create_operation(client: httpx.AsyncClient, auth: TokenFactory, **over: Any) -> dict[str, Any]:
    """`POST /v1/operations` by a coordinator, answered 201; the operation."""
    r = await client.post("/v1/operations", headers=auth("coordinator"), json=operation_body(**over))
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def fund_body(**over: Any) -> dict[str, Any]:
    """An unrestricted CNY fund managed by the hub with a 5 % overhead share; `over` replaces or adds fields."""
    return {"name": "抗疫专项基金", "managed_by": "hub", "currency": "CNY", "overhead_share": 0.05, **over}


async def create_fund(client: httpx.AsyncClient, auth: TokenFactory, **over: Any) -> dict[str, Any]:
    """`POST /v1/funds` by a coordinator, answered 201; the fund."""
    r = await client.post("/v1/funds", headers=auth("coordinator"), json=fund_body(**over))
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def get_fund(client: httpx.AsyncClient, auth: TokenFactory, fund_id: str) -> dict[str, Any]:
    r = await client.get(f"/v1/funds/{fund_id}", headers=auth("coordinator"))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def pledge_into(
    client: httpx.AsyncClient, auth: TokenFactory, fund_id: str | None, amount: int, **over: Any
) -> dict[str, Any]:
    """A company's cash pledge of `amount` fen (into fund `fund_id` when given), answered 201, once logistics
    has booked it; `over` replaces or adds offer fields (e.g. `restrictions`). The offer."""
    company = auth("donor", org=f"company-{uuid.uuid4().hex[:8]}")
    donor = await create_donor(client, company, **over.pop("donor", {}))
    body = {"donor_id": donor["id"], "kind": "cash", "amount": amount, "currency": "CNY", **over}
    if fund_id is not None:
        body["fund_id"] = fund_id

    async def pledged() -> httpx.Response | None:
        r = await client.post("/v1/offers", headers=company, json=body)
        if r.status_code == 422 and str(r.json()["type"]).endswith("unknown-fund"):
            return None  # supply has not heard of the new fund yet
        return r

    r = await eventually(pledged)
    assert r.status_code == 201, r.text
    offer: dict[str, Any] = r.json()
    coordinator = auth("coordinator")

    async def booked() -> bool:
        r = await client.get(f"/v1/ledger?kind=pledged&offer_id={offer['id']}", headers=coordinator)
        assert r.status_code == 200, r.text
        return bool(r.json()["items"]) or None  # type: ignore[return-value]

    await eventually(booked)
    return offer


async def record_payment(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    offer_id: str,
    amount: int,
    *,
    reference: str | None = None,
    received_at: str = "2022-04-02T10:00:00+08:00",
    wait: bool = True,
) -> dict[str, Any]:
    """`POST /v1/offers/{offer_id}/payments` by a coordinator, answered 201 (or 200 when replayed); the payment.
    With `wait`, returns once logistics has booked it into the ledger."""
    body = {"amount": amount, "received_at": received_at, "reference": reference or f"bank-{uuid.uuid4().hex[:10]}"}
    coordinator = auth("coordinator")
    r = await client.post(f"/v1/offers/{offer_id}/payments", headers=coordinator, json=body)
    assert r.status_code in (200, 201), r.text
    payment: dict[str, Any] = r.json()
    if wait:

        async def booked() -> bool:
            r = await client.get(f"/v1/ledger?kind=payment_received&offer_id={offer_id}", headers=coordinator)
            assert r.status_code == 200, r.text
            refs = [e.get("memo") for e in r.json()["items"]]
            return (payment["reference"] in refs) or None  # type: ignore[return-value]

        await eventually(booked)
    return payment


# --- logistics' operation and fund events, put on its stream by hand ------------------------------------------


async def announce(gateway: Gateway, type_: str, data: dict[str, Any]) -> None:
    """Put a logistics event on its stream as its relay would, and let needs and supply consume it."""
    envelope = CloudEvent(source="/reliefhub/logistics", type=type_, subject=str(data["id"]), data=data)
    await xadd_event(runtime(gateway, "logistics").redis, LOGISTICS_STREAM, envelope.model_dump(mode="json"))
    for service in ("needs", "supply"):
        await consume(gateway, service)


async def announce_operation(
    gateway: Gateway, operation_id: str | None = None, *, version: int = 1, **over: Any
) -> dict[str, Any]:
    """`reliefhub.logistics.operation.created` (version 1) or `.updated` of an active Shanghai operation, as
    needs and supply see it; `over` replaces or adds fields (e.g. `status="closed"`). Its data."""
    data = {
        "id": operation_id or str(uuid.uuid4()),
        "status": "active",
        "version": version,
        "created_at": "2022-03-28T00:00:00+08:00",
        **operation_body(),
        **over,
    }
    verb = "created" if version == 1 else "updated"
    await announce(gateway, f"reliefhub.logistics.operation.{verb}", data)
    return data


async def announce_fund(
    gateway: Gateway, fund_id: str | None = None, *, version: int = 1, **over: Any
) -> dict[str, Any]:
    """`reliefhub.logistics.fund.created` (version 1) or `.updated` of `fund_body(**over)`, as supply sees
    it. Its data."""
    data = {
        "id": fund_id or str(uuid.uuid4()),
        "operation_id": None,
        "restrictions": {},
        "spend_pledged": False,
        "public": True,
        "version": version,
        **fund_body(**over),
    }
    verb = "created" if version == 1 else "updated"
    await announce(gateway, f"reliefhub.logistics.fund.{verb}", data)
    return data
