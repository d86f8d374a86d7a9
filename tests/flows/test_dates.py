"""Every timestamp a request carries, in a body or a query, lies between 1900-01-01 and 9000-01-01 UTC: outside
(0001-01-01T00:00:00+01:00 is year 0 in UTC, 9999-12-31T23:59:59-23:59 year 10000) it is a 422 naming the
field, and nothing is written; the bounds themselves are taken."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import WATER
from tests.helpers.needs import create_site, need_body
from tests.helpers.problems import assert_problem
from tests.helpers.supply import create_donor

pytestmark = pytest.mark.usefixtures("redis")

OUT_OF_RANGE = [
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-23:59",
    "1899-12-31T23:59:59Z",
    "1900-01-01T07:59:59+08:00",
    "9000-01-01T00:00:01Z",
]


@pytest.fixture
def coordinator(auth: TokenFactory) -> dict[str, str]:
    return auth("coordinator", org="org-hub")


async def created(client: httpx.AsyncClient, headers: dict[str, str], path: str, body: dict[str, Any]) -> Any:
    r = await client.post(path, headers=headers, json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def site(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    return str((await create_site(client, headers))["id"])


def need(site_id: str, needed_by: str | None = None) -> dict[str, Any]:
    when = {} if needed_by is None else {"needed_by": needed_by}
    return need_body(site_id, {"item_code": WATER, "quantity": 5}, title="饮用水", **when)


def names(body: dict[str, Any], loc: list[Any]) -> bool:
    return any(e["loc"] == loc and "1900-01-01" in e["msg"] for e in body["errors"])


@pytest.mark.parametrize("when", OUT_OF_RANGE)
async def test_needed_by_out_of_range_is_refused_on_create_and_update(
    client: httpx.AsyncClient, coordinator: dict[str, str], when: str
) -> None:
    site_id = await site(client, coordinator)
    for key in (None, "k-dates"):
        headers = {**coordinator, **({"Idempotency-Key": key} if key else {})}
        body = assert_problem(await client.post("/v1/needs", headers=headers, json=need(site_id, when)), 422)
        assert names(body, ["body", "needed_by"]), body
    assert (await client.get("/v1/needs", headers=coordinator)).json()["items"] == []

    made = await created(client, coordinator, "/v1/needs", need(site_id))
    patch = await client.patch(
        f"/v1/needs/{made['id']}", headers={**coordinator, "If-Match": '"1"'}, json={"needed_by": when}
    )
    assert names(assert_problem(patch, 422), ["body", "needed_by"])
    again = (await client.get(f"/v1/needs/{made['id']}", headers=coordinator)).json()
    assert again["needed_by"] is None and again["version"] == made["version"]


async def test_the_bounds_themselves_are_taken(client: httpx.AsyncClient, coordinator: dict[str, str]) -> None:
    site_id = await site(client, coordinator)
    for when in ("1900-01-01T00:00:00Z", "1900-01-01T08:00:00+08:00", "9000-01-01T00:00:00Z"):
        made = await created(client, coordinator, "/v1/needs", need(site_id, when))
        assert made["needed_by"] is not None


@pytest.mark.parametrize("when", OUT_OF_RANGE[:2])
async def test_lot_dates_out_of_range_are_refused(
    client: httpx.AsyncClient, coordinator: dict[str, str], when: str
) -> None:
    donor = await create_donor(client, coordinator, name="某基金会", kind="foundation")
    for field in ("available_from", "expires_at"):
        lot = {"item_code": WATER, "quantity": 10, "region_code": "310101", field: when}
        body = {"donor_id": donor["id"], "kind": "in_kind", "lots": [lot]}
        r = await client.post("/v1/offers", headers={**coordinator, "Idempotency-Key": field}, json=body)
        assert names(assert_problem(r, 422), ["body", "lots", 0, field])
    assert (await client.get("/v1/offers", headers=coordinator)).json()["items"] == []


@pytest.mark.parametrize("when", OUT_OF_RANGE[:2])
async def test_impact_report_window_out_of_range_is_refused(
    client: httpx.AsyncClient, coordinator: dict[str, str], when: str
) -> None:
    for param in ("from", "to"):
        r = await client.get("/v1/reports/impact", headers=coordinator, params={param: when})
        assert names(assert_problem(r, 422), ["query", param])
    ok = await client.get("/v1/reports/impact", headers=coordinator, params={"from": "2020-01-01T00:00:00+08:00"})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("when", OUT_OF_RANGE[:2])
async def test_webhook_since_out_of_range_is_refused(client: httpx.AsyncClient, auth: TokenFactory, when: str) -> None:
    admin = auth("admin")
    endpoint = await created(
        client, admin, "/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/hook", "event_types": ["*"]}
    )
    listed = await client.get(
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", headers=admin, params={"since": when}
    )
    assert names(assert_problem(listed, 422), ["query", "since"])
    replay = await client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/replay",
        headers={**admin, "Idempotency-Key": "r"},
        json={"since": when},
    )
    assert names(assert_problem(replay, 422), ["body", "since"])


@pytest.mark.parametrize("when", OUT_OF_RANGE[:2])
async def test_a_shipment_legs_eta_out_of_range_is_refused(
    client: httpx.AsyncClient, coordinator: dict[str, str], when: str
) -> None:
    leg = {"origin": "浦东仓库", "destination": "瑞金医院", "eta": when}
    planned = await client.post(
        "/v1/shipments", headers=coordinator, json={"lines": [{"proposal_id": str(uuid.uuid4())}], "legs": [leg]}
    )
    assert names(assert_problem(planned, 422), ["body", "legs", 0, "eta"])
    patched = await client.patch(
        f"/v1/shipments/{uuid.uuid4()}", headers={**coordinator, "If-Match": '"1"'}, json={"legs": [leg]}
    )
    assert names(assert_problem(patched, 422), ["body", "legs", 0, "eta"])


async def test_an_import_row_with_a_date_out_of_range_is_rejected_by_row(
    client: httpx.AsyncClient, coordinator: dict[str, str]
) -> None:
    site_id = await site(client, coordinator)
    data = f"site_id,title,item_code,quantity,needed_by\n{site_id},水,{WATER},5,0001-01-01T00:00:00+01:00\n".encode()
    r = await client.post("/v1/needs/imports", headers=coordinator, files={"file": ("n.csv", data, "text/csv")})
    body = assert_problem(r, 422)
    assert body["type"].endswith("import-rejected")
    (row,) = body["report"]["rows_rejected"]
    assert row["row"] == 1 and "needed_by" in row["errors"][0] and "1900-01-01" in row["errors"][0]

    donor = await create_donor(client, coordinator, name="某基金会", kind="foundation")
    data = f"donor_id,item_code,quantity,expires_at\n{donor['id']},{WATER},5,9999-12-31T23:59:59-23:59\n".encode()
    r = await client.post("/v1/offers/imports", headers=coordinator, files={"file": ("o.csv", data, "text/csv")})
    body = assert_problem(r, 422)
    assert "expires_at" in body["report"]["rows_rejected"][0]["errors"][0]
