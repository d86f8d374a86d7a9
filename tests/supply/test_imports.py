"""Bulk import of offers from CSV: rows grouped by offer_ref, all rows or none, a report per row."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.settings import Settings
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE, WATER
from tests.helpers.problems import assert_problem
from tests.helpers.spreadsheets import answer_while_healthy, handmade_xlsx, header_cells
from tests.helpers.supply import create_donor

COLUMNS = [
    "offer_ref",
    "donor_id",
    "kind",
    "item_code",
    "quantity",
    "unit",
    "region_code",
    "expires_at",
    "amount",
    "currency",
    "restrict_regions",
    "restrict_site_kinds",
    "restrict_items",
    "note",
]


def csv_file(rows: list[dict[str, Any]], columns: list[str] = COLUMNS) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return out.getvalue().encode("utf-8")


async def upload(client, headers: dict[str, str], data: bytes, name: str = "offers.csv", ctype: str = "text/csv"):
    return await client.post("/v1/offers/imports", headers=headers, files={"file": (name, data, ctype)})


async def all_offers(client, headers: dict[str, str]) -> list[dict[str, Any]]:
    resp = await client.get("/v1/offers", headers=headers)
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


@pytest.fixture
def donor_headers(auth: TokenFactory) -> dict[str, str]:
    return auth("donor", org="org-grain")


@pytest.fixture
async def donor(client, donor_headers) -> dict[str, Any]:
    return await create_donor(client, donor_headers)


async def test_import_groups_lots_by_offer_ref(client, donor_headers, donor) -> None:
    data = csv_file(
        [
            {
                "offer_ref": "A",
                "donor_id": donor["id"],
                "item_code": RICE,
                "quantity": "1000",
                "region_code": "310104",
                "expires_at": "2030-12-31",
                "restrict_regions": "31;32",
                "restrict_site_kinds": "shelter; school",
                "restrict_items": f"{RICE}；{WATER}",
                "note": "第一批",
            },
            {
                "offer_ref": "A",
                "donor_id": donor["id"],
                "item_code": WATER,
                "quantity": "200",
                "unit": "case",
            },
            {"donor_id": donor["id"], "kind": "cash", "amount": "5000000", "currency": "CNY", "restrict_regions": "42"},
        ]
    )
    resp = await upload(client, donor_headers, data)
    assert resp.status_code == 201, resp.text
    report = resp.json()
    assert report["imported"] is True
    assert report["rows_total"] == 3 and report["rows_accepted"] == 3 and report["rows_rejected"] == []
    assert len(report["created"]) == 2 and len(set(report["created"])) == 2
    assert set(report["tracking_codes"]) == set(report["created"])
    codes = list(report["tracking_codes"].values())
    assert all(len(c) >= 20 for c in codes) and len(set(codes)) == 2

    in_kind_id, cash_id = report["created"]
    in_kind = (await client.get(f"/v1/offers/{in_kind_id}", headers=donor_headers)).json()
    assert in_kind["kind"] == "in_kind" and in_kind["donor_id"] == donor["id"] and in_kind["org"] == "org-grain"
    assert in_kind["tracking_code"] is None
    assert in_kind["note"] == "第一批"
    assert in_kind["restrictions"] == {
        "region_codes": ["31", "32"],
        "site_kinds": ["shelter", "school"],
        "item_codes": [RICE, WATER],
    }
    rice, water = in_kind["lots"]
    assert (rice["item_code"], rice["quantity"], rice["unit"], rice["region_code"]) == (RICE, 1000, "kg", "310104")
    # A bare date means the end of that day, China time.
    assert datetime.fromisoformat(rice["expires_at"]) == datetime(2030, 12, 31, 15, 59, 59, tzinfo=UTC)
    # A case of the small bottles is one carton of 24, the base unit.
    assert (water["item_code"], water["quantity"], water["unit"]) == (WATER, 200, "carton")
    assert water["expires_at"] is None and water["quantity_available"] == 200

    cash = (await client.get(f"/v1/offers/{cash_id}", headers=donor_headers)).json()
    assert cash["kind"] == "cash" and cash["lots"] == []
    assert cash["amount"] == 5_000_000 and cash["currency"] == "CNY"
    assert cash["restrictions"]["region_codes"] == ["42"]

    assert {o["id"] for o in await all_offers(client, donor_headers)} == {in_kind_id, cash_id}


async def test_import_with_a_bad_row_creates_nothing(client, donor_headers, donor) -> None:
    data = csv_file(
        [
            {"offer_ref": "A", "donor_id": donor["id"], "item_code": RICE, "quantity": "10"},
            {"offer_ref": "A", "donor_id": donor["id"], "item_code": WATER, "quantity": "lots"},
            {"donor_id": donor["id"], "item_code": "food.grain.unobtainium", "quantity": "3"},
            {"donor_id": donor["id"], "kind": "cash", "amount": "100", "currency": "CNY"},
            {"donor_id": donor["id"], "kind": "cash", "currency": "CNY"},
            {"donor_id": donor["id"], "item_code": RICE, "quantity": "5", "region_code": "31"},
        ]
    )
    resp = await upload(client, donor_headers, data)
    body = assert_problem(resp, 422, "import-rejected")
    report = body["report"]
    assert report["imported"] is False and report["created"] == [] and report["rows_accepted"] == 0
    assert report["rows_total"] == 6
    rejected = {r["row"]: r["errors"] for r in report["rows_rejected"]}
    assert sorted(rejected) == [2, 3, 5, 6]
    assert any(e.startswith("quantity") for e in rejected[2])
    assert any("food.grain.unobtainium" in e for e in rejected[3])
    assert any("region_code" in e for e in rejected[6])
    assert [e["loc"] for e in body["errors"]] == [["file", "row", n] for n in (2, 3, 5, 6)]
    assert await all_offers(client, donor_headers) == []


async def test_import_rows_for_unknown_or_foreign_donors_are_rejected(client, auth: TokenFactory, donor) -> None:
    other_headers = auth("donor", org="org-other")
    other = await create_donor(client, other_headers)
    data = csv_file(
        [
            {"donor_id": other["id"], "item_code": RICE, "quantity": "10"},
            {"donor_id": donor["id"], "item_code": RICE, "quantity": "10"},
            {"donor_id": str(uuid.uuid4()), "item_code": RICE, "quantity": "10"},
            {"donor_id": "not-a-uuid", "item_code": RICE, "quantity": "10"},
        ]
    )
    report = assert_problem(await upload(client, other_headers, data), 422, "import-rejected")["report"]
    assert sorted(r["row"] for r in report["rows_rejected"]) == [2, 3, 4]
    assert await all_offers(client, other_headers) == []

    # A coordinator may import for any organisation's donors.
    coordinator = auth("coordinator")
    ok = csv_file(
        [
            {"donor_id": other["id"], "item_code": RICE, "quantity": "1"},
            {"donor_id": donor["id"], "kind": "cash", "amount": "1", "currency": "CNY"},
        ]
    )
    resp = await upload(client, coordinator, ok)
    assert resp.status_code == 201, resp.text
    assert len(resp.json()["created"]) == 2


async def test_import_needs_donor_id_column(client, donor_headers) -> None:
    data = csv_file([{"item_code": RICE, "quantity": "1"}], columns=["item_code", "quantity"])
    report = assert_problem(await upload(client, donor_headers, data), 422, "import-rejected")["report"]
    assert report["rows_rejected"] == [{"row": 0, "errors": ["missing column: donor_id"]}]


async def test_import_of_gb18030_csv(client, donor_headers, donor) -> None:
    data = csv_file([{"donor_id": donor["id"], "item_code": RICE, "quantity": "7", "note": "爱心捐赠"}])
    resp = await upload(client, donor_headers, data.decode().encode("gb18030"))
    assert resp.status_code == 201, resp.text
    offer = (await client.get(f"/v1/offers/{resp.json()['created'][0]}", headers=donor_headers)).json()
    assert offer["note"] == "爱心捐赠"


async def test_unreadable_file_is_422(client, donor_headers) -> None:
    assert_problem(await upload(client, donor_headers, b"\x00\x01\x02binary"), 422, "unreadable-file")
    assert_problem(await upload(client, donor_headers, b""), 422, "unreadable-file")


@pytest.mark.parametrize("role", ["frontline", "logistics", "working_group"])
async def test_only_donors_and_coordinators_import(client, auth: TokenFactory, donor, role: str) -> None:
    data = csv_file([{"donor_id": donor["id"], "item_code": RICE, "quantity": "1"}])
    assert_problem(await upload(client, auth(role, org="org-grain"), data), 403, "forbidden")
    assert await all_offers(client, auth("coordinator")) == []


@pytest.mark.parametrize(
    ("dimension", "cells"),
    [
        ("A1:XFD20000", [("A20000", "x")]),
        ("A1:XFD1048576", [*header_cells(COLUMNS), ("A1048576", "x")]),
    ],
    ids=["20000 rows declared", "a header and a far row"],
)
async def test_import_refuses_a_sheet_declaring_a_huge_size_and_the_service_keeps_answering(
    client, donor_headers, dimension: str, cells: list[tuple[str, str]]
) -> None:
    data = handmade_xlsx(dimension, cells)
    assert len(data) < 10_000
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    resp, _ = await answer_while_healthy(client, upload(client, donor_headers, data, "offers.xlsx", xlsx))
    assert_problem(resp, 422, "unreadable-file")
    assert await all_offers(client, donor_headers) == []


async def test_import_refuses_a_million_row_csv_and_the_service_keeps_answering(
    client, donor_headers, donor, migrated: Settings
) -> None:
    data = b"donor_id,item_code,quantity\n" + b"d,i,1\n" * 1_000_000
    assert len(data) < migrated.max_import_bytes  # refused for its rows, not its size
    resp, _ = await answer_while_healthy(client, upload(client, donor_headers, data))
    body = assert_problem(resp, 422, "unreadable-file")
    assert f"more than {migrated.max_import_rows} rows" in body["detail"]
    assert await all_offers(client, donor_headers) == []
