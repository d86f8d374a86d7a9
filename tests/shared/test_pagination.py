"""Cursor pagination: pages newest first with no gaps or repeats, and bad cursors or limits are 422."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from shared.errors import InvalidRequest
from shared.pagination import decode_cursor, encode_cursor
from tests.helpers.auth import TokenFactory
from tests.helpers.needs import create_site
from tests.helpers.problems import assert_problem


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_a_cursor_round_trips() -> None:
    at, id_ = datetime(2022, 4, 1, 8, 30, 15, 123456, tzinfo=UTC), uuid.uuid4()
    cursor = encode_cursor(at, id_)
    assert "=" not in cursor and len(cursor) <= 200
    assert decode_cursor(cursor) == (at, id_)
    shanghai = datetime(2022, 4, 1, 16, 30, tzinfo=timezone(timedelta(hours=8)))
    decoded, _ = decode_cursor(encode_cursor(shanghai, id_))
    assert decoded == shanghai and decoded.utcoffset() is not None


BAD_CURSORS = {
    "not base64": "!!!***",
    "not json": base64.urlsafe_b64encode(b"hello").decode(),
    "an object": _cursor({}),
    "one value": _cursor(["2024-01-01T00:00:00+00:00"]),
    "three values": _cursor(["2024-01-01T00:00:00+00:00", str(uuid.uuid4()), 1]),
    "null": _cursor(None),
    "bad date": _cursor(["yesterday", str(uuid.uuid4())]),
    "bad id": _cursor(["2024-01-01T00:00:00+00:00", "not-a-uuid"]),
    "numeric id": _cursor(["2024-01-01T00:00:00+00:00", 5]),
    "numeric date": _cursor([5, str(uuid.uuid4())]),
    "no time zone": _cursor(["2024-01-01T00:00:00", str(uuid.uuid4())]),
    "after year 9999 in UTC": _cursor(["9999-12-31T23:59:59-14:00", str(uuid.uuid4())]),
    "before year 1 in UTC": _cursor(["0001-01-01T00:00:00+14:00", str(uuid.uuid4())]),
}


@pytest.mark.parametrize("cursor", BAD_CURSORS.values(), ids=BAD_CURSORS.keys())
def test_decode_cursor_refuses_what_the_api_never_returned(cursor: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        decode_cursor(cursor)
    assert info.value.errors == [{"loc": ["query", "cursor"], "msg": "invalid cursor"}]


@pytest.mark.usefixtures("redis")
@pytest.mark.parametrize("cursor", [*BAD_CURSORS.values(), "x" * 201], ids=[*BAD_CURSORS.keys(), "too long"])
async def test_an_invalid_cursor_is_a_422_problem(client: httpx.AsyncClient, auth: TokenFactory, cursor: str) -> None:
    response = await client.get("/v1/sites", params={"cursor": cursor}, headers=auth("coordinator"))
    body = assert_problem(response, 422)
    assert body["errors"][0]["loc"] == ["query", "cursor"]


@pytest.mark.usefixtures("redis")
@pytest.mark.parametrize("limit", ["0", "501", "-1", "ten", "1.5"])
async def test_a_limit_outside_1_to_500_is_a_422_problem(
    client: httpx.AsyncClient, auth: TokenFactory, limit: str
) -> None:
    for path in ("/v1/sites", "/v1/needs", "/v1/offers"):
        response = await client.get(path, params={"limit": limit}, headers=auth("coordinator"))
        body = assert_problem(response, 422, context=f"{path}?limit={limit}")
        assert body["errors"][0]["loc"] == ["query", "limit"]


@pytest.mark.usefixtures("redis")
async def test_pages_walk_every_item_once_newest_first(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    frontline = auth("frontline")
    made = []
    for i in range(5):
        site = await create_site(client, frontline, name=f"站点 {i}", kind="community", region_code="420106")
        made.append(site["id"])

    seen: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/sites", params=params, headers=frontline)).json()
        sizes.append(len(page["items"]))
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sizes == [2, 2, 1]
    assert seen == list(reversed(made))

    everything = (await client.get("/v1/sites", params={"limit": "500"}, headers=frontline)).json()
    assert [s["id"] for s in everything["items"]] == seen and everything["next_cursor"] is None
    default = (await client.get("/v1/sites", headers=frontline)).json()
    assert len(default["items"]) == 5 and set(default) == {"items", "next_cursor"}
