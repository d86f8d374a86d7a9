"""Offers: in-kind lots and cash pledges, their shape rules, tracking codes, listing, restrictions, withdrawal."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import CONCENTRATOR, IBUPROFEN, RICE, WATER
from tests.helpers.problems import assert_problem
from tests.helpers.supply import create_donor, create_offer, get_lot, pledge_body, reserve

GRAIN = "org-grain"


@pytest.fixture
def donor_headers(auth: TokenFactory) -> dict[str, str]:
    return auth("donor", org=GRAIN)


@pytest.fixture
async def donor(client, donor_headers: dict[str, str]) -> dict[str, Any]:
    return await create_donor(client, donor_headers)


async def list_ids(client, headers: dict[str, str], **params: Any) -> list[str]:
    resp = await client.get("/v1/offers", headers=headers, params=params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["next_cursor"] is None
    return [o["id"] for o in body["items"]]


# --- creating ---------------------------------------------------------------------------------------


async def test_in_kind_offer_takes_unit_and_check_from_catalog(client, donor_headers, donor) -> None:
    available = datetime(2030, 1, 1, 8, tzinfo=UTC)
    resp = await client.post(
        "/v1/offers",
        headers=donor_headers,
        json={
            "donor_id": donor["id"],
            "kind": "in_kind",
            "lots": [
                {
                    "item_code": RICE,
                    "quantity": 2000,
                    "lat": 31.2,
                    "lon": 121.5,
                    "region_code": "310104",
                    "available_from": available.isoformat(),
                    "expires_at": (available + timedelta(days=180)).isoformat(),
                    "condition": "good",
                },
                {"item_code": CONCENTRATOR, "quantity": 12},
                {"item_code": RICE, "quantity": 40, "unit": "bag"},
            ],
            "restrictions": {"region_codes": ["31"], "site_kinds": ["hospital", "shelter"], "item_codes": [RICE]},
            "note": "仓库自提",
        },
    )
    assert resp.status_code == 201, resp.text
    offer = resp.json()
    assert resp.headers["location"] == f"/v1/offers/{offer['id']}"
    assert resp.headers["etag"] == '"1"'
    assert offer["donor_id"] == donor["id"] and offer["org"] == GRAIN
    assert offer["kind"] == "in_kind" and offer["status"] == "open"
    assert offer["amount"] is None and offer["currency"] is None
    assert offer["restrictions"] == {
        "region_codes": ["31"],
        "site_kinds": ["hospital", "shelter"],
        "item_codes": [RICE],
    }
    assert offer["note"] == "仓库自提"
    rice, device, bagged = offer["lots"]

    assert rice["item_code"] == RICE and rice["unit"] == "kg"
    assert rice["check_by"] is None and rice["verification"] == "not_required"
    assert rice["quantity"] == 2000 and rice["quantity_available"] == 2000
    assert rice["quantity_reserved"] == 0 and rice["quantity_shipped"] == 0
    assert rice["lat"] == 31.2 and rice["lon"] == 121.5 and rice["region_code"] == "310104"
    assert datetime.fromisoformat(rice["available_from"]) == available
    assert datetime.fromisoformat(rice["expires_at"]) == available + timedelta(days=180)
    assert rice["condition"] == "good" and rice["offer_id"] == offer["id"]

    assert device["unit"] == "unit" and device["check_by"] == "medical_device"
    assert device["verification"] == "pending" and device["quantity_available"] == 0
    assert device["condition"] == "new" and device["lat"] is None and device["region_code"] is None

    # 40 bags of rice, converted on intake to the base unit (25 kg a bag).
    assert (bagged["unit"], bagged["quantity"]) == ("kg", 1000)

    # The same offer read back, lot by lot and whole.
    fetched = await client.get(f"/v1/offers/{offer['id']}", headers=donor_headers)
    assert fetched.status_code == 200
    assert fetched.headers["etag"] == '"1"'
    assert fetched.json() == {**offer, "tracking_code": None}
    for lot in offer["lots"]:
        assert await get_lot(client, donor_headers, lot["id"]) == lot


async def test_cash_pledge(client, donor_headers, donor) -> None:
    offer = await create_offer(
        client,
        donor_headers,
        donor["id"],
        kind="cash",
        amount=12_345_600,
        currency="CNY",
        restrictions={"region_codes": ["42"]},
    )
    assert offer["kind"] == "cash" and offer["lots"] == []
    assert offer["amount"] == 12_345_600 and offer["currency"] == "CNY"
    assert offer["restrictions"]["region_codes"] == ["42"]
    fetched = (await client.get(f"/v1/offers/{offer['id']}", headers=donor_headers)).json()
    assert fetched["amount"] == 12_345_600 and fetched["currency"] == "CNY"


async def test_coordinator_may_offer_for_any_donor(client, auth: TokenFactory, donor) -> None:
    offer = await create_offer(client, auth("coordinator"), donor["id"])
    assert offer["org"] == GRAIN


async def test_donor_may_not_offer_for_another_orgs_donor(client, auth: TokenFactory, donor) -> None:
    resp = await client.post(
        "/v1/offers",
        headers=auth("donor", org="org-other"),
        json=pledge_body(donor["id"], 100),
    )
    assert_problem(resp, 403, "not-your-donor")
    assert await list_ids(client, auth("coordinator")) == []


@pytest.mark.parametrize("role", ["frontline", "logistics", "working_group"])
async def test_other_roles_may_not_offer(client, auth: TokenFactory, donor, role: str) -> None:
    resp = await client.post(
        "/v1/offers",
        headers=auth(role, org=GRAIN),
        json=pledge_body(donor["id"], 100),
    )
    assert_problem(resp, 403, "forbidden")


async def test_offer_for_unknown_donor_is_404(client, donor_headers) -> None:
    resp = await client.post(
        "/v1/offers",
        headers=donor_headers,
        json=pledge_body(str(uuid.uuid4()), 100),
    )
    assert_problem(resp, 404, "donor-not-found")


LOT = {"item_code": RICE, "quantity": 10}
SHAPE_ERRORS: dict[str, dict[str, Any]] = {
    "in-kind without lots": {"kind": "in_kind"},
    "in-kind with empty lots": {"kind": "in_kind", "lots": []},
    "in-kind with amount": {"kind": "in_kind", "lots": [LOT], "amount": 100, "currency": "CNY"},
    "cash without amount": {"kind": "cash", "currency": "CNY"},
    "cash without currency": {"kind": "cash", "amount": 100},
    "cash with lots": {"kind": "cash", "amount": 100, "currency": "CNY", "lots": [LOT]},
    "cash of zero": {"kind": "cash", "amount": 0, "currency": "CNY"},
    "cash in yuan with decimals": {"kind": "cash", "amount": 100.5, "currency": "CNY"},
    "lower-case currency": {"kind": "cash", "amount": 100, "currency": "cny"},
    "currency not three letters": {"kind": "cash", "amount": 100, "currency": "RMB1"},
    "unknown kind": {"kind": "services", "lots": [LOT]},
    "expires before available": {
        "kind": "in_kind",
        "lots": [{**LOT, "available_from": "2030-02-01T00:00:00Z", "expires_at": "2030-01-01T00:00:00Z"}],
    },
    "expires when available": {
        "kind": "in_kind",
        "lots": [{**LOT, "available_from": "2030-02-01T00:00:00Z", "expires_at": "2030-02-01T00:00:00Z"}],
    },
    "naive datetime": {"kind": "in_kind", "lots": [{**LOT, "expires_at": "2030-01-01T00:00:00"}]},
    "lat without lon": {"kind": "in_kind", "lots": [{**LOT, "lat": 31.2}]},
    "lon without lat": {"kind": "in_kind", "lots": [{**LOT, "lon": 121.5}]},
    "lat out of range": {"kind": "in_kind", "lots": [{**LOT, "lat": 91, "lon": 121.5}]},
    "zero quantity": {"kind": "in_kind", "lots": [{**LOT, "quantity": 0}]},
    "negative quantity": {"kind": "in_kind", "lots": [{**LOT, "quantity": -5}]},
    "bad region code": {"kind": "in_kind", "lots": [{**LOT, "region_code": "31"}]},
    "bad condition": {"kind": "in_kind", "lots": [{**LOT, "condition": "broken"}]},
    "extra lot field": {"kind": "in_kind", "lots": [{**LOT, "colour": "white"}]},
    "bad restricted site kind": {"kind": "in_kind", "lots": [LOT], "restrictions": {"site_kinds": ["casino"]}},
    "bad restricted region": {"kind": "in_kind", "lots": [LOT], "restrictions": {"region_codes": ["3"]}},
    "extra field": {"kind": "in_kind", "lots": [LOT], "status": "closed"},
    "tracking code chosen": {"kind": "in_kind", "lots": [LOT], "tracking_code": "a" * 30},
}


@pytest.mark.parametrize("body", SHAPE_ERRORS.values(), ids=SHAPE_ERRORS.keys())
async def test_offer_shape_errors_are_422(client, donor_headers, donor, body: dict[str, Any]) -> None:
    resp = await client.post("/v1/offers", headers=donor_headers, json={"donor_id": donor["id"], **body})
    err = assert_problem(resp, 422, "invalid-request")
    assert err["errors"] and all({"loc", "msg"} <= e.keys() for e in err["errors"])
    assert await list_ids(client, donor_headers) == []


async def test_unknown_item_in_lots_is_422(client, donor_headers, donor) -> None:
    resp = await client.post(
        "/v1/offers",
        headers=donor_headers,
        json={
            "donor_id": donor["id"],
            "kind": "in_kind",
            "lots": [LOT, {"item_code": "food.grain.unobtainium", "quantity": 1}],
        },
    )
    err = assert_problem(resp, 422, "unknown-item")
    assert "food.grain.unobtainium" in err["detail"]
    assert err["errors"] == [{"loc": ["body", "lots", 1, "item_code"], "msg": "unknown item code"}]
    assert await list_ids(client, donor_headers) == []


async def test_a_lot_unit_that_is_not_the_items_is_422_naming_the_allowed(client, donor_headers, donor) -> None:
    resp = await client.post(
        "/v1/offers",
        headers=donor_headers,
        json={
            "donor_id": donor["id"],
            "kind": "in_kind",
            "lots": [
                {"item_code": WATER, "quantity": 3, "unit": "pallet"},
                {"item_code": RICE, "quantity": 2, "unit": "crate"},
            ],
        },
    )
    err = assert_problem(resp, 422, "unknown-unit")
    assert err["errors"] == [{"loc": ["body", "lots", 1, "unit"], "msg": "unit must be one of: kg, bag"}]
    assert await list_ids(client, donor_headers) == []


async def test_unknown_item_in_restrictions_is_422(client, donor_headers, donor) -> None:
    resp = await client.post(
        "/v1/offers",
        headers=donor_headers,
        json={
            "donor_id": donor["id"],
            "kind": "cash",
            "amount": 100,
            "currency": "CNY",
            "restrictions": {"item_codes": [RICE, "no.such.item"]},
        },
    )
    err = assert_problem(resp, 422, "unknown-item")
    assert err["errors"] == [{"loc": ["body", "restrictions", "item_codes", 1], "msg": "unknown item code"}]
    assert await list_ids(client, donor_headers) == []


# --- tracking codes ---------------------------------------------------------------------------------


async def test_tracking_code_is_returned_once_and_unique(client, donor_headers, donor) -> None:
    offers = [await create_offer(client, donor_headers, donor["id"]) for _ in range(3)]
    offers.append(await create_offer(client, donor_headers, donor["id"], kind="cash", amount=1, currency="USD"))
    codes = [o["tracking_code"] for o in offers]
    assert all(isinstance(c, str) and len(c) >= 20 for c in codes)
    assert len(set(codes)) == len(codes)
    for offer in offers:
        fetched = await client.get(f"/v1/offers/{offer['id']}", headers=donor_headers)
        assert fetched.json()["tracking_code"] is None
        assert offer["tracking_code"] not in fetched.text
    listed = await client.get("/v1/offers", headers=donor_headers)
    assert [o["tracking_code"] for o in listed.json()["items"]] == [None] * 4
    assert not any(c in listed.text for c in codes)


# --- reading and listing ----------------------------------------------------------------------------


async def test_unknown_and_malformed_offer_ids(client, donor_headers) -> None:
    assert_problem(await client.get(f"/v1/offers/{uuid.uuid4()}", headers=donor_headers), 404, "offer-not-found")
    assert_problem(await client.get("/v1/offers/12345", headers=donor_headers), 422, "invalid-request")
    assert_problem(await client.get(f"/v1/lots/{uuid.uuid4()}", headers=donor_headers), 404, "lot-not-found")
    assert_problem(await client.get("/v1/lots/nope", headers=donor_headers), 422, "invalid-request")


async def test_list_filters(client, auth: TokenFactory, donor_headers, donor) -> None:
    reader = auth("frontline", org="org-hospital")
    other_headers = auth("donor", org="org-pharma")
    other = await create_donor(client, other_headers, name="某药业")

    rice_sh = await create_offer(
        client, donor_headers, donor["id"], lots=[{"item_code": RICE, "quantity": 5, "region_code": "310104"}]
    )
    water_hb = await create_offer(
        client,
        donor_headers,
        donor["id"],
        lots=[{"item_code": WATER, "quantity": 5, "region_code": "420102"}, {"item_code": RICE, "quantity": 1}],
    )
    cash = await create_offer(client, donor_headers, donor["id"], kind="cash", amount=100, currency="CNY")
    pills_sh = await create_offer(
        client, other_headers, other["id"], lots=[{"item_code": IBUPROFEN, "quantity": 9, "region_code": "310115"}]
    )
    withdrawn = await create_offer(
        client, other_headers, other["id"], lots=[{"item_code": WATER, "quantity": 3, "region_code": "320102"}]
    )
    resp = await client.post(f"/v1/offers/{withdrawn['id']}/withdraw", headers=other_headers, json={})
    assert resp.status_code == 200, resp.text

    newest_first = [withdrawn["id"], pills_sh["id"], cash["id"], water_hb["id"], rice_sh["id"]]
    assert await list_ids(client, reader) == newest_first
    assert await list_ids(client, reader, donor_id=donor["id"]) == [cash["id"], water_hb["id"], rice_sh["id"]]
    assert await list_ids(client, reader, donor_id=other["id"]) == [withdrawn["id"], pills_sh["id"]]
    assert await list_ids(client, reader, donor_id=str(uuid.uuid4())) == []
    assert await list_ids(client, reader, status="withdrawn") == [withdrawn["id"]]
    assert await list_ids(client, reader, status="open") == newest_first[1:]
    assert await list_ids(client, reader, status="closed") == []
    assert await list_ids(client, reader, kind="cash") == [cash["id"]]
    assert await list_ids(client, reader, kind="in_kind") == [i for i in newest_first if i != cash["id"]]
    assert await list_ids(client, reader, item_code=RICE) == [water_hb["id"], rice_sh["id"]]
    assert await list_ids(client, reader, item_code=WATER) == [withdrawn["id"], water_hb["id"]]
    assert await list_ids(client, reader, item_code="no.such.item") == []
    assert await list_ids(client, reader, region_code="31") == [pills_sh["id"], rice_sh["id"]]
    assert await list_ids(client, reader, region_code="3101") == [pills_sh["id"], rice_sh["id"]]
    assert await list_ids(client, reader, region_code="310104") == [rice_sh["id"]]
    assert await list_ids(client, reader, region_code="310115") == [pills_sh["id"]]
    assert await list_ids(client, reader, region_code="42") == [water_hb["id"]]
    assert await list_ids(client, reader, region_code="44") == []
    assert await list_ids(client, reader, item_code=WATER, status="open", region_code="42") == [water_hb["id"]]
    assert await list_ids(client, reader, donor_id=other["id"], kind="in_kind", status="open") == [pills_sh["id"]]


@pytest.mark.parametrize(
    "params",
    [
        {"status": "pending"},
        {"kind": "loan"},
        {"donor_id": "someone"},
        {"region_code": "3"},
        {"region_code": "31x"},
        {"limit": 0},
        {"limit": 501},
        {"cursor": "not-a-cursor"},
    ],
)
async def test_list_rejects_bad_parameters(client, donor_headers, params: dict[str, Any]) -> None:
    assert_problem(await client.get("/v1/offers", headers=donor_headers, params=params), 422)


async def test_list_cursor_pagination(client, donor_headers, donor) -> None:
    created = [
        (await create_offer(client, donor_headers, donor["id"], kind="cash", amount=i + 1, currency="CNY"))["id"]
        for i in range(7)
    ]
    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        resp = await client.get("/v1/offers", headers=donor_headers, params=params)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        pages += 1
        assert len(page["items"]) == (3 if pages < 3 else 1)
        seen += [o["id"] for o in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 5
    assert pages == 3
    assert seen == created[::-1]

    # Filters hold across pages.
    await create_offer(client, donor_headers, donor["id"])
    first = (await client.get("/v1/offers", headers=donor_headers, params={"kind": "cash", "limit": 4})).json()
    assert [o["id"] for o in first["items"]] == created[::-1][:4]
    rest = (
        await client.get(
            "/v1/offers", headers=donor_headers, params={"kind": "cash", "limit": 4, "cursor": first["next_cursor"]}
        )
    ).json()
    assert [o["id"] for o in rest["items"]] == created[::-1][4:]
    assert rest["next_cursor"] is None


async def test_exact_page_has_no_next_cursor(client, donor_headers, donor) -> None:
    for _ in range(2):
        await create_offer(client, donor_headers, donor["id"])
    page = (await client.get("/v1/offers", headers=donor_headers, params={"limit": 2})).json()
    assert len(page["items"]) == 2 and page["next_cursor"] is None


# --- changing restrictions --------------------------------------------------------------------------


async def test_patch_restrictions_needs_current_if_match(client, auth: TokenFactory, donor_headers, donor) -> None:
    offer = await create_offer(client, donor_headers, donor["id"], note="初始")
    url = f"/v1/offers/{offer['id']}"
    new = {"region_codes": ["42", "4201"], "site_kinds": ["nursing_home"], "item_codes": [RICE]}

    assert_problem(
        await client.patch(url, headers=donor_headers, json={"restrictions": new}), 428, "precondition-required"
    )
    assert_problem(
        await client.patch(url, headers={**donor_headers, "If-Match": '"7"'}, json={"restrictions": new}),
        412,
        "precondition-failed",
    )
    assert_problem(
        await client.patch(url, headers=auth("donor", org="org-other", If_Match='"1"'), json={"restrictions": new}),
        403,
        "not-your-donor",
    )
    assert_problem(
        await client.patch(url, headers=auth("frontline", org=GRAIN, If_Match='"1"'), json={"restrictions": new}),
        403,
        "forbidden",
    )
    unchanged = await client.get(url, headers=donor_headers)
    assert unchanged.json()["restrictions"] == {"region_codes": [], "site_kinds": [], "item_codes": []}
    assert unchanged.headers["etag"] == '"1"'

    resp = await client.patch(url, headers={**donor_headers, "If-Match": '"1"'}, json={"restrictions": new})
    assert resp.status_code == 200, resp.text
    assert resp.headers["etag"] == '"2"'
    assert resp.json()["restrictions"] == new and resp.json()["note"] == "初始"
    assert resp.json()["version"] == 2 and resp.json()["tracking_code"] is None

    # The ETag just used is now stale.
    stale = await client.patch(url, headers={**donor_headers, "If-Match": '"1"'}, json={"restrictions": {}})
    assert_problem(stale, 412, "precondition-failed")

    # A coordinator may change it; a note-only patch keeps the restrictions.
    resp = await client.patch(url, headers=auth("coordinator", If_Match='"2"'), json={"note": "改为配送"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["restrictions"] == new and resp.json()["note"] == "改为配送"
    fetched = await client.get(url, headers=donor_headers)
    assert fetched.headers["etag"] == '"3"' and fetched.json()["restrictions"] == new


async def test_patch_with_unknown_item_or_bad_body(client, donor_headers, donor) -> None:
    offer = await create_offer(client, donor_headers, donor["id"])
    url = f"/v1/offers/{offer['id']}"
    headers = {**donor_headers, "If-Match": '"1"'}
    assert_problem(
        await client.patch(url, headers=headers, json={"restrictions": {"item_codes": ["x.y"]}}), 422, "unknown-item"
    )
    assert_problem(await client.patch(url, headers=headers, json={"status": "closed"}), 422, "invalid-request")
    assert_problem(await client.patch(url, headers=headers, json={"restrictions": {"site_kinds": ["bar"]}}), 422)
    assert (await client.get(url, headers=donor_headers)).json()["version"] == 1


async def test_patch_unknown_offer_is_404(client, donor_headers) -> None:
    resp = await client.patch(
        f"/v1/offers/{uuid.uuid4()}", headers={**donor_headers, "If-Match": '"1"'}, json={"note": "x"}
    )
    assert_problem(resp, 404, "offer-not-found")


# --- withdrawing ------------------------------------------------------------------------------------


async def test_withdraw_stops_new_reservations(client, auth: TokenFactory, donor_headers, donor) -> None:
    coordinator = auth("coordinator")
    offer = await create_offer(client, donor_headers, donor["id"], lots=[{"item_code": RICE, "quantity": 50}])
    lot_id = offer["lots"][0]["id"]
    held = await reserve(client, coordinator, lot_id, 20)
    assert held.status_code == 201, held.text

    assert_problem(await client.post(f"/v1/offers/{offer['id']}/withdraw", headers=auth("donor", org="org-x")), 403)
    assert_problem(await client.post(f"/v1/offers/{offer['id']}/withdraw", headers=auth("frontline", org=GRAIN)), 403)

    resp = await client.post(f"/v1/offers/{offer['id']}/withdraw", headers=donor_headers, json={"reason": "已售出"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "withdrawn" and body["withdraw_reason"] == "已售出"
    assert body["version"] == 2 and resp.headers["etag"] == '"2"'
    assert body["lots"][0]["quantity_available"] == 0
    assert body["lots"][0]["quantity_reserved"] == 20  # holds already made stay

    assert_problem(await reserve(client, coordinator, lot_id, 1), 409, "lot-unavailable")
    assert_problem(
        await client.post(f"/v1/offers/{offer['id']}/withdraw", headers=donor_headers), 409, "offer-not-open"
    )
    assert_problem(await client.post(f"/v1/offers/{offer['id']}/withdraw", headers=coordinator), 409, "offer-not-open")
    assert_problem(
        await client.patch(
            f"/v1/offers/{offer['id']}", headers={**donor_headers, "If-Match": '"2"'}, json={"note": "x"}
        ),
        409,
        "offer-not-open",
    )

    # The earlier hold can still be released.
    released = await client.delete(f"/v1/reservations/{held.json()['id']}", headers=coordinator)
    assert released.status_code == 204
    lot = await get_lot(client, coordinator, lot_id)
    assert lot["quantity_reserved"] == 0 and lot["quantity_available"] == 0
    fetched = (await client.get(f"/v1/offers/{offer['id']}", headers=donor_headers)).json()
    assert fetched["status"] == "withdrawn" and fetched["withdraw_reason"] == "已售出"


async def test_coordinator_may_withdraw_without_reason(client, auth: TokenFactory, donor_headers, donor) -> None:
    offer = await create_offer(client, donor_headers, donor["id"], kind="cash", amount=5, currency="CNY")
    resp = await client.post(f"/v1/offers/{offer['id']}/withdraw", headers=auth("coordinator"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "withdrawn" and resp.json()["withdraw_reason"] is None


async def test_withdraw_unknown_offer_is_404(client, donor_headers) -> None:
    assert_problem(
        await client.post(f"/v1/offers/{uuid.uuid4()}/withdraw", headers=donor_headers), 404, "offer-not-found"
    )


# --- idempotent creation ----------------------------------------------------------------------------


async def test_create_offer_with_idempotency_key_creates_once(client, donor_headers, donor) -> None:
    headers = {**donor_headers, "Idempotency-Key": f"offer-{uuid.uuid4()}"}
    body = pledge_body(donor["id"], 100)
    first = await client.post("/v1/offers", headers=headers, json=body)
    second = await client.post("/v1/offers", headers=headers, json=body)
    assert first.status_code == second.status_code == 201
    assert second.headers.get("idempotent-replayed") == "true"
    assert second.json()["id"] == first.json()["id"]
    assert await list_ids(client, donor_headers) == [first.json()["id"]]
