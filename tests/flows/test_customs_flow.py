"""Customs clearance of an international in-kind offer, end to end over HTTP and the streams: the offer's lots
await customs and cannot be matched or reserved; the customs group's webhook receives the task, signed; the
group completes it with the HS codes, the consignee foundation and the exemption reference; the lots become
available and matching proposes them for a need."""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers.partners import eventually, problem
from tests.helpers.receiver import serve_receiver

MASK = "ppe.mask.kn95"  # no working group checks it: cleared goods are available at once


async def test_an_international_offer_waits_for_its_customs_task(
    client: httpx.AsyncClient, auth, workers: None
) -> None:
    coordinator = auth("coordinator")
    frontline = auth("frontline", org="org-hospital")
    customs = auth("working_group", org="org-customs", sub="officer-li", group="customs")
    donor = auth("donor", org="org-abroad")

    site = await client.post(
        "/v1/sites",
        headers=frontline,
        json={"name": "仁济医院", "kind": "hospital", "region_code": "310115", "lat": 31.2, "lon": 121.5},
    )
    assert site.status_code == 201, site.text
    need = await client.post(
        "/v1/needs",
        headers=frontline,
        json={
            "site_id": site.json()["id"],
            "title": "口罩",
            "urgency": "high",
            "lines": [{"item_code": MASK, "quantity": 500}],
        },
    )
    assert need.status_code == 201, need.text
    need_id, line_id = need.json()["id"], need.json()["lines"][0]["id"]

    async with serve_receiver() as receiver:
        endpoint = await client.post(
            "/v1/webhook-endpoints",
            headers=customs,
            json={
                "url": receiver.url("/customs"),
                "event_types": ["reliefhub.partners.task.*"],
                "description": "海关组",
            },
        )
        assert endpoint.status_code == 201, endpoint.text
        receiver.secrets["/customs"] = endpoint.json()["secret"]

        # A donor abroad offers masks; the lots await customs.
        row = await client.post("/v1/donors", headers=donor, json={"name": "Hilfswerk e.V.", "kind": "foundation"})
        assert row.status_code == 201, row.text
        offer = await client.post(
            "/v1/offers",
            headers=donor,
            json={
                "donor_id": row.json()["id"],
                "kind": "in_kind",
                "origin_country": "DE",
                "note": "FFP2-Masken, CE-zertifiziert",
                "lots": [{"item_code": MASK, "quantity": 1000, "region_code": "310115", "lat": 31.21, "lon": 121.52}],
            },
        )
        assert offer.status_code == 201, offer.text
        offer_id = offer.json()["id"]
        [lot] = offer.json()["lots"]
        assert offer.json()["origin_country"] == "DE" and offer.json()["customs"] is None
        assert lot["verification"] == "awaiting_customs" and lot["quantity_available"] == 0

        # The customs group hears of its task, signed.
        def created() -> list[dict[str, Any]]:
            return [
                r.event
                for r in receiver.at("/customs")
                if r.event["type"] == "reliefhub.partners.task.created"
                and r.event["data"]["kind"] == "customs_clearance"
            ]

        async def heard() -> list[dict[str, Any]]:
            return created()

        [event] = await eventually(heard)
        [delivery] = [r for r in receiver.at("/customs") if r.event["id"] == event["id"]]
        assert delivery.verified_with == [receiver.secrets["/customs"]]
        assert delivery.headers["webhook-id"] and delivery.headers["webhook-signature"].startswith("v1,")
        task = event["data"]
        assert task["group"] == "customs" and task["subject_id"] == offer_id and task["status"] == "open"
        assert task["lots"][0]["item_code"] == MASK and task["region_code"] == "310115"

        # Not matchable meanwhile: no candidate for the need, no reservation, no proposal.
        candidates = await client.get(f"/v1/candidates?need_line_id={line_id}", headers=coordinator)
        assert candidates.status_code == 200, candidates.text
        assert lot["id"] not in str(candidates.json())
        refused = problem(
            await client.post(
                f"/v1/lots/{lot['id']}/reservations", headers=coordinator, json={"quantity": 10, "reference": "hold-1"}
            ),
            409,
            "lot-unavailable",
        )
        assert "awaiting_customs" in refused["detail"]
        proposals = await client.get(f"/v1/proposals?need_id={need_id}", headers=coordinator)
        assert proposals.json()["items"] == []
        # Its note, from abroad, went to the translators too.
        translator = auth("working_group", org="org-translate", group="translation")
        [translation] = await eventually(lambda: _tasks(client, translator, offer_id))
        assert translation["kind"] == "translation" and translation["details"]["note"] == "FFP2-Masken, CE-zertifiziert"

        # The group completes the task; clearing needs every field.
        url = f"/v1/tasks/{task['id']}/complete"
        incomplete = {
            "outcome": "cleared",
            "data": {"hs_codes": {MASK: "6307900010"}, "consignee_foundation": "上海慈善基金会"},
        }
        missing = problem(await client.post(url, headers=customs, json=incomplete), 422)
        assert ["body", "data", "exemption_reference"] in [e["loc"] for e in missing["errors"]]
        wrong_item = {
            "outcome": "cleared",
            "data": {
                "hs_codes": {"food.grain.rice": "1006300000"},
                "consignee_foundation": "上海慈善基金会",
                "exemption_reference": "沪关免 2022-0417",
            },
        }
        problem(await client.post(url, headers=customs, json=wrong_item), 422)
        cleared = {
            "outcome": "cleared",
            "notes": "已放行",
            "data": {
                "hs_codes": {MASK: "6307900010"},
                "consignee_foundation": "上海慈善基金会",
                "exemption_reference": "沪关免 2022-0417",
            },
        }
        done = await client.post(url, headers=customs, json=cleared)
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "done" and done.json()["data"] == cleared["data"]

        after = (await client.get(f"/v1/offers/{offer_id}", headers=coordinator)).json()
        assert after["lots"][0]["verification"] == "not_required" and after["lots"][0]["quantity_available"] == 1000
        assert (
            after["customs"]["outcome"] == "cleared" and after["customs"]["exemption_reference"] == "沪关免 2022-0417"
        )
        assert after["customs"]["decided_by_org"] == "org-customs"

        # The completion reaches the group's webhook too.
        async def completed() -> list[Any]:
            return [r for r in receiver.at("/customs") if r.event["type"] == "reliefhub.partners.task.completed"]

        [news] = await eventually(completed)
        assert news.verified_with == [receiver.secrets["/customs"]]
        assert news.event["data"]["outcome"] == "cleared" and news.event["data"]["completed_by_org"] == "org-customs"

    # Matching proposes the cleared lot for the need by itself.
    async def proposed() -> list[dict[str, Any]]:
        r = await client.get(f"/v1/proposals?need_id={need_id}", headers=coordinator)
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    [proposal] = await eventually(proposed)
    assert proposal["lot_id"] == lot["id"] and proposal["quantity"] == 500


async def test_customs_decisions_belong_to_the_customs_group(client: httpx.AsyncClient, auth) -> None:
    donor = auth("donor", org="org-abroad")
    row = await client.post("/v1/donors", headers=donor, json={"name": "Relief Inc.", "kind": "company"})
    offer = await client.post(
        "/v1/offers",
        headers=donor,
        json={
            "donor_id": row.json()["id"],
            "kind": "in_kind",
            "origin_country": "US",
            "lots": [{"item_code": MASK, "quantity": 10}],
        },
    )
    assert offer.status_code == 201, offer.text
    url = f"/v1/offers/{offer.json()['id']}/customs-clearance"
    problem(await client.post(url, headers=donor, json={"outcome": "refused"}), 403, "not-customs-group")
    other = auth("working_group", org="org-device-check", group="medical_device")
    problem(await client.post(url, headers=other, json={"outcome": "refused"}), 403, "not-customs-group")
    customs = auth("working_group", org="org-customs", group="customs")
    refused = await client.post(url, headers=customs, json={"outcome": "refused", "notes": "无进口许可"})
    assert refused.status_code == 200, refused.text
    assert refused.json()["lots"][0]["verification"] == "rejected"
    problem(await client.post(url, headers=customs, json={"outcome": "refused"}), 409, "nothing-to-clear")
    # A domestic offer never waits for customs.
    domestic = await client.post(
        "/v1/offers",
        headers=donor,
        json={
            "donor_id": row.json()["id"],
            "kind": "in_kind",
            "origin_country": "CN",
            "lots": [{"item_code": MASK, "quantity": 10}],
        },
    )
    assert domestic.json()["lots"][0]["verification"] == "not_required"
    problem(
        await client.post(
            "/v1/offers",
            headers=donor,
            json={
                "donor_id": row.json()["id"],
                "kind": "in_kind",
                "origin_country": "Germany",
                "lots": [{"item_code": MASK, "quantity": 10}],
            },
        ),
        422,
    )


async def _tasks(client: httpx.AsyncClient, headers: dict[str, str], subject_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/tasks?subject_id={subject_id}", headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])
