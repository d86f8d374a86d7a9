"""Builders of the needs service's bodies, and sites and needs made through the API."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import N95, RICE, SHANGHAI

# The shelter of the flow scenarios, with the contact that no public page may show.
PUDONG_SHELTER: dict[str, Any] = {
    "name": "浦东临时安置点",
    "kind": "shelter",
    "region_code": "310115",
    "lat": 31.22,
    "lon": 121.54,
    "contact_name": "张三",
    "contact_phone": "13800000000",
}


def site_body(**over: Any) -> dict[str, Any]:
    """A hospital in Huangpu with its address and contact; `over` replaces or adds fields."""
    body: dict[str, Any] = {
        "name": "瑞金医院",
        "kind": "hospital",
        "region_code": "310101",
        "address": "上海市黄浦区瑞金二路197号",
        "lat": 31.21,
        "lon": 121.47,
        "contact_name": "王医生",
        "contact_phone": "+86 138 0000 0000",
    }
    body.update(over)
    return body


async def create_site(client: httpx.AsyncClient, headers: dict[str, str], **over: Any) -> dict[str, Any]:
    """`POST /v1/sites` of `site_body(**over)`, answered 201; the site."""
    r = await client.post("/v1/sites", headers=headers, json=site_body(**over))
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def need_body(site_id: str, /, *lines: dict[str, Any], **over: Any) -> dict[str, Any]:
    """A need of the site for these lines (100 N95 masks if none); `over` replaces or adds fields."""
    body: dict[str, Any] = {
        "site_id": site_id,
        "title": "ICU 防护物资",
        "urgency": "normal",
        "lines": list(lines) or [{"item_code": N95, "quantity": 100}],
    }
    body.update(over)
    return body


async def create_need(
    client: httpx.AsyncClient, headers: dict[str, str], site_id: str, /, *lines: dict[str, Any], **over: Any
) -> dict[str, Any]:
    """`POST /v1/needs` of `need_body(site_id, *lines, **over)`, answered 201; the need."""
    r = await client.post("/v1/needs", headers=headers, json=need_body(site_id, *lines, **over))
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def shelter_need(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    *lines: dict[str, Any],
    where: dict[str, Any] = SHANGHAI,
    org: str = "org-shelter",
    kind: str = "shelter",
    **over: Any,
) -> dict[str, Any]:
    """A need of a fresh site (of `org`), by default 100 rice in Pudong, urgency high."""
    headers = auth("frontline", org=org)
    site = await create_site(client, headers, kind=kind, **where)
    return await create_need(
        client, headers, site["id"], *(lines or ({"item_code": RICE, "quantity": 100},)), **{"urgency": "high", **over}
    )
