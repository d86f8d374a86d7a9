"""Claims: a partner covers need lines itself; a coordinator of the need's region confirms; the line's open
quantity drops (never below zero, not even under concurrent confirms); withdrawal reopens it; the sweep expires
what nobody confirmed."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.settings import Settings
from shared.worker import run_job_once
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE
from tests.helpers.needs import create_need, create_site
from tests.helpers.partners import approve, approved_hub, register
from tests.helpers.problems import assert_problem
from tests.helpers.streams import runtime


async def _need(client: httpx.AsyncClient, auth: TokenFactory, quantity: int = 300) -> tuple[dict, dict]:
    home = auth("frontline", org="org-home")
    site = await create_site(client, home)  # 310101
    need = await create_need(client, home, site["id"], {"item_code": RICE, "quantity": quantity})
    return need, need["lines"][0]


async def _claim(client: httpx.AsyncClient, headers: dict[str, str], need: dict, line: dict, n: int) -> dict:
    r = await client.post(
        f"/v1/needs/{need['id']}/claims",
        headers=headers,
        json={"lines": [{"line_id": line["id"], "quantity": n}], "note": "我们自带大米"},
    )
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v1/claims/{r.json()['id']}"
    out: dict = r.json()
    return out


async def _line(client: httpx.AsyncClient, auth: TokenFactory, need: dict) -> dict:
    got = (await client.get(f"/v1/needs/{need['id']}", headers=auth("coordinator"))).json()
    line: dict = got["lines"][0]
    return line


async def test_a_confirmed_claim_covers_its_quantity_and_a_withdrawal_reopens_it(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    need, line = await _need(client, auth)
    partner = auth("logistics", org="ngo-meals")
    claim = await _claim(client, partner, need, line, 200)
    assert claim["status"] == "pending" and claim["org"] == "ngo-meals"
    assert claim["lines"] == [{"line_id": line["id"], "item_code": RICE, "unit": line["unit"], "quantity": 200}]
    assert (await _line(client, auth, need))["quantity_claimed"] == 0  # pending covers nothing yet

    # Asking for more than the line has open is refused.
    too_much = await client.post(
        f"/v1/needs/{need['id']}/claims", headers=partner, json={"lines": [{"line_id": line["id"], "quantity": 301}]}
    )
    assert_problem(too_much, 409)
    foreign = await client.post(
        f"/v1/needs/{need['id']}/claims",
        headers=partner,
        json={"lines": [{"line_id": str(uuid.uuid4()), "quantity": 1}]},
    )
    assert_problem(foreign, 409)

    # Only a coordinator whose regions cover the need confirms.
    assert_problem(await client.post(f"/v1/claims/{claim['id']}/confirm", headers=partner), 403)
    outside = auth("coordinator", org="hub-hn", regions=["4101"])
    assert_problem(await client.post(f"/v1/claims/{claim['id']}/confirm", headers=outside), 403)
    inside = auth("coordinator", org="hub-sh", regions=["31"])
    confirmed = await client.post(f"/v1/claims/{claim['id']}/confirm", headers=inside)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "confirmed" and confirmed.json()["confirmed_at"]
    assert_problem(await client.post(f"/v1/claims/{claim['id']}/confirm", headers=inside), 409)
    covered = await _line(client, auth, need)
    assert covered["quantity_claimed"] == 200
    got = (await client.get(f"/v1/needs/{need['id']}", headers=partner)).json()
    assert got["status"] == "matched"

    # Listed by need, org and status.
    listed = await client.get("/v1/claims", headers=partner, params={"need_id": need["id"], "status": "confirmed"})
    assert [c["id"] for c in listed.json()["items"]] == [claim["id"]]
    assert (await client.get("/v1/claims", headers=partner, params={"org": "nobody"})).json()["items"] == []

    # Another organisation may not withdraw it; the claimant may, and the quantity is open again.
    other = auth("logistics", org="ngo-other")
    assert_problem(await client.post(f"/v1/claims/{claim['id']}/withdraw", headers=other, json={}), 403)
    gone = await client.post(f"/v1/claims/{claim['id']}/withdraw", headers=partner, json={"reason": "车辆故障"})
    assert gone.status_code == 200 and gone.json()["status"] == "withdrawn"
    assert (await _line(client, auth, need))["quantity_claimed"] == 0
    got = (await client.get(f"/v1/needs/{need['id']}", headers=partner)).json()
    assert got["status"] == "open"
    assert_problem(await client.post(f"/v1/claims/{claim['id']}/withdraw", headers=partner, json={}), 409)


async def test_concurrent_confirms_never_over_cover_a_line(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    need, line = await _need(client, auth, quantity=300)
    claims = [await _claim(client, auth("logistics", org=f"ngo-c{i}"), need, line, 200) for i in range(3)]
    coordinator = auth("coordinator")
    answers = await asyncio.gather(*(client.post(f"/v1/claims/{c['id']}/confirm", headers=coordinator) for c in claims))
    assert sorted(a.status_code for a in answers) == [200, 409, 409], [a.text for a in answers]
    assert (await _line(client, auth, need))["quantity_claimed"] == 200
    # What is still open (100) can be claimed and confirmed; then nothing is.
    rest = await _claim(client, auth("logistics", org="ngo-c9"), need, line, 100)
    assert (await client.post(f"/v1/claims/{rest['id']}/confirm", headers=coordinator)).status_code == 200
    assert (await _line(client, auth, need))["quantity_claimed"] == 300
    refused = await client.post(
        f"/v1/needs/{need['id']}/claims",
        headers=auth("logistics", org="ngo-c8"),
        json={"lines": [{"line_id": line["id"], "quantity": 1}]},
    )
    assert_problem(refused, 409)


async def test_the_sweep_expires_claims_nobody_confirmed(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine, gateway
) -> None:
    need, line = await _need(client, auth)
    partner = auth("logistics", org="ngo-late")
    stale, fresh = (await _claim(client, partner, need, line, 10), await _claim(client, partner, need, line, 20))
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE needs.claim SET expires_at = now() - interval '1 minute' WHERE id = :id"),
            {"id": uuid.UUID(stale["id"])},
        )
    rt = runtime(gateway, "needs")
    job = next(j for j in rt.spec.jobs if j.name == "expire-claims")
    assert await run_job_once(rt, job) == 1
    assert await run_job_once(rt, job) == 0
    got = (await client.get(f"/v1/claims/{stale['id']}", headers=partner)).json()
    assert got["status"] == "expired" and got["closed_at"]
    assert (await client.get(f"/v1/claims/{fresh['id']}", headers=partner)).json()["status"] == "pending"
    assert_problem(await client.post(f"/v1/claims/{stale['id']}/confirm", headers=auth("coordinator")), 409)
    async with engine.connect() as conn:
        types = (
            await conn.execute(
                text("SELECT type FROM needs.outbox_event WHERE subject = :s ORDER BY seq"), {"s": stale["id"]}
            )
        ).scalars()
        assert list(types)[-1] == "reliefhub.needs.claim.expired"


@pytest.fixture
def registry_on(migrated: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(migrated, "org_registry", True)
    return migrated


async def test_an_unapproved_organisation_may_not_claim(
    client: httpx.AsyncClient, auth: TokenFactory, registry_on: Settings
) -> None:
    hub = await approved_hub(client, auth, "hub-claims-sh", ["31"])
    for org in ("org-home",):
        await register(client, auth("frontline", org=org), name="瑞金医院", kind="ngo", region_codes=["310101"])
        await approve(client, hub, org)
    need, line = await _need(client, auth)
    partner = auth("logistics", org="ngo-claim-new")
    await register(client, partner, name="爱心车队", kind="volunteer_team", region_codes=["31"])
    body = {"lines": [{"line_id": line["id"], "quantity": 5}]}
    refused = await client.post(f"/v1/needs/{need['id']}/claims", headers=partner, json=body)
    assert_problem(refused, 403)
    assert refused.json()["org_status"] == "pending"
    await approve(client, hub, "ngo-claim-new")
    assert (await client.post(f"/v1/needs/{need['id']}/claims", headers=partner, json=body)).status_code == 201
