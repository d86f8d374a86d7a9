"""Reading uploaded spreadsheets (CSV or XLSX) into rows of text, for bulk imports."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any

from fastapi import Depends, Request, UploadFile
from pydantic import BaseModel, Field, ValidationError

from shared.errors import InvalidRequest

XLSX_MAGIC = b"PK\x03\x04"
CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")


class UnreadableFile(InvalidRequest):
    slug, title = "unreadable-file", "The file is not a readable CSV or XLSX spreadsheet"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is None and value.time() == time():  # a date typed into a cell
            return value.date().isoformat()
        # A spreadsheet's times carry no zone; the people typing them are on China time.
        return (value if value.tzinfo else value.replace(tzinfo=CHINA)).isoformat()
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


class ImportRowError(BaseModel):
    row: int = Field(description="1-based row number in the file, header excluded (0: the header itself).")
    errors: list[str]


class ImportReport(BaseModel):
    """What a bulk import did: all rows accepted and imported, or none imported and why per row."""

    rows_total: int
    rows_accepted: int
    rows_rejected: list[ImportRowError]
    created: list[uuid.UUID]
    imported: bool


class RowErrors:
    """Collects the reasons each row is rejected."""

    def __init__(self) -> None:
        self._by_row: dict[int, list[str]] = {}

    def add(self, row: int, message: str) -> None:
        self._by_row.setdefault(row, []).append(message)

    def add_validation(self, exc: ValidationError, rows: list[int], list_field: str) -> None:
        """Map a pydantic error on a grouped record back to its file rows (`list_field[i]` is row `rows[i]`)."""
        for err in exc.errors():
            loc = list(err["loc"])
            if loc[:1] == [list_field] and len(loc) > 1 and isinstance(loc[1], int):
                row, field = rows[loc[1]], ".".join(str(x) for x in loc[2:]) or list_field
            else:
                row, field = rows[0], ".".join(str(x) for x in loc) or "row"
            self.add(row, f"{field}: {err['msg']}")

    def __bool__(self) -> bool:
        return bool(self._by_row)

    def report(self, rows_total: int) -> ImportReport:
        rejected = [ImportRowError(row=r, errors=e) for r, e in sorted(self._by_row.items())]
        return ImportReport(rows_total=rows_total, rows_accepted=0, rows_rejected=rejected, created=[], imported=False)


class ImportRejected(InvalidRequest):
    slug, title = "import-rejected", "Rows were rejected; nothing was imported"

    @classmethod
    def from_report(cls, report: ImportReport) -> ImportRejected:
        n = len(report.rows_rejected)
        return cls(
            f"{n} of {report.rows_total} rows were rejected; nothing was imported.",
            errors=[{"loc": ["file", "row", r.row], "msg": "; ".join(r.errors)} for r in report.rows_rejected],
            extra={"report": report.model_dump(mode="json")},
        )


def group_rows(
    rows: list[dict[str, str]], ref_column: str, required: tuple[str, ...], errors: RowErrors
) -> list[list[tuple[int, dict[str, str]]]]:
    """Rows grouped by `ref_column` (each row alone when it is empty), numbered from 1."""
    if rows:
        for column in required:
            if column not in rows[0]:
                errors.add(0, f"missing column: {column}")
        if errors:
            return []
    groups: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for n, row in enumerate(rows, start=1):
        groups.setdefault(row.get(ref_column) or f"\x00row-{n}", []).append((n, row))
    return list(groups.values())


def end_of_day(value: str | None) -> str | None:
    """A bare date in a spreadsheet means the end of that day, China time."""
    if value and len(value) == 10 and value[4] == "-" and value[7] == "-":
        return value + "T23:59:59+08:00"
    return value or None


def split_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").replace("；", ";").replace(",", ";").split(";") if v.strip()]


async def uploaded_rows(request: Request, file: UploadFile) -> list[dict[str, str]]:
    """The rows of an uploaded spreadsheet (multipart field `file`), within the import limits."""
    settings = request.app.state.settings
    data = await file.read(settings.max_import_bytes + 1)
    return read_rows(data, file.filename or "", max_rows=settings.max_import_rows)


UploadedRows = Annotated[list[dict[str, str]], Depends(uploaded_rows)]


def unknown_items(errors: RowErrors, codes: Iterable[tuple[int, str]]) -> bool:
    """Record each (row, item code) not in the catalog; True when there was any."""
    from shared.catalog import get_catalog

    catalog = get_catalog()
    found = False
    for row, code in codes:
        if code not in catalog:
            errors.add(row, f"item_code: {code!r} is not in the catalog")
            found = True
    return found
