"""Capacities over HTTP: an approved partner declares units of a `service.*` item a day, in a date window, over
the regions it serves; lists filter by service, area and day; changes take If-Match; a withdrawn capacity is no
longer live, and `GET /v1/organizations?service_code=` lists the organisations with a live one."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.settings import Settings
from tests.helpers.partners import approve, approved_hub, problem, register

PSYCH = "service.psych.support_session"
TODAY = date.today()


def window(start: int = 0, days: int = 7) -> dict[str, str]:
    return {"starts_on": str(TODAY + timedelta(days=start)), "ends_on": str(TODAY + timedelta(days=start + days - 1))}


def declaration(**fields: object) -> dict[str, object]:
    return {"service_code": PSYCH, "units_per_day": 30, "region_codes": ["410102"], **window(), **fields}


@pytest.fixture
def registry_on(migrated: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(migrated, "org_registry", True)
    return migrated


async def test_an_approved_partner_declares_30_sessions_a_day_for_7_days_in_its_county(
    client: httpx.AsyncClient, auth, registry_on: Settings
) -> None:
    hub = await approved_hub(client, auth, "hub-cap-zz", ["4101"])
    partner = auth("frontline", org="ngo-cap-xinli")
    await register(client, partner, name="中原心理援助队", kind="ngo", parent_id="hub-cap-zz", region_codes=["410102"])
    # Pending: refused while the registry is on.
    problem(await client.post("/v1/capacities", headers=partner, json=declaration()), 403, "organisation-not-approved")
    await approve(client, hub, "ngo-cap-xinli")

    created = await client.post("/v1/capacities", headers=partner, json=declaration(note="线上线下均可"))
    assert created.status_code == 201, created.text
    cap = created.json()
    assert cap["org"] == "ngo-cap-xinli" and cap["status"] == "active" and cap["units_per_day"] == 30
    assert cap["starts_on"] == str(TODAY) and cap["ends_on"] == str(TODAY + timedelta(days=6))
    assert created.headers["location"] == f"/v1/capacities/{cap['id']}"

    one = await client.get(f"/v1/capacities/{cap['id']}", headers=auth("donor", org="org-anyone"))
    assert one.status_code == 200 and one.json() == cap

    # The area covers 410102 and not its neighbour; the window covers day 6, not day 7.
    async def ids(**params: str) -> list[str]:
        resp = await client.get("/v1/capacities", headers=partner, params=params)
        assert resp.status_code == 200, resp.text
        return [c["id"] for c in resp.json()["items"]]

    assert cap["id"] in await ids(service_code=PSYCH, region_code="410102", on=str(TODAY + timedelta(days=6)))
    assert cap["id"] not in await ids(region_code="410105")
    assert cap["id"] not in await ids(on=str(TODAY + timedelta(days=7)))
    assert cap["id"] not in await ids(service_code="service.interpreter.zh_en")

    # The organisations offering the service.
    orgs = await client.get("/v1/organizations", headers=partner, params={"service_code": PSYCH})
    assert [o["id"] for o in orgs.json()["items"]] == ["ngo-cap-xinli"]
    interp = await client.get(
        "/v1/organizations", headers=partner, params={"service_code": "service.interpreter.zh_en"}
    )
    assert interp.json()["items"] == []


async def test_only_services_of_the_catalog_within_the_organisations_area_and_an_ordered_window(
    client: httpx.AsyncClient, auth, engine: AsyncEngine
) -> None:
    partner = auth("frontline", org="ngo-cap-two")
    await register(client, partner, name="区域志愿队", kind="volunteer_team", region_codes=["4101"])

    rice = problem(
        await client.post("/v1/capacities", headers=partner, json=declaration(service_code="food.grain.rice")),
        422,
        "not-a-service",
    )
    assert rice["errors"][0]["loc"] == ["body", "service_code"]
    problem(
        await client.post("/v1/capacities", headers=partner, json=declaration(service_code="service.nothing")),
        422,
        "not-a-service",
    )
    problem(
        await client.post("/v1/capacities", headers=partner, json=declaration(region_codes=["3101"])),
        422,
        "beyond-your-area",
    )
    # A national area needs a national organisation.
    problem(
        await client.post("/v1/capacities", headers=partner, json=declaration(region_codes=[])),
        422,
        "beyond-your-area",
    )
    backwards = {"starts_on": str(TODAY), "ends_on": str(TODAY - timedelta(days=1))}
    problem(await client.post("/v1/capacities", headers=partner, json=declaration(**backwards)), 422)
    problem(await client.post("/v1/capacities", headers=partner, json=declaration(units_per_day=0)), 422)
    problem(await client.post("/v1/capacities", headers=partner, json=declaration(**window(days=400))), 422)
    # Another organisation's capacity is declared by that organisation (or an admin) only.
    problem(await client.post("/v1/capacities", headers=partner, json=declaration(org="ngo-else")), 403)

    async with engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM partners.capacity WHERE org = 'ngo-cap-two'"))
    assert count == 0


async def test_changes_take_if_match_and_a_withdrawn_capacity_is_no_longer_live(
    client: httpx.AsyncClient, auth
) -> None:
    partner = auth("coordinator", org="ngo-cap-three")
    created = await client.post("/v1/capacities", headers=partner, json=declaration(region_codes=["4101"]))
    assert created.status_code == 201, created.text
    cap = created.json()
    path = f"/v1/capacities/{cap['id']}"

    problem(await client.patch(path, headers=partner, json={"units_per_day": 40}), 428)
    stale = {**partner, "If-Match": '"99"'}
    problem(await client.patch(path, headers=stale, json={"units_per_day": 40}), 412)
    fresh = {**partner, "If-Match": created.headers["etag"]}
    problem(await client.patch(path, headers=fresh, json={"ends_on": str(TODAY - timedelta(days=3))}), 422)
    other = {**auth("frontline", org="ngo-stranger"), "If-Match": created.headers["etag"]}
    problem(await client.patch(path, headers=other, json={"units_per_day": 40}), 403, "not-your-organization")

    changed = await client.patch(path, headers=fresh, json={"units_per_day": 40, "note": "周末加班"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["units_per_day"] == 40 and changed.json()["version"] == 2
    assert changed.json()["note"] == "周末加班"

    problem(await client.post(f"{path}/withdraw", headers=auth("frontline", org="ngo-stranger")), 403)
    withdrawn = await client.post(f"{path}/withdraw", headers=partner, json={"reason": "人员撤回"})
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    assert withdrawn.json()["withdrawn_reason"] == "人员撤回" and withdrawn.json()["withdrawn_at"]
    problem(await client.post(f"{path}/withdraw", headers=partner), 409, "capacity-withdrawn")
    again = {**partner, "If-Match": withdrawn.headers["etag"]}
    problem(await client.patch(path, headers=again, json={"units_per_day": 5}), 409, "capacity-withdrawn")

    live = await client.get("/v1/capacities", headers=partner, params={"org": "ngo-cap-three", "status": "active"})
    assert live.json()["items"] == []
    problem(await client.get("/v1/capacities/00000000-0000-0000-0000-000000000000", headers=partner), 404)


async def test_a_repeated_declaration_is_one_capacity_and_an_ended_one_is_not_live(
    client: httpx.AsyncClient, auth, engine: AsyncEngine
) -> None:
    partner = auth("frontline", org="ngo-cap-four")
    await register(client, partner, name="四号队", kind="ngo", region_codes=["410102"])
    keyed = {**partner, "Idempotency-Key": "cap-four-1"}
    first = await client.post("/v1/capacities", headers=keyed, json=declaration())
    again = await client.post("/v1/capacities", headers=keyed, json=declaration())
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    async with engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM partners.capacity WHERE org = 'ngo-cap-four'"))
        declared = await conn.scalar(
            text(
                "SELECT count(*) FROM partners.outbox_event WHERE type = 'reliefhub.partners.capacity.declared' "
                "AND subject = :id"
            ),
            {"id": first.json()["id"]},
        )
    assert count == 1 and declared == 1

    # A capacity whose window ended yesterday is no longer live: its organisation offers the service no more.
    other = auth("frontline", org="ngo-cap-five")
    await register(client, other, name="五号队", kind="ngo", region_codes=["410102"])
    ended = await client.post("/v1/capacities", headers=other, json=declaration(**window(start=-7, days=7)))
    assert ended.status_code == 201, ended.text
    orgs = await client.get("/v1/organizations", headers=partner, params={"service_code": PSYCH})
    assert orgs.status_code == 200 and [o["id"] for o in orgs.json()["items"]] == ["ngo-cap-four"]
    assert ended.json()["id"] not in [
        c["id"] for c in (await client.get("/v1/capacities", headers=other, params={"on": str(TODAY)})).json()["items"]
    ]
