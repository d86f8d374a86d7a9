"""Reading import files: how long `shared.tabular.read_rows` takes, and the memory it peaks at, to take the
largest honest files (20,000 rows, CSV and XLSX) and to refuse hostile ones (a few kB of XLSX declaring a
sheet of 16,384 columns by up to a million rows; a million-row CSV under the byte limit).

The services run this in a worker thread; here it runs alone. Prints a table and writes
bench/results/imports.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import time
import tracemalloc
import uuid
from collections.abc import Callable

from openpyxl import Workbook

from bench.common import median, table, write_result
from shared.tabular import UnreadableFile, read_rows
from tests.helpers.spreadsheets import handmade_xlsx, header_cells

HEADER = ["need_ref", "site_id", "title", "urgency", "needed_by", "beneficiaries", "item_code", "quantity", "unit"]
ROWS = 20_000


def _honest_rows() -> list[list[object]]:
    site = str(uuid.uuid4())
    return [
        [f"n{n // 200}", site, f"物资 {n // 200}", "high", "2030-03-01", 10, "ppe.mask.n95", n + 1, "piece"]
        for n in range(ROWS)
    ]


def _honest_csv() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    writer.writerows(_honest_rows())
    return out.getvalue().encode()


def _honest_xlsx() -> bytes:
    wb = Workbook(write_only=True)
    ws = wb.create_sheet()
    ws.append(HEADER)
    for row in _honest_rows():
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


FILES: list[tuple[str, str, Callable[[], bytes]]] = [
    ("CSV, 20,000 rows", "needs.csv", _honest_csv),
    ("XLSX, 20,000 rows", "needs.xlsx", _honest_xlsx),
    (
        "XLSX declaring A1:XFD20000, one cell on row 20000",
        "x.xlsx",
        lambda: handmade_xlsx("A1:XFD20000", [("A20000", "x")]),
    ),
    (
        "XLSX declaring A1:XFD1048576, a header and a far corner",
        "x.xlsx",
        lambda: handmade_xlsx("A1:XFD1048576", [*header_cells(HEADER), ("XFD1048576", "x")]),
    ),
    ("CSV, 1,000,000 short rows", "x.csv", lambda: b"need_ref,site_id,title\n" + b"n,s,t\n" * 1_000_000),
]


def _read(data: bytes, name: str) -> str:
    try:
        return f"{len(read_rows(data, name))} rows"
    except UnreadableFile as exc:
        return f"refused: {exc.detail}"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="bench.imports")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per file (median)")
    args = parser.parse_args(argv)
    read_rows(_honest_csv()[:2000], "warm-up.csv")  # imports and the catalog, outside the timings
    rows = []
    for label, name, make in FILES:
        data = make()
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            outcome = _read(data, name)
            times.append(time.perf_counter() - start)
        tracemalloc.start()
        _read(data, name)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rows.append([label, f"{len(data):,}", outcome, f"{median(times) * 1000:.0f}", f"{peak / 1e6:.1f}"])
    text = "\n".join(
        [
            f"## Reading import files with shared.tabular.read_rows (median of {args.repeat})",
            "",
            table(["file", "bytes", "outcome", "ms", "peak MB"], rows),
            "",
            "Row limit 20,000 (as many blank rows), 200 columns, XLSX unpacked at most 64 MB; the services read in a "
            "worker thread, so the event loop keeps answering (tests/needs/test_imports.py checks /healthz).",
        ]
    )
    print(text)
    write_result("imports", text)
    return text


if __name__ == "__main__":
    main()
