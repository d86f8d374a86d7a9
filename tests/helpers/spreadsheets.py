"""Hostile spreadsheets built by hand (a zip of hand-written XML), and the check that refusing one does not
stall the service: /healthz keeps answering while the upload is read."""

from __future__ import annotations

import asyncio
import io
import time
import zipfile
from collections.abc import Awaitable, Iterable

import httpx

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PARTS = {
    "[Content_Types].xml": (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        "</Types>"
    ),
    "_rels/.rels": (
        f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_RELS}">'
        f'<Relationship Id="rId1" Type="{_DOC}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
    ),
    "xl/workbook.xml": (
        f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{_MAIN}" xmlns:r="{_DOC}">'
        '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_RELS}">'
        f'<Relationship Id="rId1" Type="{_DOC}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
    ),
}


def handmade_xlsx(dimension: str, cells: Iterable[tuple[str, str]], padding: int = 0) -> bytes:
    """A one-sheet workbook declaring `dimension` (e.g. "A1:XFD20000") and holding `cells` as
    (reference, text) in row order; `padding` bytes of white space inflate what the sheet unpacks to."""
    rows: dict[int, list[str]] = {}
    for ref, text in cells:
        number = int(ref.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        rows.setdefault(number, []).append(f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>')
    data = "".join(f'<row r="{n}">{"".join(c)}</row>' for n, c in sorted(rows.items()))
    sheet = (
        f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{_MAIN}">'
        f'<dimension ref="{dimension}"/><sheetData>{data}</sheetData>{" " * padding}</worksheet>'
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, xml in {**_PARTS, "xl/worksheets/sheet1.xml": sheet}.items():
            archive.writestr(name, xml)
    return out.getvalue()


def header_cells(columns: Iterable[str]) -> list[tuple[str, str]]:
    from openpyxl.utils import get_column_letter

    return [(f"{get_column_letter(i)}1", name) for i, name in enumerate(columns, start=1)]


async def answer_while_healthy(
    client: httpx.AsyncClient, request: Awaitable[httpx.Response], *, within: float = 0.5
) -> tuple[httpx.Response, list[float]]:
    """Send `request` and, until it is answered, probe /healthz every 10 ms: each probe (the pause before it
    included, so that an event loop blocked meanwhile shows) must answer within `within` seconds.
    Returns the response and how long each probe took."""
    task = asyncio.ensure_future(request)
    waits: list[float] = []
    while not waits or not task.done():
        start = time.perf_counter()
        await asyncio.sleep(0.01)  # the upload runs meanwhile
        health = await client.get("/healthz")
        waits.append(time.perf_counter() - start)
        assert health.status_code == 200
    response = await task
    assert max(waits) < within, f"/healthz waited {max(waits):.2f} s while the upload was read"
    return response, waits
