"""The organisations registry over HTTP: registration (pending), approval by a coordinator of a hub covering
the organisation, suspension, private contacts, filters and versioned updates."""

from __future__ import annotations

import time

import httpx
import jwt

from shared.settings import Settings
from tests.helpers.partners import approve, approved_hub, problem, register


def token_with_regions(settings: Settings, org: str, regions: list[str]) -> str:
    now = int(time.time())
    claims = {"sub": f"c-{org}", "org": org, "roles": ["coordinator"], "regions": regions, "iat": now, "exp": now + 600}
    claims |= {"iss": settings.jwt_issuer, "aud": settings.jwt_audience}
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


CONTACT = {"name": "王芳", "phone": "+86 138 0000 1234", "email": "wang@example.org", "address": "金水路1号"}


async def test_an_ngo_registers_and_the_hub_covering_its_county_approves_it(client: httpx.AsyncClient, auth) -> None:
    hub = await approved_hub(client, auth, "hub-zhengzhou", ["4101"])
    ngo = auth("frontline", org="ngo-jinshui")
    org = await register(
        client,
        ngo,
        name="金水区邻里互助会",
        kind="community_group",
        parent_id="hub-zhengzhou",
        region_codes=["410105"],
        issue_areas=["elderly", "psychological_support"],
        public_name="金水邻里",
        contact=CONTACT,
    )
    assert org["id"] == "ngo-jinshui" and org["level"] == "county" and org["contact"] == CONTACT

    # Somebody else's token sees the registration but never its contact.
    other = await client.get("/v1/organizations/ngo-jinshui", headers=auth("donor", org="org-someone"))
    assert other.status_code == 200 and other.json()["contact"] is None and other.json()["status"] == "pending"

    approved = await approve(client, hub, "ngo-jinshui")
    assert approved["decided_by_org"] == "hub-zhengzhou" and approved["contact"] == CONTACT
    problem(await client.post("/v1/organizations/ngo-jinshui/approve", headers=hub), 409, "already-decided")

    suspended = await client.post("/v1/organizations/ngo-jinshui/suspend", headers=hub, json={"reason": "核查中"})
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    assert suspended.json()["status_reason"] == "核查中"


async def test_only_a_coordinator_of_an_approved_hub_covering_every_region_decides(
    client: httpx.AsyncClient, auth, migrated: Settings
) -> None:
    await approved_hub(client, auth, "hub-shanghai", ["31"])
    zhengzhou = await approved_hub(client, auth, "hub-zz", ["4101"])
    await register(client, auth("frontline", org="ngo-pudong"), name="浦东社工站", kind="ngo", region_codes=["310115"])
    await register(
        client,
        auth("frontline", org="ngo-two"),
        name="跨省志愿队",
        kind="volunteer_team",
        region_codes=["410102", "310101"],
    )

    # Out of the hub's region: 403.
    problem(await client.post("/v1/organizations/ngo-pudong/approve", headers=zhengzhou), 403, "outside-your-hub")
    # A hub covering only one of two regions served: 403 as well.
    problem(await client.post("/v1/organizations/ngo-two/approve", headers=zhengzhou), 403, "outside-your-hub")
    # The token's own `regions` narrow the hub further: a Shanghai coordinator limited to 310101 stays out of 310115.
    narrowed = {"Authorization": f"Bearer {token_with_regions(migrated, 'hub-shanghai', ['310101'])}"}
    problem(await client.post("/v1/organizations/ngo-pudong/approve", headers=narrowed), 403, "outside-your-hub")
    # A coordinator of an organisation that is no hub: 403.
    await register(client, auth("coordinator", org="ngo-big"), name="大型NGO", kind="ngo", region_codes=["31"])
    problem(
        await client.post("/v1/organizations/ngo-pudong/approve", headers=auth("coordinator", org="ngo-big")),
        403,
        "not-a-hub-coordinator",
    )
    # A pending hub does not decide either.
    await register(client, auth("coordinator", org="hub-new"), name="新枢纽", kind="hub", region_codes=["31"])
    problem(
        await client.post("/v1/organizations/ngo-pudong/approve", headers=auth("coordinator", org="hub-new")),
        403,
        "not-a-hub-coordinator",
    )
    # Not a coordinator at all: 403.
    problem(
        await client.post("/v1/organizations/ngo-pudong/approve", headers=auth("frontline", org="ngo-two")),
        403,
        "not-a-hub-coordinator",
    )
    # The hub covering it: approved.
    await approve(client, auth("coordinator", org="hub-shanghai"), "ngo-pudong")


async def test_registration_rules(client: httpx.AsyncClient, auth) -> None:
    ngo = auth("frontline", org="ngo-a")
    await register(client, ngo, name="甲", kind="ngo", region_codes=["4101"])
    # One registration per organisation; only one's own unless a coordinator registers it.
    problem(
        await client.post("/v1/organizations", headers=ngo, json={"name": "甲", "kind": "ngo"}),
        409,
        "organization-exists",
    )
    problem(
        await client.post("/v1/organizations", headers=ngo, json={"id": "ngo-b", "name": "乙", "kind": "ngo"}),
        403,
        "not-your-organization",
    )
    # The parent must be a registered hub.
    problem(
        await client.post(
            "/v1/organizations",
            headers=auth("frontline", org="ngo-c"),
            json={"name": "丙", "kind": "ngo", "parent_id": "ngo-a"},
        ),
        422,
        "invalid-parent",
    )
    problem(
        await client.post(
            "/v1/organizations", headers=auth("frontline", org="ngo-c"), json={"name": "丙", "kind": "bank"}
        ),
        422,
    )
    problem(
        await client.post(
            "/v1/organizations",
            headers=auth("frontline", org="ngo-c"),
            json={"name": "丙", "kind": "ngo", "region_codes": ["31x"]},
        ),
        422,
    )
    problem(await client.get("/v1/organizations/nobody", headers=ngo), 404, "organization-not-found")


async def test_lists_filter_by_kind_status_and_region(client: httpx.AsyncClient, auth) -> None:
    await approved_hub(client, auth, "hub-henan", ["41"])
    await register(client, auth("frontline", org="ngo-zz"), name="郑州", kind="ngo", region_codes=["410102"])
    await register(client, auth("frontline", org="ngo-sh"), name="上海", kind="ngo", region_codes=["310101"])
    await register(client, auth("frontline", org="fdn-national"), name="全国基金会", kind="foundation")
    headers = auth("donor", org="org-reader")

    async def ids(query: str) -> list[str]:
        resp = await client.get(f"/v1/organizations?{query}", headers=headers)
        assert resp.status_code == 200, resp.text
        return [o["id"] for o in resp.json()["items"]]

    assert await ids("kind=ngo") == ["ngo-sh", "ngo-zz"]
    assert await ids("status=approved") == ["hub-henan"]
    # Serving Zhengzhou's county 410102: the county NGO, the province hub, the national foundation.
    assert await ids("region_code=410102") == ["fdn-national", "hub-henan", "ngo-zz"]
    # Serving a part of Henan: the same.
    assert await ids("region_code=41") == ["fdn-national", "hub-henan", "ngo-zz"]

    first = await client.get("/v1/organizations?limit=2", headers=headers)
    assert [o["id"] for o in first.json()["items"]] == ["fdn-national", "hub-henan"]
    rest = await client.get(f"/v1/organizations?limit=2&cursor={first.json()['next_cursor']}", headers=headers)
    assert [o["id"] for o in rest.json()["items"]] == ["ngo-sh", "ngo-zz"] and rest.json()["next_cursor"] is None
    problem(await client.get("/v1/organizations?cursor=%%%", headers=headers), 422)


async def test_updates_need_if_match_and_widening_regions_awaits_approval_again(
    client: httpx.AsyncClient, auth
) -> None:
    hub = await approved_hub(client, auth, "hub-city", ["4101"])
    ngo = auth("frontline", org="ngo-w")
    await register(client, ngo, name="乙", kind="ngo", region_codes=["410102"])
    approved = await approve(client, hub, "ngo-w")

    problem(await client.patch("/v1/organizations/ngo-w", headers=ngo, json={"name": "乙2"}), 428)
    stale = {**ngo, "If-Match": '"1"'}
    problem(await client.patch("/v1/organizations/ngo-w", headers=stale, json={"name": "乙2"}), 412)

    etag = {**ngo, "If-Match": f'"{approved["version"]}"'}
    renamed = await client.patch("/v1/organizations/ngo-w", headers=etag, json={"public_name": "乙公益"})
    assert renamed.status_code == 200 and renamed.json()["status"] == "approved", renamed.text

    etag = {**ngo, "If-Match": renamed.headers["etag"]}
    widened = await client.patch("/v1/organizations/ngo-w", headers=etag, json={"region_codes": ["410102", "310101"]})
    assert widened.status_code == 200 and widened.json()["status"] == "pending"

    # Another organisation may not change it; nor may a hub that does not cover it.
    etag = {"If-Match": widened.headers["etag"]}
    problem(
        await client.patch("/v1/organizations/ngo-w", headers={**auth("frontline", org="ngo-x"), **etag}, json={}),
        403,
        "not-a-hub-coordinator",
    )
    problem(await client.patch("/v1/organizations/ngo-w", headers={**hub, **etag}, json={}), 403, "outside-your-hub")


async def test_registration_is_idempotent(client: httpx.AsyncClient, auth) -> None:
    headers = auth("frontline", org="ngo-idem", Idempotency_Key="reg-1")
    body = {"name": "幂等", "kind": "ngo", "region_codes": ["310101"]}
    first = await client.post("/v1/organizations", headers=headers, json=body)
    again = await client.post("/v1/organizations", headers=headers, json=body)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("idempotent-replayed") == "true" and again.json() == first.json()
