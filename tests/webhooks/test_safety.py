"""Where webhooks may go: URLs to loopback, private, link-local, site-local and metadata addresses — also
when an IPv6 address carries one (6to4, NAT64, Teredo, IPv4-mapped or -compatible) — are refused when an
endpoint is saved (422 `refused-url`) and again when a connection is made, on the address actually used.
TLS trusts the system's CAs and those of RELIEFHUB_WEBHOOK_CA_BUNDLE."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.routing import Route

from reliefhub.gateway import Gateway
from services.webhooks.delivery import Dispatcher
from services.webhooks.events import on_event
from services.webhooks.safety import AddressPolicy, RefusedAddress
from shared.events import CloudEvent
from shared.runtime import Runtime
from tests.conftest import TokenFactory
from tests.webhooks.receiver import Receiver, free_port
from tests.webhooks.test_delivery import make_endpoint

REFUSED_URLS = [
    "http://10.0.0.1/x",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data",
    "http://[fd00::1]/",
    "http://[::ffff:10.0.0.1]/",
]


def teredo(server: str, client: str) -> str:
    """A Teredo address (RFC 4380): 2001::/32, the server's IPv4 address, flags, and the client's port and IPv4
    address, both inverted."""
    value = (0x2001_0000 << 96) | (int(ipaddress.IPv4Address(server)) << 64) | (0x8000 << 48) | (0xC0DE << 32)
    return str(ipaddress.IPv6Address(value | (~int(ipaddress.IPv4Address(client)) & 0xFFFF_FFFF)))


# IPv6 addresses that carry a private IPv4 address (the loopback ones are allowed by the test settings), and
# IPv6 networks that are not public whatever they carry.
EMBEDDED = [
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
    "2002:c0a8:101:1::1",  # 6to4 of 192.168.1.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "::10.0.0.1",  # IPv4-compatible
    "::169.254.169.254",
    teredo("65.54.227.120", "10.0.0.1"),  # a public server, a private client
    teredo("10.0.0.2", "8.8.8.8"),  # a private server
    "64:ff9b:1::808:808",  # local-use NAT64: where the IPv4 address sits is the network's choice
    "64:ff9b:1:ffff::a00:1",
    "fec0::1",  # site-local
    "fec0:1:2::3",
    "feff::1",
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
        "2002:7f00:1::",
        "64:ff9b::7f00:1",
        "::127.0.0.1",
        *EMBEDDED,
    ],
)
def test_the_policy_refuses_non_public_addresses(address: str) -> None:
    assert not AddressPolicy([]).permits(_ip(address))


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "2002:808:808::1",  # 6to4 of 8.8.8.8
        "64:ff9b::808:808",  # NAT64 of 8.8.8.8: how public hosts look from an IPv6-only network with DNS64
        "::1.1.1.1",
        teredo("65.54.227.120", "8.8.8.8"),
    ],
)
def test_the_policy_permits_public_addresses(address: str) -> None:
    assert AddressPolicy([]).permits(_ip(address))


def test_an_embedded_address_is_judged_as_that_address() -> None:
    loopback = AddressPolicy(["127.0.0.0/8", "::1/128"])
    for carrier in ("2002:7f00:1::", "64:ff9b::7f00:1", "::ffff:127.0.0.1", teredo("65.54.227.120", "127.0.0.1")):
        assert loopback.permits(_ip(carrier)), carrier
    assert loopback.permits(_ip("::1")) and not loopback.permits(_ip("::2"))
    assert not loopback.permits(_ip("64:ff9b:1::7f00:1")) and not loopback.permits(_ip("fec0::1"))
    # An operator may allow an IPv6 network as such.
    assert AddressPolicy(["fec0::/10", "64:ff9b:1::/48"]).permits(_ip("fec0::1"))
    assert AddressPolicy(["64:ff9b:1::/48"]).permits(_ip("64:ff9b:1::a00:1"))


async def test_urls_to_addresses_carrying_private_ones_are_refused_when_saved(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    group = auth("working_group", org="org-device-check", group="medical_device")
    for address in EMBEDDED:
        r = await client.post(
            "/v1/webhook-endpoints", headers=group, json={"url": f"http://[{address}]:8080/hook", "event_types": ["*"]}
        )
        assert r.status_code == 422, (address, r.text)
        assert r.json()["type"].endswith(":refused-url")
    assert (await client.get("/v1/webhook-endpoints", headers=group)).json()["items"] == []


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


async def _owe_an_event(rt: Runtime) -> CloudEvent:
    event = CloudEvent(source="/reliefhub/needs", type="reliefhub.needs.site.created", data={"id": str(uuid.uuid4())})
    async with rt.sessionmaker() as session, session.begin():
        await on_event(session, event)  # what the webhooks consumer does with the event
    return event


async def test_addresses_carrying_private_ones_are_refused_when_connecting(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Endpoints saved while their IPv6 networks were allowed as such are refused by a dispatcher whose policy
    judges the IPv4 address they carry (or refuses the network): no attempt leaves this machine."""
    group = auth("working_group", org="org-device-check", group="medical_device")
    app = gateway.apps["webhooks"]
    lax = app.state.settings.model_copy(
        update={"webhook_allowed_networks": ["2002::/16", "64:ff9b::/96", "64:ff9b:1::/48", "fec0::/10", "::/96"]}
    )
    monkeypatch.setattr(app.state, "settings", lax)
    addresses = ["2002:a00:1::1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::808:808", "fec0::1", "::10.0.0.1"]
    ids = []
    for address in addresses:
        r = await client.post(
            "/v1/webhook-endpoints",
            headers=group,
            json={"url": f"http://[{address}]:8080/hook", "event_types": ["reliefhub.needs.site.created"]},
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    monkeypatch.undo()

    rt = app.state.runtime
    await _owe_an_event(rt)
    await _run_dispatcher(rt, 0.6)
    for endpoint_id, address in zip(ids, addresses, strict=True):
        [delivery] = (await client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries", headers=group)).json()[
            "items"
        ]
        assert delivery["status"] == "pending" and delivery["attempts"] >= 1, delivery
        assert delivery["last_error"].startswith("refused: "), (address, delivery["last_error"])
        assert "not public" in delivery["last_error"]


@asynccontextmanager
async def serve_tls_receiver(cert: trustme.LeafCert, tmp: Path) -> AsyncIterator[Receiver]:
    """The receiver over https on loopback, with a certificate for 127.0.0.1 from a private CA."""
    receiver = Receiver(port=free_port())
    chain = tmp / "receiver.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(chain)
    app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["POST"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=receiver.port, log_level="warning", ssl_certfile=chain)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task


async def test_a_ca_bundle_lets_webhooks_reach_receivers_of_a_private_ca(
    client: httpx.AsyncClient, auth: TokenFactory, gateway: Gateway, tmp_path: Path
) -> None:
    ca = trustme.CA(organization_name="ReliefHub test CA")
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(bundle)
    group = auth("working_group", org="org-device-check", group="medical_device")
    async with serve_tls_receiver(ca.issue_cert("127.0.0.1"), tmp_path) as receiver:
        url = f"https://127.0.0.1:{receiver.port}/tls"
        r = await client.post(
            "/v1/webhook-endpoints", headers=group, json={"url": url, "event_types": ["reliefhub.needs.site.created"]}
        )
        assert r.status_code == 201, r.text
        endpoint, secret = r.json()["id"], r.json()["secret"]
        receiver.secrets["/tls"] = secret
        rt = gateway.apps["webhooks"].state.runtime
        event = await _owe_an_event(rt)

        # The system's CAs do not know this one: the certificate is refused, nothing is sent.
        await _run_dispatcher(rt, 0.6)
        assert receiver.received == []
        [delivery] = (await client.get(f"/v1/webhook-endpoints/{endpoint}/deliveries", headers=group)).json()["items"]
        assert "certificate verify failed" in delivery["last_error"], delivery

        bundled = dataclasses.replace(rt, settings=rt.settings.model_copy(update={"webhook_ca_bundle": bundle}))
        await _run_dispatcher(bundled, 1.0)
        [got] = receiver.at("/tls")
        assert got.headers["webhook-id"] == event.id and got.verified_with == [secret]
        [delivery] = (await client.get(f"/v1/webhook-endpoints/{endpoint}/deliveries", headers=group)).json()["items"]
        assert delivery["status"] == "succeeded", delivery


def test_the_ca_bundle_setting_names_an_existing_file(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from shared.settings import Settings

    with pytest.raises(ValidationError, match="webhook_ca_bundle"):
        Settings(webhook_ca_bundle=tmp_path / "missing.pem")
    (tmp_path / "ca.pem").write_text("")
    assert Settings(webhook_ca_bundle=tmp_path / "ca.pem").webhook_ca_bundle == tmp_path / "ca.pem"
