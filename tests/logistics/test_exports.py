"""Exports through the API: needs, offers, deliveries and the ledger as CSV, XLSX and HXL (read back by libhxl,
the HXL standard's library, with the expected hashtags), filtered by region and time, formulas escaped; and the
public 3W export of deliveries, without a token and without personal data."""

from __future__ import annotations

import io

import httpx
from openpyxl import load_workbook

from tests.helpers.auth import TokenFactory
from tests.helpers.exports import read_hxl, received_gift, rows_of
from tests.helpers.needs import create_need
from tests.helpers.problems import assert_problem
from tests.helpers.waiting import eventually

FORMULA = '=HYPERLINK("http://evil.example","点击")'


async def test_coordinator_exports_every_dataset_in_every_format(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await received_gift(client, auth)
    coordinator = gift.coordinator
    # A need whose title a spreadsheet would run as a formula.
    trap = await create_need(client, gift.recipient, gift.site["id"], title=FORMULA)

    async def exported() -> list[list[str]] | None:
        r = await client.get("/v1/exports/needs?format=csv&region_code=31", headers=coordinator)
        assert r.status_code == 200, r.text
        rows = rows_of(r.text)
        return rows if any(row[0] == trap["id"] for row in rows) else None

    needs = await eventually(exported)
    header = needs[0]
    assert header[:6] == ["need_id", "org", "province_code", "city_code", "county_code", "site_id"]
    [trap_row] = [row for row in needs if row[0] == trap["id"]]
    assert trap_row[header.index("title")] == "'" + FORMULA
    assert trap_row[2:5] == ["310000", "310100", "310115"]
    gift_rows = [row for row in needs if row[0] == gift.need["id"]]
    assert {row[header.index("item_code")] for row in gift_rows} == {line["item_code"] for line in gift.need["lines"]}

    # Another region's export has none of them; a window before everything is empty.
    elsewhere = rows_of((await client.get("/v1/exports/needs?region_code=44", headers=coordinator)).text)
    assert elsewhere == [header]
    before = await client.get("/v1/exports/needs", headers=coordinator, params={"to": "2020-01-01T00:00:00Z"})
    assert rows_of(before.text) == [header]

    # Deliveries as HXL, read back by libhxl.
    r = await client.get("/v1/exports/deliveries?format=hxl&region_code=310115", headers=coordinator)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
    assert 'filename="reliefhub-deliveries.hxl.csv"' in r.headers["content-disposition"]
    tags, data = read_hxl(r.content)
    for tag in ("#adm1+code", "#adm2+code", "#adm3+code", "#sector", "#item+code", "#item+name", "#date+received"):
        assert tag in tags, tags
    assert "#indicator+num+received" in tags and "#org+provider" in tags
    lines = [row for row in data if row.get("#meta+id") == gift.shipment["id"]]
    assert len(lines) == len(gift.shipment["lines"])
    by_item = {row.get("#item+code"): row for row in lines}
    for line in gift.shipment["lines"]:
        row = by_item[line["item_code"]]
        assert int(row.get("#indicator+num+received")) == line["quantity"]
        assert row.get("#adm3+code") == "310115" and row.get("#sector")
    assert "handover_pin" not in r.text and gift.shipment.get("handover_pin", "no-pin") not in r.text

    # Offers as XLSX: the same rows a CSV has, in a workbook.
    r = await client.get("/v1/exports/offers?format=xlsx", headers=coordinator)
    assert r.status_code == 200, r.text
    sheet = load_workbook(io.BytesIO(r.content), read_only=True).worksheets[0]
    table = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert table[0][:4] == ["offer_id", "org", "kind", "status"]
    mine = [row for row in table if row[0] == gift.offer["id"]]
    assert len(mine) == len(gift.offer["lots"]) and all(row[1] == "org-grain" for row in mine)

    # The ledger: the in-kind gift and its delivery are there, amounts as numbers.
    r = await client.get("/v1/exports/ledger?format=csv", headers=coordinator)
    ledger = rows_of(r.text)
    kinds = {row[1] for row in ledger[1:] if row[ledger[0].index("offer_id")] == gift.offer["id"]}
    assert "in_kind_offered" in kinds, kinds
    assert all(row[2].lstrip("-").isdigit() for row in ledger[1:])


async def test_exports_are_for_coordinators_in_their_regions(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    assert_problem(await client.get("/v1/exports/needs", headers=auth("frontline", org="org-shelter")), 403)
    assert_problem(await client.get("/v1/exports/needs"), 401)
    regional = auth("coordinator", org="org-hub", regions=["31"])
    assert_problem(await client.get("/v1/exports/needs", headers=regional), 403)
    assert (await client.get("/v1/exports/needs?region_code=3101", headers=regional)).status_code == 200
    assert_problem(await client.get("/v1/exports/needs?region_code=44", headers=regional), 403)
    assert_problem(await client.get("/v1/exports/parcels", headers=auth("coordinator")), 422)
    assert_problem(await client.get("/v1/exports/needs?format=pdf", headers=auth("coordinator")), 422)


async def test_the_public_3w_export_counts_deliveries_and_names_no_one(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await received_gift(client, auth)
    r = await client.get("/v1/public/exports/deliveries?format=hxl")  # no token
    assert r.status_code == 200, r.text
    tags, data = read_hxl(r.content)
    assert tags == [
        "#adm1+code",
        "#adm2+code",
        "#adm3+code",
        "#sector",
        "#date+month",
        "#indicator+shipments+num",
        "#indicator+sites+num",
        "#indicator+received+num",
    ]
    pudong = [row for row in data if row.get("#adm3+code") == "310115"]
    # The feedback counts the people served by group; the impact report adds them up.
    sid = gift.shipment["id"]
    fb = await client.post(
        f"/v1/shipments/{sid}/feedback",
        headers=gift.recipient,
        json={"rating": 5, "beneficiaries_served": 130, "served_by_group": {"elderly": 120, "medical_staff": 10}},
    )
    assert fb.status_code == 201, fb.text
    assert fb.json()["served_by_group"] == {"elderly": 120, "medical_staff": 10}
    report = (await client.get("/v1/reports/impact?region_code=310115", headers=gift.coordinator)).json()
    assert report["people_served_by_group"] == {"elderly": 120, "medical_staff": 10}
    bad = {"rating": 4, "served_by_group": {"pets": 1}}
    assert_problem(await client.post(f"/v1/shipments/{sid}/feedback", headers=gift.recipient, json=bad), 422)
    assert pudong and all(int(row.get("#indicator+sites+num")) == 1 for row in pudong)
    assert sum(int(row.get("#indicator+received+num")) for row in pudong) == sum(
        line["quantity"] for line in gift.shipment["lines"]
    )
    text = r.text
    for private in (gift.site["id"], gift.site["name"], gift.shipment["id"], "org-shelter", "org-grain"):
        assert private not in text, private
    plain = await client.get("/v1/public/exports/deliveries?format=csv")
    assert rows_of(plain.text)[0][:3] == ["province_code", "city_code", "county_code"]
    assert not any(cell.startswith("#") for cell in rows_of(plain.text)[1])
