"""Bulk import of needs from CSV and XLSX: all rows or none, with the reasons per row."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from openpyxl import Workbook

from shared.settings import Settings
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import N95, QUILT, RICE, WATER
from tests.helpers.needs import create_site
from tests.helpers.problems import assert_problem, error_locs
from tests.helpers.spreadsheets import answer_while_healthy, handmade_xlsx, header_cells

HEADER = [
    "need_ref",
    "site_id",
    "title",
    "urgency",
    "needed_by",
    "beneficiaries",
    "item_code",
    "quantity",
    "unit",
    "notes",
]


def csv_bytes(rows: list[list[Any]], header: list[str] = HEADER, encoding: str = "utf-8") -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[Any]], header: list[str] = HEADER) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(header)
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def upload(client, headers: dict[str, str], data: bytes, name: str = "needs.csv", ctype: str = "text/csv"):
    return await client.post("/v1/needs/imports", headers=headers, files={"file": (name, data, ctype)})


def good_rows(site: str, other_site: str) -> list[list[Any]]:
    return [
        ["icu-1", site, "ICU 防护物资", "critical", "2030-03-01", "120", N95, "500", "", "急需"],
        ["icu-1", site, "ICU 防护物资", "critical", "2030-03-01", "120", QUILT, "40", "", ""],
        ["", site, "食堂用米", "", "", "", RICE, "200", "bag", ""],
        ["", other_site, "安置点饮用水", "high", "2030-03-02T12:00:00+08:00", "300", WATER, "50", "", ""],
    ]


async def all_needs(client, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = await client.get("/v1/needs", headers=headers, params={"limit": 500})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def two_sites(client, auth: TokenFactory) -> tuple[str, str, dict[str, str]]:
    h = auth("frontline", org="org-a")
    site = await create_site(client, h)
    shelter = await create_site(client, h, name="体育馆安置点", kind="shelter", region_code="310104")
    return site["id"], shelter["id"], h


def check_imported(needs: list[dict[str, Any]], report: dict[str, Any], site: str, other_site: str) -> None:
    assert report["imported"] is True and report["rows_total"] == 4 and report["rows_accepted"] == 4
    assert report["rows_rejected"] == []
    assert len(report["created"]) == 3
    assert {n["id"] for n in needs} == set(report["created"])
    by_title = {n["title"]: n for n in needs}
    icu = by_title["ICU 防护物资"]
    assert icu["site_id"] == site and icu["urgency"] == "critical" and icu["beneficiaries"] == 120
    assert [(x["item_code"], x["quantity"], x["unit"], x["notes"]) for x in icu["lines"]] == [
        (N95, 500, "piece", "急需"),
        (QUILT, 40, "piece", None),
    ]
    # a bare date means the end of that day, China time
    assert datetime.fromisoformat(icu["needed_by"]) == datetime(2030, 3, 1, 15, 59, 59, tzinfo=UTC)
    rice = by_title["食堂用米"]
    assert rice["urgency"] == "normal" and rice["needed_by"] is None and rice["beneficiaries"] is None
    # 200 bags of rice are converted on intake to the base unit: 25 kg a bag.
    assert [(x["item_code"], x["quantity"], x["unit"]) for x in rice["lines"]] == [(RICE, 5000, "kg")]
    water = by_title["安置点饮用水"]
    assert water["site_id"] == other_site and water["region_code"] == "310104"
    assert datetime.fromisoformat(water["needed_by"]) == datetime(2030, 3, 2, 4, 0, tzinfo=UTC)
    assert all(n["status"] == "open" and n["verification"] == "unverified" for n in needs)


async def test_import_csv(client, auth: TokenFactory) -> None:
    site, shelter, h = await two_sites(client, auth)
    r = await upload(client, h, csv_bytes(good_rows(site, shelter)))
    assert r.status_code == 201, r.text
    check_imported(await all_needs(client, h), r.json(), site, shelter)


async def test_import_xlsx(client, auth: TokenFactory) -> None:
    site, shelter, h = await two_sites(client, auth)
    rows = good_rows(site, shelter)
    for row in rows:  # numbers as numbers, as a spreadsheet holds them
        row[7] = int(row[7])
        row[5] = int(row[5]) if row[5] else None
    data = xlsx_bytes(rows)
    r = await upload(client, h, data, "需求.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert r.status_code == 201, r.text
    check_imported(await all_needs(client, h), r.json(), site, shelter)


async def test_import_xlsx_with_date_cells(client, auth: TokenFactory) -> None:
    """needed_by typed into Excel as a date is a date cell, not text."""
    site, shelter, h = await two_sites(client, auth)
    rows = good_rows(site, shelter)
    rows[0][4] = rows[1][4] = date(2030, 3, 1)
    r = await upload(client, h, xlsx_bytes(rows), "needs.xlsx", "application/octet-stream")
    assert r.status_code == 201, r.text
    check_imported(await all_needs(client, h), r.json(), site, shelter)


async def test_import_gb18030_csv(client, auth: TokenFactory) -> None:
    site, shelter, h = await two_sites(client, auth)
    data = csv_bytes(good_rows(site, shelter), encoding="gb18030")
    data.decode("gb18030")
    try:
        data.decode("utf-8")
        raise AssertionError("the test file must not be valid UTF-8")
    except UnicodeDecodeError:
        pass
    r = await upload(client, h, data)
    assert r.status_code == 201, r.text
    check_imported(await all_needs(client, h), r.json(), site, shelter)


async def test_import_utf8_with_bom_and_mixed_case_headers(client, auth: TokenFactory) -> None:
    site, shelter, h = await two_sites(client, auth)
    header = [f" {c.upper()} " for c in HEADER]
    r = await upload(client, h, b"\xef\xbb\xbf" + csv_bytes(good_rows(site, shelter), header=header))
    assert r.status_code == 201, r.text
    check_imported(await all_needs(client, h), r.json(), site, shelter)


async def test_import_rejects_the_whole_file_with_reasons_per_row(client, auth: TokenFactory) -> None:
    site, shelter, h = await two_sites(client, auth)
    missing_site = str(uuid.uuid4())
    rows = [
        ["", site, "好的一行", "", "", "", N95, "10", "", ""],  # 1
        ["", site, "未知物资", "", "", "", "ppe.mask.unobtainium", "10", "", ""],  # 2
        ["", site, "数量不对", "", "", "", RICE, "很多", "", ""],  # 3
        ["", missing_site, "没有这个站点", "", "", "", WATER, "5", "", ""],  # 4
        ["", shelter, "也是好的", "high", "2030-01-01", "", QUILT, "3", "", ""],  # 5
        ["", site, "数量为零", "", "", "", QUILT, "0", "", ""],  # 6
        ["", site, "紧急程度", "asap", "", "", QUILT, "1", "", ""],  # 7
        ["", site, "单位不对", "", "", "", RICE, "2", "barrel", ""],  # 8
    ]
    r = await upload(client, h, csv_bytes(rows))
    body = assert_problem(r, 422)
    assert body["type"].endswith("import-rejected")
    report = body["report"]
    assert report["imported"] is False and report["created"] == [] and report["rows_accepted"] == 0
    assert report["rows_total"] == 8
    rejected = {x["row"]: " ".join(x["errors"]) for x in report["rows_rejected"]}
    assert set(rejected) == {2, 3, 4, 6, 7, 8}
    assert "unit" in rejected[8] and "kg, bag" in rejected[8]
    assert "item_code" in rejected[2] and "ppe.mask.unobtainium" in rejected[2]
    assert "quantity" in rejected[3]
    assert "site_id" in rejected[4] and missing_site in rejected[4]
    assert "quantity" in rejected[6]
    assert "urgency" in rejected[7]
    assert ["file", "row", 2] in error_locs(body)

    assert await all_needs(client, h) == []


async def test_import_group_with_one_bad_line_names_that_row(client, auth: TokenFactory) -> None:
    site, _, h = await two_sites(client, auth)
    rows = [
        ["g", site, "一组", "", "", "", N95, "10", "", ""],
        ["g", site, "一组", "", "", "", RICE, "-3", "", ""],
        ["g", site, "一组", "", "", "", WATER, "4", "", ""],
    ]
    body = assert_problem(await upload(client, h, csv_bytes(rows)), 422)
    assert [x["row"] for x in body["report"]["rows_rejected"]] == [2]
    assert await all_needs(client, h) == []


async def test_import_refuses_another_orgs_site(client, auth: TokenFactory) -> None:
    site, _, h = await two_sites(client, auth)
    foreign = await create_site(client, auth("frontline", org="org-b"))
    rows = [
        ["", site, "自己的", "", "", "", N95, "10", "", ""],
        ["", foreign["id"], "别人的", "", "", "", N95, "10", "", ""],
    ]
    body = assert_problem(await upload(client, h, csv_bytes(rows)), 422)
    assert [x["row"] for x in body["report"]["rows_rejected"]] == [2]
    assert "another organisation" in body["report"]["rows_rejected"][0]["errors"][0]
    assert await all_needs(client, auth("coordinator")) == []

    ok = await upload(client, auth("coordinator"), csv_bytes(rows))
    assert ok.status_code == 201, ok.text
    assert len(ok.json()["created"]) == 2


async def test_import_missing_column_is_named(client, auth: TokenFactory) -> None:
    site, _, h = await two_sites(client, auth)
    header = [c for c in HEADER if c != "quantity"]
    data = csv_bytes([["", site, "缺列", "", "", "", N95, "", ""]], header=header)
    body = assert_problem(await upload(client, h, data), 422)
    assert "missing column: quantity" in str(body)
    assert [x["row"] for x in body["report"]["rows_rejected"]] == [0]
    assert await all_needs(client, h) == []


async def test_import_binary_garbage_is_422(client, auth: TokenFactory) -> None:
    _, _, h = await two_sites(client, auth)
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + bytes(range(256)) * 4
    body = assert_problem(await upload(client, h, png, "needs.csv", "text/csv"), 422)
    assert body["type"].endswith("unreadable-file")
    fake_xlsx = b"PK\x03\x04" + b"\x00garbage" * 50
    body = assert_problem(await upload(client, h, fake_xlsx, "needs.xlsx", "application/octet-stream"), 422)
    assert body["type"].endswith("unreadable-file")
    assert await all_needs(client, h) == []


async def test_import_empty_file_is_422(client, auth: TokenFactory) -> None:
    _, _, h = await two_sites(client, auth)
    assert_problem(await upload(client, h, b""), 422)
    assert_problem(await upload(client, h, b"\n\n"), 422)


async def test_import_needs_a_file_and_a_writer(client, auth: TokenFactory) -> None:
    site, shelter, h = await two_sites(client, auth)
    no_file = await client.post("/v1/needs/imports", headers=h, data={"x": "y"})
    assert ["body", "file"] in error_locs(assert_problem(no_file, 422))
    data = csv_bytes(good_rows(site, shelter))
    assert_problem(await upload(client, auth("donor", org="org-a"), data), 403)
    assert_problem(await client.post("/v1/needs/imports", files={"file": ("needs.csv", data, "text/csv")}), 401)
    assert await all_needs(client, h) == []


async def test_import_flags_duplicates_within_the_file(client, auth: TokenFactory) -> None:
    site, _, h = await two_sites(client, auth)
    rows = [
        ["", site, "第一次", "", "", "", N95, "10", "", ""],
        ["", site, "第二次", "", "", "", N95, "20", "", ""],
    ]
    r = await upload(client, h, csv_bytes(rows))
    assert r.status_code == 201, r.text
    first, second = r.json()["created"]
    got = (await client.get(f"/v1/needs/{second}", headers=h)).json()
    assert got["duplicate_of"] == first


async def test_import_group_rows_may_leave_need_columns_blank(client, auth: TokenFactory) -> None:
    site, _, h = await two_sites(client, auth)
    rows = [
        ["g", site, "一组", "high", "2030-03-01", "10", N95, "10", "", ""],
        ["g", "", "", "", "", "", RICE, "3", "", ""],
    ]
    r = await upload(client, h, csv_bytes(rows))
    assert r.status_code == 201, r.text
    (need,) = await all_needs(client, h)
    assert need["site_id"] == site and need["urgency"] == "high"
    assert [x["item_code"] for x in need["lines"]] == [N95, RICE]


async def test_import_group_rows_naming_another_site_are_rejected(client, auth: TokenFactory) -> None:
    """One need has one site: a row of the group naming another site would send its items to the wrong place."""
    site, shelter, h = await two_sites(client, auth)
    rows = [
        ["g", site, "一组", "", "", "", N95, "10", "", ""],
        ["g", shelter, "一组", "", "", "", RICE, "3", "", ""],
    ]
    body = assert_problem(await upload(client, h, csv_bytes(rows)), 422)
    rejected = body["report"]["rows_rejected"]
    assert [x["row"] for x in rejected] == [2]
    assert "site_id" in rejected[0]["errors"][0]
    assert await all_needs(client, h) == []


@pytest.mark.parametrize(
    ("dimension", "cells"),
    [
        ("A1:XFD20000", [("A20000", "x")]),
        ("A1:XFD1048576", [("A1048576", "x")]),
        ("A1:XFD1048576", [*header_cells(HEADER), ("XFD1048576", "x")]),
    ],
    ids=["20000 rows declared", "1048576 rows declared", "a header and a far corner"],
)
async def test_import_refuses_a_sheet_declaring_a_huge_size_and_the_service_keeps_answering(
    client, auth: TokenFactory, dimension: str, cells: list[tuple[str, str]]
) -> None:
    """A 5 kB sheet may declare 16,384 columns by a million rows: refused fast, without padding every row."""
    _, _, h = await two_sites(client, auth)
    data = handmade_xlsx(dimension, cells)
    assert len(data) < 10_000
    r, _ = await answer_while_healthy(client, upload(client, h, data, "needs.xlsx", XLSX_TYPE))
    body = assert_problem(r, 422)
    assert body["type"].endswith("unreadable-file")
    assert await all_needs(client, h) == []


async def test_import_refuses_a_million_row_csv_and_the_service_keeps_answering(
    client, auth: TokenFactory, migrated: Settings
) -> None:
    _, _, h = await two_sites(client, auth)
    data = b"need_ref,site_id,title\n" + b"n,s,t\n" * 1_000_000
    assert len(data) < migrated.max_import_bytes  # refused for its rows, not its size
    r, _ = await answer_while_healthy(client, upload(client, h, data))
    body = assert_problem(r, 422)
    assert body["type"].endswith("unreadable-file")
    assert f"more than {migrated.max_import_rows} rows" in body["detail"]
    assert await all_needs(client, h) == []


async def test_import_of_20000_rows_is_read_off_the_event_loop(client, auth: TokenFactory, migrated: Settings) -> None:
    """The largest file taken at once: read in a worker thread while the service answers, and all imported."""
    site, _, h = await two_sites(client, auth)
    rows = migrated.max_import_rows
    wb = Workbook(write_only=True)
    ws = wb.create_sheet()
    ws.append(HEADER)
    codes = (N95, RICE, WATER, QUILT)
    for n in range(rows):  # 100 needs of 200 lines: the import's size, not 20,000 inserts, is under test
        ws.append([f"n{n // 200}", site, f"物资 {n // 200}", "high", "2030-03-01", 10, codes[n % 4], n + 1, "", ""])
    buf = io.BytesIO()
    wb.save(buf)
    # An honest file's import also writes 20,000 lines on the loop: a looser bound than for a refusal.
    r, waits = await answer_while_healthy(
        client, upload(client, h, buf.getvalue(), "needs.xlsx", XLSX_TYPE), within=1.5
    )
    assert r.status_code == 201, r.text
    report = r.json()
    assert report["imported"] is True and report["rows_accepted"] == rows and len(report["created"]) == rows // 200
    assert len(waits) > 10  # the file took a while to read, and /healthz answered all along
    got = (await client.get(f"/v1/needs/{report['created'][-1]}", headers=h)).json()
    assert [x["quantity"] for x in got["lines"]] == list(range(rows - 199, rows + 1))
