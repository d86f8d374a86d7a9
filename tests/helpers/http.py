"""Reading the API: a JSON answer, and every page of a list."""

from __future__ import annotations

from typing import Any

import httpx


async def get_json(client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any) -> Any:
    """`GET path`, answered 200; its JSON."""
    r = await client.get(path, headers=headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def collect_pages(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], params: dict[str, Any], limit: int = 2
) -> tuple[list[str], int]:
    """Ids over every page (following next_cursor) and the number of pages fetched."""
    ids: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        q = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        r = await client.get(path, headers=headers, params=q)
        assert r.status_code == 200, r.text
        page = r.json()
        pages += 1
        assert len(page["items"]) <= limit
        ids += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, pages
        assert pages < 50, "pagination does not terminate"
