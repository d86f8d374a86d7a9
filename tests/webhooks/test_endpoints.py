"""Webhook endpoints: which events an endpoint's filters let through, and the endpoint resource itself
(If-Match, who may see and change it, deletion, the event catalog)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx

from reliefhub.registry import services
from shared.events import EventType
from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import CONCENTRATOR, N95, RICE
from tests.helpers.needs import create_need
from tests.helpers.receiver import Receiver
from tests.helpers.supply import create_donor, create_offer
from tests.helpers.waiting import eventually
from tests.helpers.webhooks import create_endpoint

SHANGHAI, WUHAN = "310101", "420102"


async def _site(client: httpx.AsyncClient, headers: dict[str, str], name: str, region: str) -> dict[str, Any]:
    r = await client.post("/v1/sites", headers=headers, json={"name": name, "kind": "hospital", "region_code": region})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _need(client: httpx.AsyncClient, headers: dict[str, str], site: dict[str, Any], item: str) -> str:
    need = await create_need(
        client, headers, site["id"], {"item_code": item, "quantity": 2}, title=item, urgency="high"
    )
    return str(need["id"])


async def _offer(client: httpx.AsyncClient, headers: dict[str, str], donor_id: str, *items: str) -> str:
    lots = [{"item_code": item, "quantity": 5, "region_code": SHANGHAI} for item in items]
    return str((await create_offer(client, headers, donor_id, lots=lots))["id"])


def _subjects(receiver: Receiver, path: str) -> set[str]:
    return {x.event["data"]["id"] for x in receiver.at(path)}


async def test_filters_by_item_code_and_region_prefix(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None, receiver: Receiver
) -> None:
    group = auth("working_group", org="org-device-check", group="medical_device")
    offers, needs = ["reliefhub.supply.offer.created"], ["reliefhub.needs.need.created"]
    await create_endpoint(client, group, receiver, "/devices", offers, filters={"item_codes": ["medical_device."]})
    await create_endpoint(client, group, receiver, "/shanghai", needs, filters={"region_codes": ["3101"]})
    await create_endpoint(
        client,
        group,
        receiver,
        "/both",
        needs,
        filters={"item_codes": ["medical_device."], "region_codes": ["3101"]},
    )
    await create_endpoint(client, group, receiver, "/all", offers + needs)

    donor_org = auth("donor", org="org-donor")
    donor_id = (await create_donor(client, donor_org, name="器械公司"))["id"]
    device = await _offer(client, donor_org, donor_id, CONCENTRATOR)
    mixed = await _offer(client, donor_org, donor_id, RICE, "medical_device.monitor.pulse_oximeter")
    rice = await _offer(client, donor_org, donor_id, RICE)
    n95 = await _offer(client, donor_org, donor_id, N95)  # checked by the device group, but not a device code

    frontline_sh, frontline_wh = auth("frontline", org="org-sh"), auth("frontline", org="org-wh")
    sh_site = await _site(client, frontline_sh, "瑞金医院", SHANGHAI)
    wh_site = await _site(client, frontline_wh, "协和医院", WUHAN)
    sh_rice = await _need(client, frontline_sh, sh_site, RICE)
    sh_device = await _need(client, frontline_sh, sh_site, CONCENTRATOR)
    wh_device = await _need(client, frontline_wh, wh_site, CONCENTRATOR)

    everything = {device, mixed, rice, n95, sh_rice, sh_device, wh_device}

    async def all_arrived() -> bool:
        return _subjects(receiver, "/all") == everything

    await eventually(all_arrived)
    # Deliveries to every endpoint are owed in one go per event, so the filtered ones are complete once they
    # have caught up with what they are owed.
    await eventually(lambda: _caught_up(client, group, receiver))
    assert _subjects(receiver, "/devices") == {device, mixed}
    assert _subjects(receiver, "/shanghai") == {sh_rice, sh_device}
    assert _subjects(receiver, "/both") == {sh_device}
    assert all(x.event["data"]["region_code"].startswith("3101") for x in receiver.at("/shanghai"))
    assert all(len(x.verified_with) == 1 for x in receiver.received)


async def _caught_up(client: httpx.AsyncClient, headers: dict[str, str], receiver: Receiver) -> bool:
    endpoints = (await client.get("/v1/webhook-endpoints", headers=headers)).json()["items"]
    for e in endpoints:
        path = "/" + e["url"].rsplit("/", 1)[1]
        owed = (await client.get(f"/v1/webhook-endpoints/{e['id']}/deliveries", headers=headers)).json()["items"]
        if {d["event_id"] for d in owed} != {x.event["id"] for x in receiver.at(path)}:
            return False
    return True


async def test_endpoint_crud_if_match_and_ownership(
    client: httpx.AsyncClient, auth: TokenFactory, receiver: Receiver
) -> None:
    group = auth("working_group", org="org-device-check", group="medical_device")
    other = auth("working_group", org="org-other", group="translation")
    endpoint = await create_endpoint(client, group, receiver, "/crud", ["reliefhub.supply.*"], description="器械")
    eid, url = endpoint["id"], f"/v1/webhook-endpoints/{endpoint['id']}"
    assert endpoint["org"] == "org-device-check" and endpoint["enabled"] is True and endpoint["version"] == 1

    got = await client.get(url, headers=group)
    assert got.status_code == 200 and got.headers["etag"] == '"1"' and got.json()["secret"] is None

    # PATCH needs If-Match: none → 428, stale → 412, current → 200 with the next ETag.
    r = await client.patch(url, headers=group, json={"description": "新"})
    assert r.status_code == 428 and r.headers["content-type"].startswith("application/problem+json")
    r = await client.patch(url, headers={**group, "If-Match": '"7"'}, json={"description": "新"})
    assert r.status_code == 412, r.text
    r = await client.patch(
        url,
        headers={**group, "If-Match": got.headers["etag"]},
        json={
            "description": "新",
            "event_types": ["reliefhub.supply.offer.created"],
            "filters": {"item_codes": ["ppe."]},
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["description"] == "新" and body["event_types"] == ["reliefhub.supply.offer.created"]
    assert body["filters"]["item_codes"] == ["ppe."] and body["secret"] is None
    assert r.headers["etag"] == '"2"' and body["version"] == 2
    r = await client.patch(url, headers={**group, "If-Match": '"1"'}, json={"description": "旧"})
    assert r.status_code == 412
    # A URL webhooks may not call is refused on PATCH too, and nothing changes.
    r = await client.patch(url, headers={**group, "If-Match": '"2"'}, json={"url": "http://10.0.0.1/x"})
    assert r.status_code == 422 and r.json()["type"].endswith("refused-url")
    assert (await client.get(url, headers=group)).json()["url"] == endpoint["url"]
    # Disabling by hand says who did it; enabling again forgets it.
    r = await client.patch(url, headers={**group, "If-Match": '"2"'}, json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["disabled_reason"]
    r = await client.patch(url, headers={**group, "If-Match": '"3"'}, json={"enabled": True})
    assert r.status_code == 200 and r.json()["enabled"] is True and r.json()["disabled_reason"] is None

    # Another organisation's working group may neither see nor change it, nor see its deliveries.
    assert (await client.get(url, headers=other)).status_code == 403
    assert (await client.patch(url, headers={**other, "If-Match": "*"}, json={"description": "x"})).status_code == 403
    assert (await client.delete(url, headers=other)).status_code == 403
    assert (await client.post(f"{url}/rotate-secret", headers=other)).status_code == 403
    assert (await client.get(f"{url}/deliveries", headers=other)).status_code == 403
    assert (await client.get("/v1/webhook-endpoints", headers=other)).json()["items"] == []
    assert [e["id"] for e in (await client.get("/v1/webhook-endpoints", headers=group)).json()["items"]] == [eid]
    # Coordinators see every organisation's.
    coordinator = auth("coordinator")
    assert (await client.get(url, headers=coordinator)).status_code == 200

    # Donors and frontline sites have endpoints of their own, scoped to their own records (test_owners.py).
    for role, org in (("donor", "org-donor"), ("frontline", "org-site")):
        r = await client.post(
            "/v1/webhook-endpoints",
            headers=auth(role, org=org),
            json={"url": receiver.url("/x"), "event_types": ["reliefhub.supply.*"]},
        )
        assert r.status_code == 201 and r.json()["scope"] == "own", (role, r.text)
    assert (await client.get(url, headers=auth("donor", org="org-donor"))).status_code == 403

    # Bad event patterns are refused.
    r = await client.post(
        "/v1/webhook-endpoints", headers=group, json={"url": receiver.url("/x"), "event_types": ["supply.*"]}
    )
    assert r.status_code == 422

    r = await client.delete(url, headers=group)
    assert r.status_code == 204
    assert (await client.get(url, headers=group)).status_code == 404
    assert (await client.delete(url, headers=group)).status_code == 404
    assert (await client.get("/v1/webhook-endpoints", headers=group)).json()["items"] == []


async def test_the_event_catalog_lists_every_type_with_its_schema(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    r = await client.get("/v1/event-types", headers=auth("donor", org="org-donor"))
    assert r.status_code == 200, r.text
    types = {t["type"]: t for t in r.json()["items"]}
    for name in (
        "reliefhub.webhooks.endpoint.disabled",
        "reliefhub.supply.offer.created",
        "reliefhub.needs.need.created",
        "reliefhub.needs.site.created",
    ):
        assert name in types and types[name]["schema"]["type"] == "object", name
    assert "reason" in types["reliefhub.webhooks.endpoint.disabled"]["schema"]["properties"]


def test_the_catalog_finds_every_services_types_by_their_entry_points() -> None:
    """In a process where only the webhooks service is imported, the catalog still lists every type each
    service publishes: the services declare their events modules in the `reliefhub.event_types` group."""
    declared = {ep.name: ep.value for ep in entry_points(group="reliefhub.event_types")}
    assert declared == {name: f"services.{name}.events" for name in services()}
    published = {
        value.name
        for name in services()
        for value in vars(importlib.import_module(f"services.{name}.events")).values()
        if isinstance(value, EventType)
    }
    script = (
        "import json, sys\n"
        "from services.webhooks.service import event_type_catalog\n"
        "before = sorted({m.split('.')[1] for m in sys.modules if m.startswith('services.')})\n"
        "print(json.dumps({'before': before, 'types': [t.type for t in event_type_catalog().items]}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    found = json.loads(out.stdout)
    assert found["before"] == ["webhooks"]  # no other service's code until the catalog is asked for
    assert set(found["types"]) == published
    assert {t.split(".")[1] for t in found["types"]} == set(services())
