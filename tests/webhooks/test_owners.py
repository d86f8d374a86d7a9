"""Webhooks for the organisations the records belong to: donor and frontline organisations register endpoints
scoped to their own records; two real receivers show one organisation never gets another's events."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers.auth import TokenFactory
from tests.helpers.logistics import advance
from tests.helpers.receiver import Receiver, serve_receiver
from tests.helpers.scenario import Gift, ship_a_gift
from tests.helpers.waiting import eventually


async def own_endpoint(
    client: httpx.AsyncClient, headers: dict[str, str], receiver: Receiver, path: str
) -> dict[str, Any]:
    r = await client.post(
        "/v1/webhook-endpoints", headers=headers, json={"url": receiver.url(path), "event_types": ["*"]}
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    assert body["scope"] == "own"
    receiver.secrets[path] = body["secret"]
    return body


def types_and_subjects(receiver: Receiver, path: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for got in receiver.at(path):
        assert got.verified_with, "every delivery is signed with the endpoint's secret"
        event = got.event
        assert "orgs" not in event  # routing only: a receiver is not told whose else the event is
        out.append((event["type"], event["data"]))
    return out


async def test_each_organisation_hears_of_its_own_records_only(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    async with serve_receiver() as first, serve_receiver() as second:
        # Two donor organisations and two frontline organisations, each with an endpoint for every event type.
        endpoints = {
            "donor-a": await own_endpoint(client, auth("donor", org="org-donor-a"), first, "/donor"),
            "site-a": await own_endpoint(client, auth("frontline", org="org-site-a"), first, "/site"),
            "donor-b": await own_endpoint(client, auth("donor", org="org-donor-b"), second, "/donor"),
            "site-b": await own_endpoint(client, auth("frontline", org="org-site-b"), second, "/site"),
        }
        assert len({e["id"] for e in endpoints.values()}) == 4
        gift_a = await ship_a_gift(client, auth, org="org-site-a", donor_org="org-donor-a", region_code="310115")
        gift_b = await ship_a_gift(client, auth, org="org-site-b", donor_org="org-donor-b", region_code="310116")
        for gift in (gift_a, gift_b):
            await advance(client, gift.carrier, gift.shipment["id"], "picked_up")

        async def all_heard() -> bool | None:
            for receiver in (first, second):
                for path, wanted in (
                    ("/donor", "reliefhub.logistics.shipment.picked_up"),
                    ("/site", "reliefhub.logistics.shipment.picked_up"),
                ):
                    if wanted not in {t for t, _ in types_and_subjects(receiver, path)}:
                        return None
            return True

        await eventually(all_heard, seconds=60)

        def check(receiver: Receiver, mine: Gift, theirs: Gift, my_orgs: set[str]) -> None:
            donor_events = types_and_subjects(receiver, "/donor")
            site_events = types_and_subjects(receiver, "/site")
            # The donor hears of its offer, the proposals for its lots and the shipment of its goods ...
            assert ("reliefhub.supply.offer.created", mine.offer["id"]) in {(t, d.get("id")) for t, d in donor_events}
            assert {t for t, _ in donor_events} >= {
                "reliefhub.supply.offer.created",
                "reliefhub.matching.proposal.accepted",
                "reliefhub.logistics.shipment.created",
                "reliefhub.logistics.shipment.picked_up",
            }
            # ... the site of its site, its need, the proposals for it and the shipment to it.
            assert {t for t, _ in site_events} >= {
                "reliefhub.needs.site.created",
                "reliefhub.needs.need.created",
                "reliefhub.matching.proposal.accepted",
                "reliefhub.logistics.shipment.created",
                "reliefhub.logistics.shipment.picked_up",
            }
            assert not {t for t, _ in site_events if t.startswith("reliefhub.supply.offer.")}
            # Nothing of the other organisations' records, whichever way it is named.
            foreign = {
                theirs.offer["id"],
                theirs.need["id"],
                theirs.site["id"],
                theirs.shipment["id"],
                *(p["id"] for p in theirs.proposals),
            }
            for _, data in donor_events + site_events:
                named = {str(data.get(k)) for k in ("id", "need_id", "offer_id", "site_id", "shipment_id")}
                assert not named & foreign, data
                for key in ("org", "need_org", "offer_org", "destination_org", "origin_org"):
                    assert data.get(key) in {None, *my_orgs}, data

        check(first, gift_a, gift_b, {"org-site-a", "org-donor-a"})
        check(second, gift_b, gift_a, {"org-site-b", "org-donor-b"})


async def test_only_the_groups_that_serve_everyone_may_hear_everything(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    async with serve_receiver() as receiver:
        body = {"url": receiver.url("/x"), "event_types": ["*"], "scope": "all"}
        refused = await client.post("/v1/webhook-endpoints", headers=auth("donor", org="org-donor-a"), json=body)
        assert refused.status_code == 403 and refused.json()["type"].endswith("scope-not-allowed")
        group = await client.post(
            "/v1/webhook-endpoints", headers=auth("working_group", org="org-wg", group="medical"), json=body
        )
        assert group.status_code == 201 and group.json()["scope"] == "all"
        narrowed = await client.post(
            "/v1/webhook-endpoints",
            headers=auth("working_group", org="org-wg", group="medical"),
            json={**body, "scope": "own"},
        )
        assert narrowed.status_code == 201 and narrowed.json()["scope"] == "own"
        # Each organisation sees and manages its own endpoints only.
        mine = await client.get("/v1/webhook-endpoints", headers=auth("frontline", org="org-site-a"))
        assert mine.status_code == 200 and mine.json()["items"] == []
        other = await client.get(
            f"/v1/webhook-endpoints/{group.json()['id']}", headers=auth("frontline", org="org-site-a")
        )
        assert other.status_code == 403
