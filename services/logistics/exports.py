"""Exports of needs, offers, deliveries and the ledger for partners and the platforms a hub reports to: CSV, XLSX
or HXL-tagged CSV (the Humanitarian Exchange Language: a second header row of hashtags such as `#adm3+code`).

An export is read in keyset pages of `PAGE_SIZE` rows from a session of its own (the request's session ends with
the handler, the stream goes on after it) and written out page by page, so its memory stays bounded whatever its
length. An XLSX is written by openpyxl's write-only workbook, which keeps its rows in a temporary file, and sent
from there. Every text cell a spreadsheet would take for a formula is escaped (`shared.tabular.spreadsheet_safe`).
An export narrows to a region prefix, a time window and a relief operation; `exports_repository` says how a row
of each dataset belongs to an operation. Needs and offers name theirs in a column of their own.

The public 3W export (who, what, where) counts deliveries received by county, item category and month, and says
nothing of people: no names, contacts, addresses, PINs or organisations."""

from __future__ import annotations

import asyncio
import csv
import io
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from openpyxl import Workbook
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.logistics.exports_repository import PAGE_SIZE, ExportRepository, Filters, Position
from services.logistics.models import LedgerEntry, NeedView, OfferView
from shared.catalog import get_catalog
from shared.tabular import spreadsheet_safe

CHUNK_BYTES = 64 * 1024


class Dataset(StrEnum):
    needs = "needs"
    offers = "offers"
    deliveries = "deliveries"
    ledger = "ledger"


class ExportFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"
    hxl = "hxl"


class PublicFormat(StrEnum):
    hxl = "hxl"
    csv = "csv"


MEDIA_TYPES = {
    ExportFormat.csv: "text/csv; charset=utf-8",
    ExportFormat.hxl: "text/csv; charset=utf-8",
    ExportFormat.xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


Row = list[Any]
Column = tuple[str, str]  # (header, HXL hashtag)


def _regions(code: str | None) -> list[str | None]:
    """A county code's province, city and county codes (GB/T 2260: two digits each)."""
    if not code:
        return [None, None, None]
    return [code[:2] + "0000", code[:4] + "00", code]


REGION_COLUMNS: list[Column] = [
    ("province_code", "#adm1+code"),
    ("city_code", "#adm2+code"),
    ("county_code", "#adm3+code"),
]
ITEM_COLUMNS: list[Column] = [("item_code", "#item+code"), ("item_name", "#item+name"), ("category", "#sector")]
# The relief operation (专项行动) a need or offer belongs to: in HXL an activity at the programme level, which the
# needs' own activities (`#activity+id`, `#activity+name`) are part of.
OPERATION_COLUMN: Column = ("operation_id", "#activity+programme+code")


def _item(code: str | None) -> list[Any]:
    item = get_catalog().get(code) if code else None
    return [code, item.name.zh if item else None, item.category if item else None]


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _id(value: uuid.UUID | None) -> str | None:
    return str(value) if value else None


@dataclass(frozen=True)
class Source:
    """One dataset: its columns, the query of one page after a keyset position, and its rows."""

    columns: list[Column]
    page: Callable[[ExportRepository, Filters, Position], Awaitable[Sequence[Any]]]
    rows: Callable[[Any, Filters], Iterable[Row]]
    key: Callable[[Any], tuple[Any, ...]]


# --- needs: one row per need line -------------------------------------------------------------------------------


def _needs_rows(n: NeedView, f: Filters) -> Iterable[Row]:
    for line in n.lines:
        yield [
            str(n.need_id),
            n.org,
            *_regions(n.region_code),
            str(n.site_id),
            n.title,
            n.status.value,
            *_item(line["item_code"]),
            line["quantity"],
            line.get("quantity_delivered", 0),
            n.beneficiaries,
            _time(n.need_created_at),
            _id(n.operation_id),
        ]


NEEDS = Source(
    columns=[
        ("need_id", "#activity+id"),
        ("org", "#org+code"),
        *REGION_COLUMNS,
        ("site_id", "#loc+id"),
        ("title", "#activity+name"),
        ("status", "#status"),
        *ITEM_COLUMNS,
        ("quantity", "#indicator+num+needed"),
        ("quantity_delivered", "#indicator+num+delivered"),
        ("beneficiaries", "#affected+num"),
        ("created_at", "#date+created"),
        OPERATION_COLUMN,
    ],
    page=ExportRepository.needs,
    rows=_needs_rows,
    key=lambda n: (n.need_created_at, n.need_id),
)


# --- offers: one row per lot (a cash pledge: one row with its amount) ---------------------------------------------


def _offers_rows(o: OfferView, f: Filters) -> Iterable[Row]:
    head = [str(o.offer_id), o.org, o.kind, o.status.value]
    tail = [_time(o.offer_created_at), _id(o.operation_id)]
    if not o.lots:
        if f.region_code is None:  # money has no place until it is spent
            yield [*head, o.amount, o.currency, *_regions(None), *_item(None), None, *tail]
        return
    for lot in o.lots:
        region = lot.get("region_code")
        if f.region_code and not (region or "").startswith(f.region_code):
            continue
        yield [*head, None, None, *_regions(region), *_item(lot["item_code"]), lot["quantity"], *tail]


OFFERS_COLUMNS: list[Column] = [
    ("offer_id", "#meta+id"),
    ("org", "#org+code"),
    ("kind", "#meta+kind"),
    ("status", "#status"),
    ("amount_fen", "#value"),
    ("currency", "#currency"),
    *REGION_COLUMNS,
    *ITEM_COLUMNS,
    ("quantity", "#indicator+num+offered"),
    ("created_at", "#date+created"),
    OPERATION_COLUMN,
]
OFFERS = Source(
    columns=OFFERS_COLUMNS,
    page=ExportRepository.offers,
    rows=_offers_rows,
    key=lambda o: (o.offer_created_at, o.offer_id),
)


# --- deliveries: one row per shipment line ------------------------------------------------------------------------


def _deliveries_rows(r: Any, f: Filters) -> Iterable[Row]:
    line, s = r
    yield [
        str(s.id),
        s.status.value,
        s.origin_org,
        s.destination_org,
        *_regions(s.region_code),
        str(s.destination_site_id),
        *_item(line.item_code),
        line.quantity,
        line.quantity_received,
        str(line.need_id) if line.need_id else None,
        str(line.offer_id) if line.offer_id else None,
        _time(s.created_at),
        _time(s.received_at),
    ]


DELIVERIES = Source(
    columns=[
        ("shipment_id", "#meta+id"),
        ("status", "#status"),
        ("origin_org", "#org+provider"),
        ("destination_org", "#org+recipient"),
        *REGION_COLUMNS,
        ("site_id", "#loc+id"),
        *ITEM_COLUMNS,
        ("quantity", "#indicator+num+shipped"),
        ("quantity_received", "#indicator+num+received"),
        ("need_id", "#activity+id"),
        ("offer_id", "#meta+offer"),
        ("created_at", "#date+created"),
        ("received_at", "#date+received"),
    ],
    page=ExportRepository.deliveries,
    rows=_deliveries_rows,
    key=lambda r: (r[1].created_at, r[0].id),
)


# --- the ledger: one row per entry -------------------------------------------------------------------------------


def _ledger_rows(e: LedgerEntry, f: Filters) -> Iterable[Row]:
    ids = (e.offer_id, e.procurement_id, e.shipment_id)
    yield [
        str(e.id),
        e.kind.value,
        e.amount,
        e.currency,
        *(str(i) if i else None for i in ids),
        *_regions(e.region_code),
        *_item(e.item_code),
        e.quantity,
        e.memo,
        _time(e.created_at),
    ]


LEDGER = Source(
    columns=[
        ("entry_id", "#meta+id"),
        ("kind", "#meta+kind"),
        ("amount_fen", "#value"),
        ("currency", "#currency"),
        ("offer_id", "#meta+offer"),
        ("procurement_id", "#meta+procurement"),
        ("shipment_id", "#meta+shipment"),
        *REGION_COLUMNS,
        *ITEM_COLUMNS,
        ("quantity", "#indicator+num"),
        ("memo", "#description"),
        ("at", "#date"),
    ],
    page=ExportRepository.ledger,
    rows=_ledger_rows,
    key=lambda e: (e.created_at, e.id),
)

SOURCES = {Dataset.needs: NEEDS, Dataset.offers: OFFERS, Dataset.deliveries: DELIVERIES, Dataset.ledger: LEDGER}


# --- writing -----------------------------------------------------------------------------------------------------


async def _pages(sessions: async_sessionmaker[AsyncSession], source: Source, f: Filters) -> AsyncIterator[list[Row]]:
    """The dataset's rows, a page at a time, each page in a short transaction of its own."""
    position: Position = None
    while True:
        async with sessions() as session:
            found = await source.page(ExportRepository(session), f, position)
        if not found:
            return
        yield [[spreadsheet_safe(v) for v in row] for item in found for row in source.rows(item, f)]
        if len(found) < PAGE_SIZE:
            return
        position = source.key(found[-1])


def _csv_text(rows: Iterable[Row]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode("utf-8")


async def _csv_stream(header: list[Row], pages: AsyncIterator[list[Row]]) -> AsyncIterator[bytes]:
    yield b"\xef\xbb\xbf" + _csv_text(header)  # the BOM: Excel opens a UTF-8 CSV as UTF-8 only with it
    async for rows in pages:
        yield _csv_text(rows)


async def _xlsx_stream(title: str, header: list[Row], pages: AsyncIterator[list[Row]]) -> AsyncIterator[bytes]:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title)
    for row in header:
        ws.append(row)
    async for rows in pages:
        for row in rows:
            ws.append(row)
    with tempfile.TemporaryFile() as tmp:
        await asyncio.to_thread(wb.save, tmp)
        tmp.seek(0)
        while chunk := await asyncio.to_thread(tmp.read, CHUNK_BYTES):
            yield chunk


def stream(
    sessions: async_sessionmaker[AsyncSession], dataset: Dataset, fmt: ExportFormat, f: Filters
) -> AsyncIterator[bytes]:
    source = SOURCES[dataset]
    header: list[Row] = [[name for name, _ in source.columns]]
    if fmt is ExportFormat.hxl:
        header.append([tag for _, tag in source.columns])
    pages = _pages(sessions, source, f)
    if fmt is ExportFormat.xlsx:
        return _xlsx_stream(dataset.value, header, pages)
    return _csv_stream(header, pages)


def filename(dataset: str, fmt: ExportFormat | PublicFormat) -> str:
    suffix = {"xlsx": "xlsx", "hxl": "hxl.csv", "csv": "csv"}[fmt.value]
    return f"reliefhub-{dataset}.{suffix}"


# --- the public 3W export ----------------------------------------------------------------------------------------

PUBLIC_COLUMNS: list[Column] = [
    *REGION_COLUMNS,
    ("category", "#sector"),
    ("month", "#date+month"),
    ("shipments", "#indicator+shipments+num"),
    ("sites", "#indicator+sites+num"),
    ("quantity_received", "#indicator+received+num"),
]


async def public_deliveries(session: AsyncSession, fmt: PublicFormat) -> AsyncIterator[bytes]:
    """Received shipments counted by county, item category and month (China time). The grouping in SQL is by
    item code; codes fold into their categories here (a catalog-sized step, whatever the number of rows)."""
    groups: dict[tuple[str, str, str], tuple[set[Any], set[Any], int]] = {}
    received = await ExportRepository(session).received_by_region_item_month()
    for region, item_code, at_month, shipment_ids, site_ids, quantity in received:
        item = get_catalog().get(item_code)
        key = (region, item.category if item else "other", at_month)
        ships, sites, total = groups.get(key, (set(), set(), 0))
        groups[key] = (ships | set(shipment_ids), sites | set(site_ids), total + quantity)
    header: list[Row] = [[name for name, _ in PUBLIC_COLUMNS]]
    if fmt is PublicFormat.hxl:
        header.append([tag for _, tag in PUBLIC_COLUMNS])
    rows = [
        [*_regions(region), category, at_month, len(ships), len(sites), total]
        for (region, category, at_month), (ships, sites, total) in sorted(groups.items())
    ]
    yield b"\xef\xbb\xbf" + _csv_text(header)
    yield _csv_text([[spreadsheet_safe(v) for v in row] for row in rows])


__all__ = ["Dataset", "ExportFormat", "Filters", "PublicFormat", "filename", "public_deliveries", "stream"]
