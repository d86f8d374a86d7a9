"""Where webhooks may go: URLs to loopback, private, link-local and metadata addresses are refused when an
endpoint is saved (422 `refused-url`) and again when a connection is made, on the address actually used."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from reliefhub.gateway import Gateway
from services.webhooks.delivery import Dispatcher
from services.webhooks.safety import AddressPolicy, RefusedAddress
from services.webhooks.service import on_event
from shared.events import CloudEvent
from shared.runtime import Runtime
from tests.conftest import TokenFactory
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_delivery import make_endpoint

REFUSED_URLS = [
    "http://10.0.0.1/x",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data",
    "http://[fd00::1]/",
    "http://[::ffff:10.0.0.1]/",
]


async def test_private_urls_are_refused_when_saved(
    client: httpx.AsyncClient, auth: TokenFactory, engine: AsyncEngine
) -> None:
    group = auth("working_group", org="org-device-check", group="medical_device")
    for url in REFUSED_URLS:
        r = await client.post("/v1/webhook-endpoints", headers=group, json={"url": url, "event_types": ["*"]})
        assert r.status_code == 422, (url, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["type"].endswith(":refused-url") and problem["status"] == 422, problem
        assert problem["errors"] == [{"loc": ["body", "url"], "msg": "refused"}]
        assert "whsec_" not in r.text
    assert (await client.get("/v1/webhook-endpoints", headers=group)).json()["items"] == []
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM webhooks.endpoint"))).scalar() == 0


def _ip(s: str) -> Any:
    return ipaddress.ip_address(s)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fd00::1",
        "fe80::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
        "ff02::1",
    ],
)
def test_the_policy_refuses_non_public_addresses(address: str) -> None:
    assert not AddressPolicy([]).permits(_ip(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"])
def test_the_policy_permits_public_addresses(address: str) -> None:
    assert AddressPolicy([]).permits(_ip(address))


async def test_the_policy_checks_urls_and_names() -> None:
    policy = AddressPolicy([])
    for url in ["http://127.0.0.1/", "http://localhost:8000/hook", "http://[::1]/", *REFUSED_URLS]:
        with pytest.raises(RefusedAddress):
            await policy.check_url(url)
    await policy.check_url("https://8.8.8.8/hook")
    with pytest.raises(RefusedAddress):
        await policy.check_url("http:///no-host")
    with pytest.raises(RefusedAddress):
        await policy.check_url("http://nowhere.invalid/")


async def test_an_allow_list_lets_its_networks_through() -> None:
    policy = AddressPolicy(["127.0.0.0/8"])
    assert policy.permits(_ip("127.0.0.1")) and policy.permits(_ip("127.8.9.10"))
    assert policy.permits(_ip("::ffff:127.0.0.1"))
    assert not policy.permits(_ip("10.0.0.1")) and not policy.permits(_ip("169.254.169.254"))
    await policy.check_url("http://127.0.0.1:9/")
    assert await policy.resolve("127.0.0.1", 80) == [_ip("127.0.0.1")]
    with pytest.raises(RefusedAddress):
        await policy.check_url("http://192.168.1.1/")


async def _run_dispatcher(rt: Runtime, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(Dispatcher(rt).run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await task


async def test_connections_are_checked_on_the_address_actually_used(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Gateway, receiver: Receiver
) -> None:
    """URLs that passed when saved may point inside later (a name re-resolved: DNS rebinding). The dispatcher
    checks the address it actually connects to: deployed without the loopback allow-list, it reaches neither
    the receiver's 127.0.0.1 URL nor `localhost`; with it (the test settings) the same deliveries arrive."""
    group = auth("working_group", org="org-device-check", group="medical_device")
    literal = await make_endpoint(client, group, receiver, "/literal", ["reliefhub.needs.site.created"])
    named = await client.post(
        "/v1/webhook-endpoints",
        headers=group,
        json={"url": f"http://localhost:{receiver.port}/named", "event_types": ["reliefhub.needs.site.created"]},
    )
    assert named.status_code == 201, named.text
    receiver.secrets["/named"] = named.json()["secret"]

    rt = gateway.apps["webhooks"].state.runtime
    event = CloudEvent(source="/reliefhub/needs", type="reliefhub.needs.site.created", data={"id": str(uuid.uuid4())})
    async with rt.sessionmaker() as session, session.begin():
        await on_event(session, event)  # what the webhooks consumer does with the event

    strict = dataclasses.replace(rt, settings=rt.settings.model_copy(update={"webhook_allowed_networks": []}))
    await _run_dispatcher(strict, 0.6)
    assert receiver.received == []
    for endpoint_id in (literal["id"], named.json()["id"]):
        [delivery] = (await client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries", headers=group)).json()[
            "items"
        ]
        assert delivery["status"] == "pending" and delivery["attempts"] >= 1 and delivery["last_status_code"] is None
        assert delivery["last_error"], delivery
        detail = (await client.get(f"/v1/webhook-deliveries/{delivery['id']}", headers=group)).json()
        assert all(a["status_code"] is None and a["error"] for a in detail["attempt_log"])
        endpoint = (await client.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=group)).json()
        assert endpoint["failing_since"] is not None

    await _run_dispatcher(rt, 1.0)
    for path in ("/literal", "/named"):
        [got] = receiver.at(path)
        assert got.headers["webhook-id"] == event.id and got.verified_with == [receiver.secrets[path]]
        Webhook(receiver.secrets[path]).verify(got.body, got.headers)
