"""Exports of one relief operation: its needs and offers (each naming it in a column of its own), the deliveries to
its needs and the ledger entries of its offers — in CSV, XLSX and HXL (read back by libhxl) — and none of another
gift's rows; an operation with nothing yet exports its headers, one that does not exist is a 404, a malformed id
a 422."""

from __future__ import annotations

import io
import uuid
from typing import Any

import httpx
from openpyxl import load_workbook

from tests.helpers.auth import TokenFactory
from tests.helpers.exports import read_hxl, received_gift, rows_of
from tests.helpers.funds import create_operation
from tests.helpers.problems import assert_problem
from tests.helpers.waiting import eventually

PROGRAMME = "#activity+programme+code"


def column(rows: list[list[str]], name: str) -> list[str]:
    """The cells of the named column, below the header."""
    at = rows[0].index(name)
    return [row[at] for row in rows[1:]]


async def test_an_export_by_operation_has_only_that_operations_rows(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    operation = await create_operation(client, auth)
    op = operation["id"]
    inside = await received_gift(client, auth, operation_id=op, org="org-op-shelter", donor_org="org-op-grain")
    outside = await received_gift(client, auth)  # no operation
    coordinator = inside.coordinator
    url = "/v1/exports/{}?operation_id=" + op

    # Needs as CSV: the operation's need, every line of it, named by the operation; the other gift's need absent.
    async def needs_projected() -> list[list[str]] | None:
        r = await client.get(url.format("needs") + "&format=csv", headers=coordinator)
        assert r.status_code == 200, r.text
        rows = rows_of(r.text)
        return rows if inside.need["id"] in column(rows, "need_id") else None

    needs = await eventually(needs_projected)
    assert needs[0][-1] == "operation_id"
    assert set(column(needs, "need_id")) == {inside.need["id"]}
    assert len(needs) - 1 == len(inside.need["lines"])
    assert set(column(needs, "operation_id")) == {op}
    unfiltered = rows_of((await client.get("/v1/exports/needs", headers=coordinator)).text)
    assert outside.need["id"] in column(unfiltered, "need_id")
    [outside_row] = {row[-1] for row in unfiltered[1:] if row[0] == outside.need["id"]}
    assert outside_row == ""

    # Needs as HXL: the operation under its hashtag, as libhxl reads it.
    tags, data = read_hxl((await client.get(url.format("needs") + "&format=hxl", headers=coordinator)).content)
    assert PROGRAMME in tags and "#activity+id" in tags
    assert {row.get(PROGRAMME) for row in data} == {op}
    assert {row.get("#activity+id") for row in data} == {inside.need["id"]}

    # Offers as XLSX: the operation's offer, a row per lot, naming the operation.
    r = await client.get(url.format("offers") + "&format=xlsx", headers=coordinator)
    assert r.status_code == 200, r.text
    sheet = load_workbook(io.BytesIO(r.content), read_only=True).worksheets[0]
    table: list[list[Any]] = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert table[0][-1] == "operation_id"
    assert {row[0] for row in table[1:]} == {inside.offer["id"]}
    assert len(table) - 1 == len(inside.offer["lots"]) and {row[-1] for row in table[1:]} == {op}

    # Offers as HXL carry the operation's hashtag too.
    tags, data = read_hxl((await client.get(url.format("offers") + "&format=hxl", headers=coordinator)).content)
    assert {row.get(PROGRAMME) for row in data} == {op} and {row.get("#meta+id") for row in data} == {
        inside.offer["id"]
    }

    # Deliveries as HXL: the lines of the shipment to the operation's need; the other gift's shipment absent.
    tags, data = read_hxl((await client.get(url.format("deliveries") + "&format=hxl", headers=coordinator)).content)
    assert {row.get("#meta+id") for row in data} == {inside.shipment["id"]}
    assert {row.get("#activity+id") for row in data} == {inside.need["id"]}
    assert len(data) == len(inside.shipment["lines"])
    everything = rows_of((await client.get("/v1/exports/deliveries", headers=coordinator)).text)
    assert outside.shipment["id"] in column(everything, "shipment_id")

    # The ledger as CSV: the entries of the operation's offer (its in-kind value), none of the other's.
    ledger = rows_of((await client.get(url.format("ledger") + "&format=csv", headers=coordinator)).text)
    assert set(column(ledger, "offer_id")) == {inside.offer["id"]}
    assert "in_kind_offered" in column(ledger, "kind")
    whole = rows_of((await client.get("/v1/exports/ledger", headers=coordinator)).text)
    assert outside.offer["id"] in column(whole, "offer_id")


async def test_an_operation_without_rows_exports_headers_and_an_unknown_one_is_not_found(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    coordinator = auth("coordinator")
    quiet = await create_operation(client, auth, name="尚无物资的专项行动")
    for dataset in ("needs", "offers", "deliveries", "ledger"):
        r = await client.get(f"/v1/exports/{dataset}?format=csv&operation_id={quiet['id']}", headers=coordinator)
        assert r.status_code == 200, r.text
        assert len(rows_of(r.text)) == 1, r.text  # the header alone
        hxl_file = await client.get(f"/v1/exports/{dataset}?format=hxl&operation_id={quiet['id']}", headers=coordinator)
        tags, data = read_hxl(hxl_file.content)
        assert tags and data == []
    r = await client.get(f"/v1/exports/needs?operation_id={uuid.uuid4()}", headers=coordinator)
    assert_problem(r, 404)
    assert r.json()["type"].endswith("operation-not-found")
    assert_problem(await client.get("/v1/exports/needs?operation_id=not-a-uuid", headers=coordinator), 422)
    assert_problem(await client.get("/v1/exports/ledger?operation_id=12345", headers=coordinator), 422)
