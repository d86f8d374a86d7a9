"""Needs and offers in → proposals appear with no manual trigger → accept → the lot shows the reservation
and the need line its quantity_matched; all through HTTP and the event streams."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE
from tests.helpers.needs import shelter_need
from tests.helpers.supply import donor_offer
from tests.helpers.waiting import eventually


async def test_proposals_appear_by_themselves_and_acceptance_reserves(
    client: httpx.AsyncClient, auth: TokenFactory, workers: None
) -> None:
    coordinator = auth("coordinator")
    frontline = auth("frontline", org="org-shelter")
    need = await shelter_need(client, auth, {"item_code": RICE, "quantity": 100}, title="大米")
    offer = await donor_offer(client, auth, {"item_code": RICE, "quantity": 60})
    lot_id = offer["lots"][0]["id"]

    async def proposed() -> list[dict[str, Any]]:
        r = await client.get(f"/v1/proposals?need_id={need['id']}&status=proposed", headers=coordinator)
        return list(r.json()["items"])

    proposals = await eventually(proposed)
    assert len(proposals) == 1
    proposal = proposals[0]
    assert proposal["lot_id"] == lot_id and proposal["quantity"] == 60
    assert set(proposal["factors"]) >= {"urgency", "distance", "quantity_fit", "equity"}
    assert proposal["score"] == pytest.approx(sum(proposal["factors"].values()), abs=0.01)

    accepted = await client.post(f"/v1/proposals/{proposal['id']}/accept", headers=coordinator)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted" and accepted.json()["reservation_id"]
    again = await client.post(f"/v1/proposals/{proposal['id']}/accept", headers=coordinator)
    assert again.status_code == 200 and again.json()["reservation_id"] == accepted.json()["reservation_id"]

    lot = (await client.get(f"/v1/lots/{lot_id}", headers=coordinator)).json()
    assert lot["quantity_reserved"] == 60 and lot["quantity_available"] == 0

    async def rolled_up() -> dict[str, Any] | None:
        body = (await client.get(f"/v1/needs/{need['id']}", headers=frontline)).json()
        return body if body["lines"][0]["quantity_matched"] == 60 else None

    rolled = await eventually(rolled_up)
    assert rolled["status"] == "matched"

    kpis = (await client.get("/v1/matching-kpis?level=4", headers=coordinator)).json()
    assert "items" in kpis, kpis
    shanghai = next(k for k in kpis["items"] if k["region_code"] == "3101")
    assert shanghai["quantity"] == 100 and shanghai["matched"] == 60 and shanghai["fill_rate"] == 0.6
