"""Reading uploaded spreadsheets: CSV in UTF-8 (with or without BOM) or GB18030, XLSX, and what is refused."""

from __future__ import annotations

import io
import random
from datetime import date, datetime

import pytest
from openpyxl import Workbook

from shared.tabular import UnreadableFile, end_of_day, read_rows, split_list

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


def _xlsx(rows: list[list[object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    for row in rows:
        ws.append(row)
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
        (_xlsx([]), "needs.xlsx"),
    ],
    ids=["empty", "blank lines", "empty header", "empty workbook"],
)
def test_files_without_a_header_are_unreadable(data: bytes, filename: str) -> None:
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
    with pytest.raises(UnreadableFile, match="11 rows"):
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
