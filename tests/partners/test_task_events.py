"""The tasks supply's events open and close reach the same state whatever order, and however often, the events
arrive: each history recorded from supply's outbox (offers made, cleared through customs, checked, withdrawn,
through the API) is fed to the partners handler in every order, one transaction per event, some twice."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from reliefhub.gateway import Gateway
from services.partners.events import on_supply_event
from shared.events import CloudEvent
from tests.helpers.partners import CONCENTRATOR

STATE = 'SELECT source_key, kind, "group", status, outcome FROM partners.task ORDER BY source_key'


async def _offer(client: httpx.AsyncClient, auth, **fields: Any) -> dict[str, Any]:
    donor = auth("donor", org="org-abroad")
    row = await client.post("/v1/donors", headers=donor, json={"name": "Medizin e.V.", "kind": "foundation"})
    lots = [{"item_code": CONCENTRATOR, "quantity": 2}, {"item_code": "food.grain.rice", "quantity": 50}]
    r = await client.post(
        "/v1/offers", headers=donor, json={"donor_id": row.json()["id"], "kind": "in_kind", "lots": lots, **fields}
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _history(engine: AsyncEngine, offer_id: str) -> list[CloudEvent]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT envelope FROM supply.outbox_event WHERE subject = :s ORDER BY seq"), {"s": offer_id}
        )
        return [CloudEvent.model_validate(envelope) for envelope in rows.scalars()]


async def _replay(gateway: Gateway, engine: AsyncEngine, events: list[CloudEvent]) -> list[tuple[Any, ...]]:
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE partners.task, partners.outbox_event"))
    runtime = gateway.apps["partners"].state.runtime
    for event in events:
        async with runtime.sessionmaker() as session, session.begin():
            await on_supply_event(session, event)
    async with engine.connect() as conn:
        return [tuple(row) for row in (await conn.execute(text(STATE))).all()]


async def test_task_state_does_not_depend_on_the_order_events_arrive(
    client: httpx.AsyncClient, auth, gateway: Gateway, engine: AsyncEngine
) -> None:
    donor = auth("donor", org="org-abroad")
    customs = auth("working_group", org="org-customs", group="customs")
    checker = auth("working_group", org="org-device-check", group="medical_device")

    # From abroad, with a note: cleared, its device checked, then withdrawn.
    abroad = await _offer(client, auth, origin_country="DE", note="Sauerstoffkonzentratoren")
    cleared = {
        "outcome": "cleared",
        "hs_codes": {CONCENTRATOR: "9019200000", "food.grain.rice": "1006300000"},
        "consignee_foundation": "上海慈善基金会",
        "exemption_reference": "沪关免 2022-0001",
    }
    url = f"/v1/offers/{abroad['id']}"
    assert (await client.post(f"{url}/customs-clearance", headers=customs, json=cleared)).status_code == 200
    assert (await client.post(f"{url}/verification", headers=checker, json={"verdict": "verified"})).status_code == 200
    assert (await client.post(f"{url}/withdraw", headers=donor, json={})).status_code == 200
    # Domestic, withdrawn before anyone checked it.
    domestic = await _offer(client, auth)
    assert (await client.post(f"/v1/offers/{domestic['id']}/withdraw", headers=donor, json={})).status_code == 200

    for offer, expected in (
        (
            abroad,
            [
                ("customs_clearance", "customs", "done", "cleared"),
                ("device_check", "medical_device", "done", "verified"),
                ("translation", "translation", "cancelled", None),
            ],
        ),
        (domestic, [("device_check", "medical_device", "cancelled", None)]),
    ):
        history = await _history(engine, offer["id"])
        assert len(history) >= 2
        in_order = await _replay(gateway, engine, history)
        assert [row[1:] for row in in_order] == expected
        for order in itertools.permutations(history):
            assert await _replay(gateway, engine, list(order)) == in_order, [e.type for e in order]
        assert await _replay(gateway, engine, [*history, *reversed(history)]) == in_order  # redelivered
