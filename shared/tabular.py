"""Reading uploaded spreadsheets (CSV or XLSX) into rows of text, for bulk imports.

A file is read as a stream and refused as soon as it goes past the limits (rows, blank rows, columns, and for
an XLSX the size it unpacks to), whatever size the file declares: a small file may claim a sheet of a million
rows by 16,384 columns. Reading is CPU work; `uploaded_rows` runs it in a worker thread.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
import zipfile
from collections.abc import Generator, Iterable, Sequence
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any

from fastapi import Depends, Request, UploadFile
from pydantic import BaseModel, Field, ValidationError

from shared.errors import InvalidRequest

XLSX_MAGIC = b"PK\x03\x04"
CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")
MAX_COLUMNS = 200
# A 20,000-row sheet of 30 columns unpacks to about 25 MB; parsing takes openpyxl ~0.3 s per MB.
MAX_XLSX_UNPACKED_BYTES = 64_000_000


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
    """Rows as {header: text}; headers are lower-cased and stripped. Raises UnreadableFile.

    The first row is the header (at most MAX_COLUMNS columns); cells right of it are not read, and a row with
    nothing under the header is blank. Blank rows are skipped, but no more than `max_rows` of them, next to at
    most `max_rows` rows with content: reading stops at the first row past either limit."""
    source = _xlsx(data) if data.startswith(XLSX_MAGIC) or filename.lower().endswith(".xlsx") else _csv(data)
    try:
        first = next(source, None)
        if first is None:
            raise UnreadableFile("The file has no header row.")
        width = max((i + 1 for i, h in enumerate(first) if h.strip()), default=0)
        if width == 0:
            raise UnreadableFile("The file has an empty header row.")
        if width > MAX_COLUMNS:
            raise UnreadableFile(f"The header has more than {MAX_COLUMNS} columns.")
        header = [h.strip().lower() for h in first[:width]]
        body: list[Sequence[str]] = []
        blank = 0
        too_many = f"The file has more than {max_rows} rows; at most {max_rows} are taken at once."
        for row in source:
            if any(c.strip() for c in row[:width]):
                body.append(row)
                if len(body) > max_rows:
                    raise UnreadableFile(too_many)
            else:
                blank += 1
                if blank > max_rows:
                    raise UnreadableFile(f"The file has more than {max_rows} blank rows.")
    finally:
        source.close()
    if not body:
        raise UnreadableFile("The file has no rows below its header.")
    return [{h: (r[i].strip() if i < len(r) else "") for i, h in enumerate(header) if h} for r in body]


def _csv(data: bytes) -> Generator[list[str]]:
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
        yield from csv.reader(_lines(text))
    except csv.Error as exc:
        raise UnreadableFile(f"The CSV could not be parsed: {exc}") from exc


def _lines(text: str) -> Generator[str]:
    """The lines of `text` one at a time (a StringIO would copy all of it, at four bytes a character)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def _xlsx(data: bytes) -> Generator[list[str]]:
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise UnreadableFile("The XLSX file could not be opened.") from exc
    # zipfile never unpacks past a member's declared size, so the sum bounds what openpyxl reads.
    if unpacked > MAX_XLSX_UNPACKED_BYTES:
        raise UnreadableFile(f"The XLSX file unpacks to more than {MAX_XLSX_UNPACKED_BYTES // 1_000_000} MB.")
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise UnreadableFile("The XLSX file could not be opened.") from exc
    try:
        ws = wb.worksheets[0]
        # The declared dimension is not trusted: without it openpyxl pads nothing past what max_col asks.
        ws.reset_dimensions()
        for values in ws.iter_rows(max_col=MAX_COLUMNS + 1, values_only=True):
            yield [] if values.count(None) == len(values) else ["" if v is None else _cell(v) for v in values]
    except UnreadableFile:
        raise
    except Exception as exc:  # a damaged sheet, or a cell openpyxl cannot turn into a value
        raise UnreadableFile("The XLSX sheet could not be read.") from exc
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
    return await asyncio.to_thread(read_rows, data, file.filename or "", max_rows=settings.max_import_rows)


UploadedRows = Annotated[list[dict[str, str]], Depends(uploaded_rows)]


def unknown_items(
    errors: RowErrors, codes: Iterable[tuple[int, str]], units: Iterable[tuple[int, str, str | None]] = ()
) -> bool:
    """Record each (row, item code) not in the catalog, and each (row, item code, unit) whose unit is neither
    the item's nor one of its packs; True when there was any."""
    from shared.catalog import get_catalog

    catalog = get_catalog()
    found = False
    for row, code in codes:
        if code not in catalog:
            errors.add(row, f"item_code: {code!r} is not in the catalog")
            found = True
    for row, code, unit in units:
        item = catalog.get(code)
        if item is not None and item.base_units_per(unit) is None:
            errors.add(row, f"unit: {code} is counted in {', '.join(item.units())}, not {unit!r}")
            found = True
    return found


# What a spreadsheet takes for the start of a formula (and the tab and carriage return that can hide one).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A cell for an exported sheet: text that a spreadsheet would run as a formula (`=HYPERLINK(…)`, `+1`,
    `@SUM`) gets a leading apostrophe, so it is shown as the text it is; numbers and empty cells pass as they
    are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
