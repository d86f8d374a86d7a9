"""Idempotency-Key on creating POSTs, through the API: replay, reuse with another body, in flight, release."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from reliefhub.gateway import Gateway
from shared.idempotency import REPLAYED_HEADER, purge_expired
from tests.helpers.auth import TokenFactory
from tests.helpers.problems import assert_problem

pytestmark = pytest.mark.usefixtures("redis")

SITE = {"name": "仁济医院", "kind": "hospital", "region_code": "310115", "lat": 31.2, "lon": 121.5}


async def site_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM needs.site"))).scalar_one())


async def key_rows(engine: AsyncEngine, key: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT * FROM needs.idempotency_key WHERE key = :k"), {"k": key})
        return [dict(r) for r in rows.mappings()]


async def post_site(client: httpx.AsyncClient, headers: dict[str, str], key: str, body: Any = SITE) -> httpx.Response:
    return await client.post("/v1/sites", headers={**headers, "Idempotency-Key": key}, json=body)


async def test_same_key_and_body_replay_the_stored_response(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine
) -> None:
    frontline = auth("frontline", org="org-a")
    first = await post_site(client, frontline, "k-1")
    assert first.status_code == 201, first.text
    assert REPLAYED_HEADER.lower() not in first.headers

    again = await post_site(client, frontline, "k-1")
    assert again.status_code == 201
    assert again.content == first.content
    assert again.headers[REPLAYED_HEADER] == "true"
    for header in ("content-type", "location", "etag"):
        assert again.headers[header] == first.headers[header]
    assert await site_count(engine) == 1


async def test_same_key_with_another_body_is_refused(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine
) -> None:
    frontline = auth("frontline", org="org-a")
    assert (await post_site(client, frontline, "k-1")).status_code == 201

    other = await post_site(client, frontline, "k-1", {**SITE, "name": "另一家医院"})
    body = assert_problem(other, 422)
    assert body["type"].endswith("idempotency-key-reused")

    elsewhere = await client.post(
        "/v1/needs",
        headers={**frontline, "Idempotency-Key": "k-1"},
        json={
            "site_id": str(uuid.uuid4()),
            "title": "t",
            "lines": [{"item_code": "water.bottled.small_550ml", "quantity": 1}],
        },
    )
    assert_problem(elsewhere, 422)
    assert await site_count(engine) == 1


async def test_key_order_and_white_space_do_not_make_another_body(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine
) -> None:
    frontline = {**auth("frontline", org="org-a"), "Idempotency-Key": "k-1", "Content-Type": "application/json"}
    compact = json.dumps(SITE, separators=(",", ":"), ensure_ascii=False).encode()
    reordered = json.dumps(dict(reversed(list(SITE.items()))), indent=4, ensure_ascii=True).encode()
    first = await client.post("/v1/sites", headers=frontline, content=compact)
    assert first.status_code == 201, first.text
    again = await client.post("/v1/sites", headers=frontline, content=b"\n  " + reordered + b"\n")
    assert again.status_code == 201 and again.headers.get(REPLAYED_HEADER) == "true"
    assert again.content == first.content
    assert await site_count(engine) == 1


async def test_keys_are_scoped_to_the_caller(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine
) -> None:
    callers = [
        auth("frontline", org="org-a", sub="alice"),
        auth("frontline", org="org-a", sub="bob"),
        auth("frontline", org="org-b", sub="alice"),
        # "org-a" + "/" + "x/y" and "org-a/x" + "/" + "y" must not name the same caller
        auth("frontline", org="org-a/x", sub="y"),
        auth("frontline", org="org-a", sub="x/y"),
    ]
    responses = [await post_site(client, headers, "shared-key") for headers in callers]
    assert [r.status_code for r in responses] == [201] * len(callers)
    assert [r.headers.get(REPLAYED_HEADER) for r in responses] == [None] * len(callers)
    assert len({r.json()["id"] for r in responses}) == len(callers)
    assert [r.json()["org"] for r in responses] == ["org-a", "org-a", "org-b", "org-a/x", "org-a"]
    assert await site_count(engine) == len(callers)


async def test_a_key_still_in_flight_answers_409_and_an_abandoned_one_is_taken_over(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine
) -> None:
    frontline = auth("frontline", org="org-a")
    assert (await post_site(client, frontline, "k-1")).status_code == 201
    # Put the record back the way it is while its first request runs (same principal and request hash).
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE needs.idempotency_key SET state = 'in_flight', response_status = NULL, "
                "response_headers = NULL, response_body = NULL, locked_until = now() + interval '1 minute' "
                "WHERE key = 'k-1'"
            )
        )

    busy = await post_site(client, frontline, "k-1")
    body = assert_problem(busy, 409)
    assert body["type"].endswith("idempotency-key-in-flight")
    assert busy.headers["retry-after"] == "1"
    assert_problem(await post_site(client, frontline, "k-1", {**SITE, "name": "x"}), 422)
    assert await site_count(engine) == 1

    async with engine.begin() as conn:  # its process died: the lock runs out
        await conn.execute(text("UPDATE needs.idempotency_key SET locked_until = now() - interval '1 second'"))
    retried = await post_site(client, frontline, "k-1")
    assert retried.status_code == 201 and REPLAYED_HEADER.lower() not in retried.headers
    assert await site_count(engine) == 2
    [row] = await key_rows(engine, "k-1")
    assert row["state"] == "done" and row["response_status"] == 201


async def test_an_expired_record_frees_its_key(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine
) -> None:
    frontline = auth("frontline", org="org-a")
    assert (await post_site(client, frontline, "k-1")).status_code == 201
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE needs.idempotency_key SET expires_at = now() - interval '1 second'"))
    other = await post_site(client, frontline, "k-1", {**SITE, "name": "另一家医院"})
    assert other.status_code == 201 and REPLAYED_HEADER.lower() not in other.headers
    assert await site_count(engine) == 2


async def test_concurrent_retries_create_one_site(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine
) -> None:
    frontline = auth("frontline", org="org-a")
    responses = await asyncio.gather(*(post_site(client, frontline, "k-race") for _ in range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, [r.text for r in responses]
    assert 201 in statuses
    ids = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(ids) == 1
    assert await site_count(engine) == 1


async def test_a_failed_request_releases_its_key(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine
) -> None:
    frontline = auth("frontline", org="org-a")
    need = {
        "site_id": str(uuid.uuid4()),
        "title": "饮用水",
        "lines": [{"item_code": "water.bottled.small_550ml", "quantity": 5}],
    }
    headers = {**frontline, "Idempotency-Key": "k-need"}

    missing = await client.post("/v1/needs", headers=headers, json=need)
    assert_problem(missing, 404)
    assert await key_rows(engine, "k-need") == []
    again = await client.post("/v1/needs", headers=headers, json=need)
    assert_problem(again, 404)
    assert REPLAYED_HEADER.lower() not in again.headers

    site = await post_site(client, frontline, "k-site")
    corrected = await client.post("/v1/needs", headers=headers, json={**need, "site_id": site.json()["id"]})
    assert corrected.status_code == 201, corrected.text
    [row] = await key_rows(engine, "k-need")
    assert row["state"] == "done" and row["response_status"] == 201


async def test_a_retry_of_the_same_body_runs_again_after_a_failure(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine
) -> None:
    donor = auth("donor", org="org-donor")
    coordinator = auth("coordinator")
    made = await client.post("/v1/donors", headers=donor, json={"name": "某医疗器械公司", "kind": "company"})
    offer = await client.post(
        "/v1/offers",
        headers=donor,
        json={
            "donor_id": made.json()["id"],
            "kind": "in_kind",
            "lots": [{"item_code": "medical_device.oxygen.concentrator_5l", "quantity": 4}],
        },
    )
    assert offer.status_code == 201, offer.text
    lot = offer.json()["lots"][0]["id"]
    reserve: dict[str, Any] = {
        "headers": {**coordinator, "Idempotency-Key": "k-res"},
        "json": {"quantity": 2, "reference": "p-1"},
    }

    blocked = await client.post(f"/v1/lots/{lot}/reservations", **reserve)
    assert_problem(blocked, 409)  # the device group has not verified the lot yet
    verdict = await client.post(
        f"/v1/offers/{offer.json()['id']}/verification",
        headers=auth("working_group", org="wg", group="medical_device"),
        json={"verdict": "verified"},
    )
    assert verdict.status_code == 200, verdict.text

    done = await client.post(f"/v1/lots/{lot}/reservations", **reserve)
    assert done.status_code == 201, done.text
    assert REPLAYED_HEADER.lower() not in done.headers
    replay = await client.post(f"/v1/lots/{lot}/reservations", **reserve)
    assert replay.status_code == 201 and replay.headers[REPLAYED_HEADER] == "true"
    assert replay.json()["id"] == done.json()["id"]


async def test_records_are_kept_at_least_24_hours(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine, gateway: Gateway
) -> None:
    assert (await post_site(client, auth("frontline"), "k-1")).status_code == 201
    [row] = await key_rows(engine, "k-1")
    assert row["expires_at"] - row["created_at"] >= timedelta(hours=24)

    rt = gateway.apps["needs"].state.runtime
    async with rt.sessionmaker() as s, s.begin():
        assert await purge_expired(s, rt.spec.kit) == 0
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE needs.idempotency_key SET expires_at = now() - interval '1 second'"))
    async with rt.sessionmaker() as s, s.begin():
        assert await purge_expired(s, rt.spec.kit) == 1
    assert await key_rows(engine, "k-1") == []


@pytest.mark.parametrize("key", ["", "   ", "k" * 256])
async def test_keys_must_be_1_to_255_characters(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine, key: str
) -> None:
    assert_problem(await post_site(client, auth("frontline"), key), 422)
    assert await site_count(engine) == 0


async def test_a_key_without_a_valid_token_stores_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, redis: Redis
) -> None:
    response = await client.post("/v1/sites", headers={"Idempotency-Key": "k-1"}, json=SITE)
    assert_problem(response, 401)
    assert await key_rows(engine, "k-1") == []


async def test_long_urls_and_long_subjects_are_not_a_server_error(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine
) -> None:
    frontline = auth("frontline", sub="s" * 200)
    headers = {**frontline, "Idempotency-Key": "k-long"}
    url = "/v1/needs?on_duplicate=flag&note=" + "x" * 3000
    need = {
        "site_id": str(uuid.uuid4()),
        "title": "t",
        "lines": [{"item_code": "water.bottled.small_550ml", "quantity": 1}],
    }
    assert_problem(await client.post(url, headers=headers, json=need), 404)

    first = await client.post("/v1/sites?note=" + "x" * 3000, headers=headers, json=SITE)
    assert first.status_code == 201, first.text
    again = await client.post("/v1/sites?note=" + "x" * 3000, headers=headers, json=SITE)
    assert again.headers.get(REPLAYED_HEADER) == "true" and again.content == first.content
    other_query = await client.post("/v1/sites?note=" + "x" * 2999, headers=headers, json=SITE)
    assert_problem(other_query, 422)
    assert await site_count(engine) == 1


HOSTILE_BODIES = {
    "nested 1,000 deep": b"[" * 1000 + b"]" * 1000,
    "a field nested 1,000 deep": b'{"name": ' + b'{"a": ' * 1000 + b"1" + b"}" * 1000 + b', "kind": "hospital"}',
    "nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "a lone surrogate": b'{"name": "\\ud800x", "kind": "hospital", "region_code": "310115"}',
    "a lone surrogate as a key": b'{"\\udfff": 1, "name": "n", "kind": "hospital", "region_code": "310115"}',
    "NUL in the path": b"{}",
}


@pytest.mark.parametrize("case", list(HOSTILE_BODIES))
async def test_a_body_the_fingerprint_cannot_canonicalise_gets_the_answer_it_gets_without_a_key(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine, case: str
) -> None:
    frontline = {**auth("frontline", org="org-a"), "Content-Type": "application/json"}
    path = f"/v1/needs/{uuid.uuid4()}%00/close" if case.startswith("NUL") else "/v1/sites"
    body = HOSTILE_BODIES[case]
    without = await client.post(path, headers=frontline, content=body)
    assert 400 <= without.status_code < 500, without.text
    for attempt in range(2):  # the failed request released its key: a retry runs again and fails the same way
        with_key = await client.post(path, headers={**frontline, "Idempotency-Key": "k-hostile"}, content=body)
        assert (with_key.status_code, with_key.json()) == (without.status_code, without.json())
        assert REPLAYED_HEADER.lower() not in with_key.headers, attempt
    assert await key_rows(engine, "k-hostile") == []
    assert await site_count(engine) == 0


async def test_a_key_with_a_nul_character_is_refused_not_a_server_error(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine
) -> None:
    body = assert_problem(await post_site(client, auth("frontline"), "k\x00-1"), 422)
    assert ["header", "Idempotency-Key"] in [e["loc"] for e in body["errors"]]
    assert await site_count(engine) == 0


async def test_a_replay_is_served_only_to_a_caller_the_route_admits(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine
) -> None:
    """Keys are scoped to org + sub; the same org + sub with a role the route refuses gets 403, not the
    stored response (nor a word about the key), and the record stays for the callers it admits."""
    coordinator = auth("coordinator", org="org-a", sub="alice")
    first = await post_site(client, coordinator, "k-roles")
    assert first.status_code == 201, first.text

    donor = auth("donor", org="org-a", sub="alice")
    for body in (SITE, {**SITE, "name": "another"}):  # neither the replay nor the key-reused 422
        response = await post_site(client, donor, "k-roles", body)
        assert_problem(response, 403)
        assert REPLAYED_HEADER.lower() not in response.headers and first.json()["id"] not in response.text
    assert_problem(await post_site(client, auth(org="org-a", sub="alice"), "k-roles"), 403)  # no roles at all

    frontline = auth("frontline", org="org-a", sub="alice")  # admitted by the route: the replay
    again = await post_site(client, frontline, "k-roles")
    assert again.status_code == 201 and again.headers[REPLAYED_HEADER] == "true" and again.content == first.content
    assert await site_count(engine) == 1 and len(await key_rows(engine, "k-roles")) == 1


def test_every_post_route_but_the_public_ones_checks_authorization_before_a_replay(gateway: Gateway) -> None:
    from shared.app import TransactionalRoute, authorization_checks

    def routes(items: list[Any]) -> list[Any]:
        found: list[Any] = []
        for route in items:
            included = getattr(route, "original_router", None)  # FastAPI nests included routers
            found += routes(included.routes) if included is not None else [route]
        return found

    posts = [
        (name, route)
        for name, app in gateway.apps.items()
        for route in routes(app.routes)
        if isinstance(route, TransactionalRoute) and "POST" in (route.methods or set())
    ]
    assert len(posts) > 20
    unchecked = [
        f"{name} {route.path}"
        for name, route in posts
        if (route.openapi_extra or {}).get("security") != [] and not authorization_checks(route.dependant)
    ]
    assert unchecked == []
