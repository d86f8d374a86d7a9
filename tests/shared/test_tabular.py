"""Reading uploaded spreadsheets: CSV in UTF-8 (with or without BOM) or GB18030, XLSX, and what is refused."""

from __future__ import annotations

import io
import random
import tracemalloc
from collections.abc import Sequence
from datetime import date, datetime

import pytest
from openpyxl import Workbook

from shared import tabular
from shared.tabular import MAX_COLUMNS, UnreadableFile, end_of_day, read_rows, split_list
from tests.helpers.spreadsheets import handmade_xlsx, header_cells

ROWS = [
    {"site_id": "s-1", "title": "急需口罩", "item_code": "ppe.mask.n95", "quantity": "1000"},
    {"site_id": "s-1", "title": "急需口罩", "item_code": "ppe.glove.nitrile", "quantity": "500"},
]
CSV = (
    "Site_ID , Title,item_code,QUANTITY\r\n"
    "s-1,急需口罩,ppe.mask.n95,1000\r\n"
    ",,,\r\n"
    "s-1,急需口罩,ppe.glove.nitrile, 500 \r\n"
)


def test_utf8_csv_with_a_bom() -> None:
    data = CSV.encode("utf-8-sig")
    assert data.startswith(b"\xef\xbb\xbf")
    assert read_rows(data, "needs.csv") == ROWS


def test_utf8_csv_without_a_bom() -> None:
    assert read_rows(CSV.encode(), "needs.csv") == ROWS


def test_gb18030_csv_as_excel_saves_it_in_chinese_locales() -> None:
    data = CSV.encode("gb18030")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    assert read_rows(data, "needs.csv") == ROWS


def test_quoted_fields_keep_commas_and_newlines() -> None:
    data = 'name,notes\n"医院, 东院","第一行\n第二行"\n'.encode()
    assert read_rows(data) == [{"name": "医院, 东院", "notes": "第一行\n第二行"}]


def test_short_rows_are_padded_and_unnamed_columns_dropped() -> None:
    assert read_rows(b"a,,c\n1\n1,2,3,4\n") == [{"a": "1", "c": ""}, {"a": "1", "c": "3"}]


def _xlsx(rows: Sequence[Sequence[object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for row in rows:
        ws.append(list(row))
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def test_xlsx_cells_become_text() -> None:
    data = _xlsx(
        [
            ["Site_ID", "Title", "Item_Code", "Quantity", "Needed_By", "Ratio", "Note"],
            ["s-1", " 急需口罩 ", "ppe.mask.n95", 1000, date(2022, 4, 15), 0.5, None],
            [None, None, None, None, None, None, None],
            ["s-1", "急需口罩", "ppe.glove.nitrile", 500.0, datetime(2022, 4, 15, 18, 30), 2, "夜班"],
        ]
    )
    assert data.startswith(b"PK\x03\x04")
    rows = read_rows(data, "needs.xlsx")
    assert rows == [
        {
            "site_id": "s-1",
            "title": "急需口罩",
            "item_code": "ppe.mask.n95",
            "quantity": "1000",
            "needed_by": "2022-04-15",  # a date cell stays a date (end_of_day reads it)
            "ratio": "0.5",
            "note": "",
        },
        {
            "site_id": "s-1",
            "title": "急需口罩",
            "item_code": "ppe.glove.nitrile",
            "quantity": "500",
            "needed_by": "2022-04-15T18:30:00+08:00",  # China time
            "ratio": "2",
            "note": "夜班",
        },
    ]
    assert read_rows(data, "") == rows  # recognised by its content, whatever it is called


@pytest.mark.parametrize(
    ("data", "filename"),
    [
        (b"", "needs.csv"),
        (b"\n\n  \n", "needs.csv"),
        (b",,,\n1,2,3\n", "needs.csv"),
        (b"site_id,title\n\n,\n", "needs.csv"),
        (_xlsx([]), "needs.xlsx"),
    ],
    ids=["empty", "blank lines", "empty header", "nothing below the header", "empty workbook"],
)
def test_files_without_a_header_or_rows_are_unreadable(data: bytes, filename: str) -> None:
    with pytest.raises(UnreadableFile) as info:
        read_rows(data, filename)
    assert info.value.status == 422


def _garbage(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


@pytest.mark.parametrize(
    ("data", "filename"),
    [
        (_garbage(4096, 1), "needs.csv"),
        (_garbage(4096, 2), ""),
        (b"\x89PNG\r\n\x1a\n" + _garbage(1024, 3), "photo.csv"),
        (b"PK\x03\x04" + _garbage(1024, 4), "needs.xlsx"),
        (b"site_id,title\ns-1,t\n", "needs.xlsx"),
        (b"site_id,title\x00\ns-1,t\n", "needs.csv"),
        (b"\xff\xfe\xff\xfe\xff", "needs.csv"),
    ],
    ids=["random", "random unnamed", "png", "broken zip", "csv named xlsx", "nul byte", "invalid in both encodings"],
)
def test_binary_garbage_is_unreadable(data: bytes, filename: str) -> None:
    with pytest.raises(UnreadableFile):
        read_rows(data, filename)


def test_too_many_rows_are_refused_blank_ones_not_counted() -> None:
    body = "".join(f"s-{i},t\n\n" for i in range(10))
    data = f"site_id,title\n{body}".encode()
    assert len(read_rows(data, max_rows=10)) == 10
    with pytest.raises(UnreadableFile, match="more than 10 rows"):
        read_rows(data + b"s-10,t\n", max_rows=10)
    many = _xlsx([["site_id"], *[[f"s-{i}"] for i in range(6)]])
    with pytest.raises(UnreadableFile, match="at most 5"):
        read_rows(many, "x.xlsx", max_rows=5)


def test_helpers_for_spreadsheet_values() -> None:
    assert end_of_day("2022-04-15") == "2022-04-15T23:59:59+08:00"
    assert end_of_day("2022-04-15T10:00:00Z") == "2022-04-15T10:00:00Z"
    assert end_of_day("") is None and end_of_day(None) is None
    assert split_list("310101; 310104，310105,310106；310107") == ["310101", "310104，310105", "310106", "310107"]
    assert split_list(None) == [] and split_list(" ; ") == []


def _refused_in_bounded_memory(data: bytes, filename: str, match: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(UnreadableFile, match=match):
            read_rows(data, filename)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 30_000_000, f"{peak / 1e6:.0f} MB to refuse a {len(data)}-byte file"


@pytest.mark.parametrize(
    ("dimension", "cells", "match"),
    [
        ("A1:XFD20000", [("A20000", "x")], "empty header row"),
        ("A1:XFD1048576", [("A1048576", "x")], "empty header row"),
        ("A1:XFD1048576", [*header_cells(["site_id", "title"]), ("XFD1048576", "x")], "more than 20000 blank rows"),
        ("A1:XFD1048576", [*header_cells(["site_id"]), ("A1048576", "s-1")], "more than 20000 blank rows"),
        ("A1:KZ2", header_cells(f"c{i}" for i in range(MAX_COLUMNS + 10)), f"more than {MAX_COLUMNS} columns"),
    ],
    ids=["no header, row 20000", "no header, row 1048576", "a far corner", "a far row", "too wide"],
)
def test_a_sheet_declaring_a_huge_size_is_refused_without_reading_it(
    dimension: str, cells: list[tuple[str, str]], match: str
) -> None:
    data = handmade_xlsx(dimension, cells)
    assert len(data) < 10_000
    _refused_in_bounded_memory(data, "needs.xlsx", match)


def test_a_declared_size_is_ignored_and_cells_right_of_the_header_are_not_read() -> None:
    cells = [*header_cells(["site_id", "title"]), ("A2", "s-1"), ("B2", "t"), ("XFD2", "far away"), ("C3", "x")]
    assert read_rows(handmade_xlsx("A1:XFD1048576", cells), "needs.xlsx") == [{"site_id": "s-1", "title": "t"}]


def test_an_xlsx_that_unpacks_too_large_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    data = handmade_xlsx("A1:A2", [*header_cells(["site_id"]), ("A2", "s-1")], padding=200_000)
    assert len(data) < 10_000
    assert read_rows(data, "needs.xlsx") == [{"site_id": "s-1"}]
    monkeypatch.setattr(tabular, "MAX_XLSX_UNPACKED_BYTES", 100_000)
    with pytest.raises(UnreadableFile, match="unpacks to more than"):
        read_rows(data, "needs.xlsx")


def test_a_damaged_sheet_is_unreadable_not_an_error() -> None:
    broken = handmade_xlsx("A1:A2", [*header_cells(["site_id"]), ("ZZZZZ2", "x")])
    with pytest.raises(UnreadableFile, match="sheet could not be read"):
        read_rows(broken, "needs.xlsx")


def test_a_million_row_csv_is_refused_at_the_row_limit() -> None:
    data = b"site_id,title\n" + b"s,t\n" * 1_000_000
    _refused_in_bounded_memory(data, "needs.csv", "more than 20000 rows")


def test_blank_rows_are_bounded_too() -> None:
    data = b"site_id,title\n" + b",\n" * 30 + b"s-1,t\n"
    assert read_rows(data, max_rows=30) == [{"site_id": "s-1", "title": "t"}]
    with pytest.raises(UnreadableFile, match="more than 29 blank rows"):
        read_rows(data, max_rows=29)


def test_a_csv_header_wider_than_the_column_limit_is_refused() -> None:
    header = ",".join(f"c{i}" for i in range(MAX_COLUMNS + 1))
    assert len(read_rows(f"{header[: header.rindex(',')]}\n1\n".encode())) == 1
    with pytest.raises(UnreadableFile, match=f"more than {MAX_COLUMNS} columns"):
        read_rows(f"{header}\n1\n".encode())
