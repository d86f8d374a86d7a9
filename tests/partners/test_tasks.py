"""Working groups' task queues over HTTP and the streams: device checks opened by offers and closed by the
verdict (given in supply, or through the task), claims, outcomes and their data, visibility, overdue flags,
cancellation with the offer, quotes for drafted procurement orders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from reliefhub.gateway import Gateway
from services.partners.main import SERVICE as PARTNERS
from shared.settings import Settings
from shared.worker import run_job_once
from tests.helpers.funds import record_payment
from tests.helpers.partners import CONCENTRATOR, approve, approved_hub, eventually, problem, register


async def device_offer(client: httpx.AsyncClient, auth, org: str = "org-maker", **fields: Any) -> dict[str, Any]:
    donor = auth("donor", org=org)
    row = await client.post("/v1/donors", headers=donor, json={"name": "鱼跃医疗", "kind": "company"})
    assert row.status_code == 201, row.text
    offer = await client.post(
        "/v1/offers",
        headers=donor,
        json={
            "donor_id": row.json()["id"],
            "kind": "in_kind",
            "lots": [{"item_code": CONCENTRATOR, "quantity": 3, "region_code": "310106", "lat": 31.2, "lon": 121.4}],
            **fields,
        },
    )
    assert offer.status_code == 201, offer.text
    body: dict[str, Any] = offer.json()
    return body


async def tasks_of(client: httpx.AsyncClient, headers: dict[str, str], subject_id: str, **query: str) -> list[dict]:
    params = "&".join(f"{k}={v}" for k, v in {"subject_id": subject_id, **query}.items())
    r = await client.get(f"/v1/tasks?{params}", headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def test_an_offer_of_a_device_opens_a_check_task_that_the_verdict_in_supply_closes(
    client: httpx.AsyncClient, auth, workers: None
) -> None:
    group = auth("working_group", org="org-device-check", group="medical_device")
    offer = await device_offer(client, auth)

    [task] = await eventually(lambda: tasks_of(client, group, offer["id"]))
    assert task["kind"] == "device_check" and task["group"] == "medical_device" and task["status"] == "open"
    assert task["subject"] == {"type": "offer", "id": offer["id"]}
    assert task["details"]["lots"][0]["item_code"] == CONCENTRATOR and task["region_code"] == "310106"
    assert datetime.fromisoformat(task["due_at"]) > datetime.now(UTC) + timedelta(hours=23)

    verdict = await client.post(f"/v1/offers/{offer['id']}/verification", headers=group, json={"verdict": "verified"})
    assert verdict.status_code == 200, verdict.text

    async def done() -> list[dict]:
        return [t for t in await tasks_of(client, group, offer["id"]) if t["status"] == "done"]

    [closed] = await eventually(done)
    assert closed["id"] == task["id"] and closed["outcome"] == "verified"


async def test_a_member_claims_and_completes_the_check_and_supply_records_the_verdict(
    client: httpx.AsyncClient, auth, workers: None
) -> None:
    alice = auth("working_group", org="org-device-check", sub="alice", group="medical_device")
    bob = auth("working_group", org="org-device-check", sub="bob", group="medical_device")
    translator = auth("working_group", org="org-translate", group="translation")
    offer = await device_offer(client, auth)
    [task] = await eventually(lambda: tasks_of(client, alice, offer["id"]))
    url = f"/v1/tasks/{task['id']}"

    # Another group's member neither sees it nor works on it; a donor has no queue at all.
    assert await tasks_of(client, translator, offer["id"]) == []
    problem(await client.get(url, headers=translator), 403, "not-your-group")
    problem(await client.get("/v1/tasks", headers=auth("donor", org="org-maker")), 403)
    problem(await client.post(f"{url}/claim", headers=auth("donor", org="org-maker")), 403)

    claimed = await client.post(f"{url}/claim", headers=alice)
    assert claimed.status_code == 200 and claimed.json()["status"] == "claimed"
    assert claimed.json()["claimed_by"] == "alice"
    again = await client.post(f"{url}/claim", headers=alice)
    assert again.status_code == 200 and again.json()["version"] == claimed.json()["version"]
    problem(await client.post(f"{url}/claim", headers=bob), 409, "task-taken")
    problem(await client.post(f"{url}/complete", headers=bob, json={"outcome": "verified"}), 409, "task-taken")

    wrong = problem(await client.post(f"{url}/complete", headers=alice, json={"outcome": "approved"}), 422)
    assert wrong["type"].endswith("invalid-outcome") and wrong["errors"][0]["loc"] == ["body", "outcome"]

    done = await client.post(f"{url}/complete", headers=alice, json={"outcome": "rejected", "notes": "证书过期"})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "done" and done.json()["outcome"] == "rejected"
    assert done.json()["completed_by_org"] == "org-device-check"
    lot = (await client.get(f"/v1/offers/{offer['id']}", headers=alice)).json()["lots"][0]
    assert lot["verification"] == "rejected" and lot["verification_notes"] == "证书过期"
    problem(await client.post(f"{url}/complete", headers=alice, json={"outcome": "verified"}), 409, "task-closed")


async def test_outcome_data_is_validated_by_kind(client: httpx.AsyncClient, auth, workers: None) -> None:
    coordinator = auth("coordinator")
    translator = auth("working_group", org="org-translate", group="translation")
    created = await client.post(
        "/v1/tasks",
        headers=coordinator,
        json={
            "kind": "translation",
            "title": "翻译捐赠说明",
            "subject": {"type": "document", "id": "doc-17"},
            "details": {"source_language": "de", "url": "https://example.org/doc-17.pdf"},
        },
    )
    assert created.status_code == 201, created.text
    task = created.json()
    assert task["group"] == "translation" and task["status"] == "open"
    url = f"/v1/tasks/{task['id']}/complete"

    missing = problem(await client.post(url, headers=translator, json={"outcome": "translated", "data": {}}), 422)
    assert ["body", "data", "text"] in [e["loc"] for e in missing["errors"]]
    problem(
        await client.post(url, headers=translator, json={"outcome": "translated", "data": {"text": "x", "extra": 1}}),
        422,
    )
    done = await client.post(
        url, headers=translator, json={"outcome": "translated", "data": {"language": "zh", "text": "捐赠呼吸机两台"}}
    )
    assert done.status_code == 200, done.text
    assert done.json()["data"] == {"language": "zh", "text": "捐赠呼吸机两台"}
    # Hand-made tasks are for coordinators; device checks and customs are opened by the services.
    problem(await client.post("/v1/tasks", headers=translator, json=task), 403)
    problem(
        await client.post(
            "/v1/tasks",
            headers=coordinator,
            json={"kind": "customs_clearance", "title": "x", "subject": {"type": "offer", "id": "x"}},
        ),
        422,
    )


async def test_a_task_past_its_due_time_is_flagged_overdue_once(
    client: httpx.AsyncClient, auth, gateway: Gateway, engine: AsyncEngine
) -> None:
    coordinator = auth("coordinator")
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    body = {
        "kind": "procurement_quote",
        "title": "采购报价",
        "subject": {"type": "need", "id": "need-1"},
        "due_at": past,
    }
    created = await client.post("/v1/tasks", headers=coordinator, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["overdue"] is True

    [job] = [j for j in PARTNERS.jobs if j.name == "flag-overdue-tasks"]
    runtime = gateway.apps["partners"].state.runtime
    assert await run_job_once(runtime, job) == 1
    assert await run_job_once(runtime, job) == 0
    async with engine.connect() as conn:
        events = (
            (
                await conn.execute(
                    text("SELECT envelope FROM partners.outbox_event WHERE type = 'reliefhub.partners.task.overdue'")
                )
            )
            .scalars()
            .all()
        )
    assert [e["data"]["id"] for e in events] == [created.json()["id"]]
    assert events[0]["data"]["overdue"] is True and events[0]["data"]["group"] == "procurement"


async def test_withdrawing_an_offer_cancels_its_tasks(client: httpx.AsyncClient, auth, workers: None) -> None:
    group = auth("working_group", org="org-device-check", group="medical_device")
    offer = await device_offer(client, auth)
    await eventually(lambda: tasks_of(client, group, offer["id"]))
    withdrawn = await client.post(f"/v1/offers/{offer['id']}/withdraw", headers=auth("donor", org="org-maker"))
    assert withdrawn.status_code == 200, withdrawn.text

    async def cancelled() -> list[dict]:
        return await tasks_of(client, group, offer["id"], status="cancelled")

    [task] = await eventually(cancelled)
    problem(await client.post(f"/v1/tasks/{task['id']}/claim", headers=group), 409, "task-closed")


async def test_a_drafted_procurement_order_asks_the_procurement_group_for_quotes(
    client: httpx.AsyncClient, auth, workers: None
) -> None:
    donor = auth("donor", org="org-fund")
    row = await client.post("/v1/donors", headers=donor, json={"name": "爱心基金会", "kind": "foundation"})
    pledge = await client.post(
        "/v1/offers",
        headers=donor,
        json={"donor_id": row.json()["id"], "kind": "cash", "amount": 100_000, "currency": "CNY"},
    )
    assert pledge.status_code == 201, pledge.text
    await record_payment(client, auth, pledge.json()["id"], 50_000, wait=False)  # it spends only money received
    coordinator = auth("coordinator")
    order = {
        "supplier": {"name": "浦东粮油批发市场", "region_code": "310115", "lat": 31.2, "lon": 121.6},
        "lines": [{"item_code": "food.grain.rice", "quantity": 10, "unit_price": 5_000}],
        "funding": [{"offer_id": pledge.json()["id"], "amount": 50_000}],
        "region_code": "3101",
    }

    async def drafted() -> dict | None:  # 409 until logistics has heard of the pledge and its payment
        r = await client.post("/v1/procurements", headers=coordinator, json=order)
        return r.json() if r.status_code == 201 else None

    procurement = await eventually(drafted)
    buyer = auth("working_group", org="org-buyers", group="procurement")
    [task] = await eventually(lambda: tasks_of(client, buyer, procurement["id"]))
    assert task["kind"] == "procurement_quote" and task["details"]["lots"][0]["item_code"] == "food.grain.rice"
    quote = {"supplier": "某粮油公司", "amount": 48_000, "currency": "CNY"}
    done = await client.post(
        f"/v1/tasks/{task['id']}/complete", headers=buyer, json={"outcome": "quoted", "data": {"quotes": [quote]}}
    )
    assert done.status_code == 200, done.text
    assert done.json()["data"]["quotes"][0]["amount"] == 48_000


async def test_a_pending_working_group_may_not_work_on_tasks_when_the_registry_is_on(
    client: httpx.AsyncClient, auth, migrated: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = await approved_hub(client, auth, "hub-task-sh", ["31"])
    members = auth("working_group", org="wg-translate", group="translation")
    await register(client, members, name="翻译组", kind="working_group", region_codes=["31"])
    created = await client.post(
        "/v1/tasks",
        headers=auth("admin", org="reliefhub-ops"),
        json={"kind": "translation", "title": "翻译", "subject": {"type": "document", "id": "d1"}},
    )
    assert created.status_code == 201, created.text
    monkeypatch.setattr(migrated, "org_registry", True)
    url = f"/v1/tasks/{created.json()['id']}/claim"
    problem(await client.post(url, headers=members), 403, "organisation-not-approved")
    await approve(client, hub, "wg-translate")
    assert (await client.post(url, headers=members)).status_code == 200
