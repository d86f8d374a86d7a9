"""Site → need → donor → offer → working-group verdict → reservation, through HTTP alone, with tokens from
`reliefhub token create`, and every step's event read from its Redis stream by a consumer group."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from redis.asyncio import Redis
from typer.testing import CliRunner

from reliefhub import cli
from reliefhub.gateway import Gateway
from shared.settings import Settings
from shared.worker import run_worker
from tests.helpers.catalog import CONCENTRATOR
from tests.helpers.needs import create_need, create_site
from tests.helpers.supply import create_donor, create_offer, reserve

runner = CliRunner()


def cli_token(*args: str) -> dict[str, str]:
    result = runner.invoke(cli.app, ["token", "create", *args])
    assert result.exit_code == 0, result.output
    return {"Authorization": f"Bearer {result.output.strip()}"}


async def read_group(redis: Redis, stream: str, group: str, want: int) -> list[dict[str, Any]]:
    """Read (and ack) entries of `stream` as consumer group `group` until `want` have arrived."""
    await redis.xgroup_create(stream, group, id="0", mkstream=True)
    events: list[dict[str, Any]] = []
    for _ in range(100):
        resp: Any = await redis.xreadgroup(group, "flow-test", {stream: ">"}, count=100, block=100)
        for _stream, entries in resp or []:
            for msg_id, fields in entries:
                events.append(json.loads(fields["event"]))
                await redis.xack(stream, group, msg_id)
        if len(events) >= want:
            break
    return events


async def test_intake_to_reservation_with_events(
    client: httpx.AsyncClient, gateway: Gateway, redis: Redis, cli_env: Settings
) -> None:
    frontline = cli_token("--role", "frontline", "--org", "org-hospital", "--sub", "dr-wang")
    donor_org = cli_token("--role", "donor", "--org", "org-donor", "--sub", "csr-li")
    coordinator = cli_token("--role", "coordinator", "--org", "hub", "--sub", "zhang")
    device_group = cli_token(
        "--role", "working_group", "--org", "wg-devices", "--sub", "eng", "--group", "medical_device"
    )

    stop = asyncio.Event()  # the services' workers: outbox relays, consumers, jobs
    workers = [asyncio.create_task(run_worker(gateway.apps[n].state.runtime, stop)) for n in ("needs", "supply")]
    try:
        site = await create_site(client, frontline)
        need = await create_need(
            client,
            frontline,
            site["id"],
            {"item_code": CONCENTRATOR, "quantity": 10},
            title="ICU 制氧",
            urgency="critical",
            beneficiaries=40,
        )
        assert need["status"] == "open" and need["lines"][0]["quantity_matched"] == 0

        donor = await create_donor(client, donor_org, name="某医疗器械公司")
        body = await create_offer(
            client,
            donor_org,
            donor["id"],
            lots=[{"item_code": CONCENTRATOR, "quantity": 12, "region_code": "310104"}],
            restrictions={"region_codes": ["31"], "site_kinds": ["hospital"]},
        )
        assert body["tracking_code"] and len(body["tracking_code"]) >= 20
        lot = body["lots"][0]
        assert lot["verification"] == "pending" and lot["quantity_available"] == 0

        blocked = await reserve(client, coordinator, lot["id"], 5, "p-1")
        assert blocked.status_code == 409, blocked.text

        verdict = await client.post(
            f"/v1/offers/{body['id']}/verification",
            headers=device_group,
            json={"verdict": "verified", "notes": "NMPA registration checked"},
        )
        assert verdict.status_code == 200, verdict.text
        assert verdict.json()["lots"][0]["quantity_available"] == 12

        res = await reserve(client, coordinator, lot["id"], 5, "p-1")
        assert res.status_code == 201, res.text
        again = await client.get(f"/v1/lots/{lot['id']}", headers=donor_org)
        assert again.json()["quantity_reserved"] == 5 and again.json()["quantity_available"] == 7

        needs_events = await read_group(redis, "needs.events", "flow-readers", 2)
        supply_events = await read_group(redis, "supply.events", "flow-readers", 4)
    finally:
        stop.set()
        await asyncio.gather(*workers)

    assert [e["type"] for e in needs_events] == ["reliefhub.needs.site.created", "reliefhub.needs.need.created"]
    assert [e["type"] for e in supply_events] == [
        "reliefhub.supply.donor.created",
        "reliefhub.supply.offer.created",
        "reliefhub.supply.lot.verified",
        "reliefhub.supply.reservation.created",
    ]
    for event in needs_events + supply_events:
        assert event["specversion"] == "1.0" and event["source"].startswith("/reliefhub/") and event["time"]
    assert needs_events[1]["data"]["lines"][0]["quantity"] == 10
    assert supply_events[3]["data"]["lot_quantity_reserved"] == 5
    assert "王医生" not in json.dumps(needs_events, ensure_ascii=False)  # contact details stay in the service


async def test_event_catalog_lists_every_type_with_its_schema(client: httpx.AsyncClient, cli_env: Settings) -> None:
    headers = cli_token("--role", "working_group", "--org", "wg", "--sub", "x")
    r = await client.get("/v1/event-types", headers=headers)
    assert r.status_code == 200, r.text
    types = {t["type"]: t for t in r.json()["items"]}
    for name in (
        "reliefhub.needs.site.created",
        "reliefhub.needs.need.created",
        "reliefhub.needs.need.expired",
        "reliefhub.supply.offer.created",
        "reliefhub.supply.lot.verified",
        "reliefhub.supply.reservation.created",
        "reliefhub.supply.reservation.released",
    ):
        assert name in types, name
        assert types[name]["schema"]["type"] == "object" and types[name]["description"]
    assert "tracking_ref" in types["reliefhub.supply.offer.created"]["schema"]["properties"]
    assert (await client.get("/v1/event-types")).status_code == 401
