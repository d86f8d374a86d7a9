"""Exports read back: a CSV's rows, an HXL file's hashtags and rows as libhxl reads them; and a gift received at
its shelter, the rows every dataset of an export then has."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import hxl

from tests.helpers.auth import TokenFactory
from tests.helpers.logistics import advance, full_receipt
from tests.helpers.scenario import Gift, ship_a_gift


def rows_of(text: str) -> list[list[str]]:
    """A CSV export's rows, its BOM dropped."""
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))


def read_hxl(content: bytes) -> tuple[list[str], list[Any]]:
    """The hashtags and rows as libhxl reads them (from memory: it leaves a file it opened itself unclosed)."""
    with io.BytesIO(content) as source:
        data = hxl.data(source)
        rows = list(data)
        return list(data.display_tags), rows


async def received_gift(client: httpx.AsyncClient, auth: TokenFactory, **over: Any) -> Gift:
    """`ship_a_gift(**over)`, picked up, delivered and received in full by its shelter."""
    gift = await ship_a_gift(client, auth, **over)
    sid = gift.shipment["id"]
    await advance(client, gift.carrier, sid, "picked_up", "delivered")
    s = (await client.get(f"/v1/shipments/{sid}", headers=gift.recipient)).json()
    r = await client.post(
        f"/v1/shipments/{sid}/receipt", headers=gift.recipient, json=full_receipt(s, s["handover_pin"])
    )
    assert r.status_code == 200, r.text
    return gift
