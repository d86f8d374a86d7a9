"""Soft deadlines over HTTP: a lot arriving after a need's `needed_by` is proposed for a soft line, its score
lowered by the policy's lateness penalty per hour, and never for a hard line (the default); a deadline other than
hard or soft is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.helpers.auth import TokenFactory
from tests.helpers.catalog import RICE
from tests.helpers.http import get_json
from tests.helpers.matching import allocation_run, open_proposals, put_policy
from tests.helpers.needs import create_site, need_body, shelter_need
from tests.helpers.problems import assert_problem
from tests.helpers.streams import project
from tests.helpers.supply import donor_offer

NEEDED_BY = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
# The lot may leave only a day after the needs' deadline.
AVAILABLE_FROM = NEEDED_BY + timedelta(days=1)


async def late_lot(client: httpx.AsyncClient, auth: TokenFactory) -> dict[str, Any]:
    offer = await donor_offer(
        client, auth, {"item_code": RICE, "quantity": 60, "available_from": AVAILABLE_FROM.isoformat()}
    )
    lot: dict[str, Any] = offer["lots"][0]
    return lot


async def candidates(client: httpx.AsyncClient, auth: TokenFactory, line_id: str) -> list[dict[str, Any]]:
    body = await get_json(client, "/v1/candidates", auth("coordinator"), need_line_id=line_id)
    items: list[dict[str, Any]] = body["items"]
    return items


async def test_a_late_lot_is_proposed_for_a_soft_line_and_never_for_a_hard_one(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any
) -> None:
    when = NEEDED_BY.isoformat()
    soft = await shelter_need(client, auth, {"item_code": RICE, "quantity": 50, "deadline": "soft"}, needed_by=when)
    hard = await shelter_need(client, auth, {"item_code": RICE, "quantity": 50}, needed_by=when, org="org-hard")
    assert [line["deadline"] for line in soft["lines"] + hard["lines"]] == ["soft", "hard"]
    lot = await late_lot(client, auth)
    await project(gateway)

    assert await candidates(client, auth, hard["lines"][0]["id"]) == []
    (candidate,) = await candidates(client, auth, soft["lines"][0]["id"])
    assert candidate["lot_id"] == lot["id"]

    await allocation_run(client, auth, item_codes=[RICE])
    assert await open_proposals(client, auth, hard) == []
    (proposal,) = await open_proposals(client, auth, soft)
    assert (proposal["lot_id"], proposal["quantity"]) == (lot["id"], 50)


async def test_the_soft_line_loses_the_policy_penalty_for_each_hour_late(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Any
) -> None:
    need = await shelter_need(
        client, auth, {"item_code": RICE, "quantity": 50, "deadline": "soft"}, needed_by=NEEDED_BY.isoformat()
    )
    await late_lot(client, auth)
    await project(gateway)
    line_id = need["lines"][0]["id"]

    policy = await put_policy(client, auth, lateness_penalty_per_hour=0.0)
    (free,) = await candidates(client, auth, line_id)
    await put_policy(client, auth, lateness_penalty_per_hour=1.0)
    (penalised,) = await candidates(client, auth, line_id)
    # A day between deadline and departure, then the trip at the policy's speed.
    hours_late = 24 + free["distance_km"] / policy["speed_kmh"]
    assert free["score"] - penalised["score"] == pytest.approx(hours_late, abs=0.01)
    assert penalised["factors"] == free["factors"]


@pytest.mark.parametrize("deadline", ["firm", "", None, 1])
async def test_a_deadline_other_than_hard_or_soft_is_refused(
    client: httpx.AsyncClient, auth: TokenFactory, deadline: Any
) -> None:
    headers = auth("frontline", org="org-shelter")
    site = await create_site(client, headers)
    body = need_body(site["id"], {"item_code": RICE, "quantity": 5, "deadline": deadline})
    problem = assert_problem(await client.post("/v1/needs", headers=headers, json=body), 422)
    assert any(e["loc"] == ["body", "lines", 0, "deadline"] for e in problem["errors"]), problem


async def test_a_policy_lateness_penalty_out_of_range_is_refused(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    coordinator = auth("coordinator")
    r = await client.get("/v1/policy", headers=coordinator)
    assert r.json()["lateness_penalty_per_hour"] == 0.5
    for bad in (-1, 101, "fast"):
        put = await client.put(
            "/v1/policy",
            headers={**coordinator, "If-Match": r.headers["ETag"]},
            json={"lateness_penalty_per_hour": bad},
        )
        assert_problem(put, 422)


async def test_an_import_takes_a_deadline_column_and_refuses_another_word(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    headers = auth("frontline", org="org-import")
    site = (await create_site(client, headers))["id"]

    def upload(*deadlines: str) -> dict[str, Any]:
        rows = "".join(f"{site},导入,{RICE},5,{d}\n" for d in deadlines)
        data = f"site_id,title,item_code,quantity,deadline\n{rows}".encode()
        return {"files": {"file": ("needs.csv", data, "text/csv")}, "headers": headers}

    r = await client.post("/v1/needs/imports", **upload("soft", ""))
    assert r.status_code == 201, r.text
    needs = [await get_json(client, f"/v1/needs/{i}", headers) for i in r.json()["created"]]
    assert sorted(n["lines"][0]["deadline"] for n in needs) == ["hard", "soft"]
    body = assert_problem(await client.post("/v1/needs/imports", **upload("soft", "later")), 422)
    assert [x["row"] for x in body["report"]["rows_rejected"]] == [2]


async def test_a_merged_request_keeps_soft_and_hard_lines_of_one_item_apart(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    headers = auth("frontline", org="org-merge")
    site = (await create_site(client, headers))["id"]
    first = need_body(site, {"item_code": RICE, "quantity": 5})
    r = await client.post("/v1/needs", headers=headers, json=first)
    assert r.status_code == 201, r.text
    again = need_body(site, {"item_code": RICE, "quantity": 3, "deadline": "soft"}, {"item_code": RICE, "quantity": 2})
    r = await client.post("/v1/needs", headers=headers, json=again, params={"on_duplicate": "merge"})
    assert r.status_code in (200, 201), r.text
    lines = sorted((line["deadline"], line["quantity"]) for line in r.json()["lines"])
    assert lines == [("hard", 7), ("soft", 3)]
