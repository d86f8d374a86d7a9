"""Mobile sync: `updated_since` change cursors on needs, offers, proposals and shipments return exactly what
changed after a point — a change committed after a later-numbered one included — and single GETs answer 304
to a matching If-None-Match."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers.auth import TokenFactory
from tests.helpers.logistics import advance
from tests.helpers.needs import create_need, create_site
from tests.helpers.problems import assert_problem
from tests.helpers.scenario import ship_a_gift
from tests.helpers.supply import create_donor, create_offer, reserve


async def sync(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], cursor: str, **params: Any
) -> tuple[list[str], str]:
    """Every change after `cursor` (walking `has_more` pages): the ids in change order and the next cursor."""
    ids: list[str] = []
    while True:
        r = await client.get(path, headers=headers, params={"updated_since": cursor, **params})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["next_cursor"] is None
        ids += [item["id"] for item in body["items"]]
        cursor = body["sync_cursor"]
        if not body["has_more"]:
            return ids, cursor


async def patch_need(client: httpx.AsyncClient, headers: dict[str, str], need: dict[str, Any], title: str) -> None:
    current = await client.get(f"/v1/needs/{need['id']}", headers=headers)
    r = await client.patch(
        f"/v1/needs/{need['id']}", headers={**headers, "If-Match": current.headers["etag"]}, json={"title": title}
    )
    assert r.status_code == 200, r.text


async def test_updated_since_returns_exactly_the_changes_after_a_point_even_one_committed_late(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine
) -> None:
    h = auth("frontline", org="org-sync")
    site = await create_site(client, h, region_code="310104")
    a, b, c = [await create_need(client, h, site["id"], title=f"need {i}") for i in range(3)]

    everything, cursor = await sync(client, "/v1/needs", h, "0")
    assert everything == [a["id"], b["id"], c["id"]]  # change order
    assert await sync(client, "/v1/needs", h, cursor) == ([], cursor)

    # Pages inside one window: two at a time, nothing twice, nothing left out.
    r = await client.get("/v1/needs", headers=h, params={"updated_since": "0", "limit": 2})
    first = r.json()
    assert [n["id"] for n in first["items"]] == [a["id"], b["id"]] and first["has_more"] is True
    rest, _ = await sync(client, "/v1/needs", h, first["sync_cursor"], limit=2)
    assert rest == [c["id"]]

    # A writer changes need a and stays open; need b is changed and committed after it, with a higher sequence
    # number. A cursor of the highest number seen would now skip a forever.
    async with engine.connect() as slow:
        await slow.execute(text("UPDATE needs.need SET title = 'late' WHERE id = :id"), {"id": a["id"]})
        await patch_need(client, h, b, "on time")
        during, cursor_during = await sync(client, "/v1/needs", h, cursor)
        assert during == []  # b waits: a transaction that began before it is still running
        await slow.commit()
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT id::text, change_seq FROM needs.need WHERE id IN (:a, :b)"), {"a": a["id"], "b": b["id"]}
        )
        seq = {row[0]: row[1] for row in rows}
    assert seq[a["id"]] < seq[b["id"]]  # numbered first, committed last

    after, cursor_after = await sync(client, "/v1/needs", h, cursor_during)
    assert after == [a["id"], b["id"]]  # exactly the two changed needs, in change order
    assert (await client.get(f"/v1/needs/{a['id']}", headers=h)).json()["title"] == "late"
    assert await sync(client, "/v1/needs", h, cursor_after) == ([], cursor_after)

    # Filters apply to the changes too; a plain list page hands out a cursor to start syncing from.
    other_site = await create_site(client, h, region_code="310105")
    plain = (await client.get("/v1/needs", headers=h, params={"site_id": site["id"]})).json()
    await patch_need(client, h, c, "changed after the plain page")
    d = await create_need(client, h, other_site["id"])
    assert (await sync(client, "/v1/needs", h, plain["sync_cursor"], site_id=site["id"]))[0] == [c["id"]]
    assert (await sync(client, "/v1/needs", h, plain["sync_cursor"]))[0] == [c["id"], d["id"]]


async def test_a_change_cursor_is_checked(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    h = auth("frontline", org="org-sync")
    for bad in ("nonsense", "WzEsLTEsbnVsbCxudWxsXQ", "WzIsMCxudWxsLG51bGxd"):  # garbage, [1,-1,…], version 2
        body = assert_problem(await client.get("/v1/needs", headers=h, params={"updated_since": bad}), 422)
        assert body["errors"][0]["loc"] == ["query", "updated_since"]
    cursor = (await client.get("/v1/needs", headers=h)).json()["sync_cursor"]
    page_cursor = "WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgIjAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMCJd"
    both = await client.get("/v1/needs", headers=h, params={"updated_since": cursor, "cursor": page_cursor})
    assert_problem(both, 422)


async def test_an_offer_changes_when_one_of_its_lots_does(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    donor_h = auth("donor", org="org-grain")
    donor = await create_donor(client, donor_h)
    quiet = await create_offer(client, donor_h, donor["id"])
    offer = await create_offer(client, donor_h, donor["id"])
    _, cursor = await sync(client, "/v1/offers", donor_h, "0")

    got = await client.get(f"/v1/offers/{offer['id']}", headers=donor_h)
    etag = got.headers["etag"]
    unchanged = await client.get(f"/v1/offers/{offer['id']}", headers={**donor_h, "If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.headers["etag"] == etag and unchanged.content == b""

    r = await reserve(client, auth("coordinator"), offer["lots"][0]["id"], 30)
    assert r.status_code == 201, r.text
    changed, _ = await sync(client, "/v1/offers", donor_h, cursor)
    assert changed == [offer["id"]] and quiet["id"] not in changed
    # The lot changed, the offer's version did not: the cached copy is stale, so no 304.
    again = await client.get(f"/v1/offers/{offer['id']}", headers={**donor_h, "If-None-Match": etag})
    assert again.status_code == 200 and again.json()["lots"][0]["quantity_reserved"] == 30


async def test_single_gets_answer_304_to_a_matching_if_none_match(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    gift = await ship_a_gift(client, auth, org="org-sync-site", donor_org="org-sync-donor")
    resources = [
        (f"/v1/needs/{gift.need['id']}", gift.recipient),
        (f"/v1/proposals/{gift.proposals[0]['id']}", gift.coordinator),
        (f"/v1/shipments/{gift.shipment['id']}", gift.recipient),
    ]
    for path, headers in resources:
        first = await client.get(path, headers=headers)
        assert first.status_code == 200, first.text
        etag = first.headers["etag"]
        for header in (etag, f"W/{etag}", f'"0", {etag}', "*"):
            r = await client.get(path, headers={**headers, "If-None-Match": header})
            assert r.status_code == 304 and r.headers["etag"] == etag and r.content == b"", (path, header)
        stale = await client.get(path, headers={**headers, "If-None-Match": '"0"'})
        assert stale.status_code == 200 and stale.json()["id"] == path.rsplit("/", 1)[1]

    # A change makes the old ETag stale, and shows in the shipment changes.
    shipment_path = resources[2][0]
    etag = (await client.get(shipment_path, headers=gift.recipient)).headers["etag"]
    _, cursor = await sync(client, "/v1/shipments", gift.recipient, "0")
    await advance(client, gift.carrier, gift.shipment["id"], "picked_up")
    moved = await client.get(shipment_path, headers={**gift.recipient, "If-None-Match": etag})
    assert moved.status_code == 200 and moved.headers["etag"] != etag
    assert (await sync(client, "/v1/shipments", gift.recipient, cursor))[0] == [gift.shipment["id"]]
    proposals, _ = await sync(client, "/v1/proposals", gift.coordinator, "0", need_id=gift.need["id"])
    assert sorted(proposals) == sorted(p["id"] for p in gift.proposals)
