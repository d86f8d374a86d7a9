"""Needs say whom they serve: people per beneficiary group, from the shared vocabulary; unknown groups and
negative counts are refused."""

from __future__ import annotations

import httpx

from tests.helpers.auth import TokenFactory
from tests.helpers.needs import create_need, create_site, need_body
from tests.helpers.problems import assert_problem


async def test_a_need_counts_the_people_it_serves_by_group(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    frontline = auth("frontline", org="org-home")
    site = await create_site(client, frontline, kind="nursing_home")
    groups = {"elderly": 120, "medical_staff": 8}
    need = await create_need(client, frontline, site["id"], beneficiary_groups=groups)
    assert need["beneficiary_groups"] == groups
    r = await client.get(f"/v1/needs/{need['id']}", headers=frontline)
    assert r.json()["beneficiary_groups"] == groups

    patched = await client.patch(
        f"/v1/needs/{need['id']}",
        headers={**frontline, "If-Match": r.headers["etag"]},
        json={"beneficiary_groups": {"elderly": 130, "people_with_disabilities": 12}},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["beneficiary_groups"] == {"elderly": 130, "people_with_disabilities": 12}
    cleared = await client.patch(  # null names no group (it was a 500 once)
        f"/v1/needs/{need['id']}",
        headers={**frontline, "If-Match": patched.headers["etag"]},
        json={"beneficiary_groups": None},
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["beneficiary_groups"] == {}
    assert (await client.get(f"/v1/needs/{need['id']}", headers=frontline)).json()["beneficiary_groups"] == {}

    plain = await create_need(client, frontline, site["id"])
    assert plain["beneficiary_groups"] == {}

    for bad in ({"pets": 3}, {"children": -1}):
        r = await client.post("/v1/needs", headers=frontline, json=need_body(site["id"], beneficiary_groups=bad))
        assert_problem(r, 422)
