"""Reading uploaded spreadsheets (CSV or XLSX) into rows of text, for bulk imports."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any

from shared.errors import InvalidRequest

XLSX_MAGIC = b"PK\x03\x04"


class UnreadableFile(InvalidRequest):
    slug, title = "unreadable-file", "The file is not a readable CSV or XLSX spreadsheet"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_rows(data: bytes, filename: str = "", *, max_rows: int = 20_000) -> list[dict[str, str]]:
    """Rows as {header: text}; headers are lower-cased and stripped. Raises UnreadableFile."""
    if data.startswith(XLSX_MAGIC) or filename.lower().endswith(".xlsx"):
        rows = _xlsx(data)
    else:
        rows = _csv(data)
    if not rows:
        raise UnreadableFile("The file has no header row.")
    header = [h.strip().lower() for h in rows[0]]
    if not any(header):
        raise UnreadableFile("The file has an empty header row.")
    body = [r for r in rows[1:] if any(c.strip() for c in r)]
    if len(body) > max_rows:
        raise UnreadableFile(f"The file has {len(body)} rows; at most {max_rows} are taken at once.")
    return [{h: (r[i].strip() if i < len(r) else "") for i, h in enumerate(header) if h} for r in body]


def _csv(data: bytes) -> list[list[str]]:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in Chinese locales saves CSV as GB18030
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise UnreadableFile("The CSV is neither UTF-8 nor GB18030 text.")
    if "\x00" in text:
        raise UnreadableFile("The file is binary, not CSV text.")
    try:
        return [list(r) for r in csv.reader(io.StringIO(text))]
    except csv.Error as exc:
        raise UnreadableFile(f"The CSV could not be parsed: {exc}") from exc


def _xlsx(data: bytes) -> list[list[str]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise UnreadableFile("The XLSX file could not be opened.") from exc
    try:
        ws = wb.worksheets[0]
        return [[_cell(c) for c in row] for row in ws.iter_rows(values_only=True)]
    finally:
        wb.close()
