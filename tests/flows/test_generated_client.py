"""The merged OpenAPI document generates a working client: `openapi-python-client` writes a Python package from
`/openapi.json` into a temporary directory, and the flow of a gift runs through that package alone — site, need,
donor, offer, proposal, accept, shipment, receipt with the PIN, feedback, tracking, impact — against the stack
(every service and its workers, on the session's PostgreSQL and Redis). Errors parse into the `Problem` model
(a 404, a 412, a wrong PIN's 403 with `attempts_left`), and the header parameters do what they say:
Idempotency-Key replays, If-Match refuses a stale version, If-None-Match answers 304."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reliefhub.gateway import Gateway
from shared.auth import Role, create_token
from shared.settings import Settings
from tests.helpers.waiting import eventually

PACKAGE = "reliefhub_generated_client"
BASE_URL = "http://reliefhub.test"
RICE = "food.grain.rice"


@pytest.fixture(scope="module")
def generated(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The client package generated from the gateway's document, importable; its directory."""
    root = tmp_path_factory.mktemp("client")
    (root / "openapi.json").write_text(json.dumps(gateway.openapi()))
    # No post hooks: the generator would run ruff over the package, which nothing here needs.
    config = {"project_name_override": PACKAGE, "package_name_override": PACKAGE, "post_hooks": []}
    (root / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(root / "openapi.json"),
            "--config",
            str(root / "config.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(root / PACKAGE),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    sys.path.insert(0, str(root))
    try:
        yield root / PACKAGE
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


class Api:
    """The generated package, its functions by operationId: `await api.call("needs_create", client, body=…)`."""

    def __init__(self, directory: Path, gateway: Gateway, settings: Settings) -> None:
        self.package = importlib.import_module(PACKAGE)
        self.models = importlib.import_module(f"{PACKAGE}.models")
        # One module per operation, named by its operationId, in a folder per tag.
        self.operations = {
            p.stem: f"{PACKAGE}.api.{p.parent.name}.{p.stem}"
            for p in (directory / "api").glob("*/*.py")
            if p.stem != "__init__"
        }
        self.gateway = gateway
        self.settings = settings

    def client(self, *roles: str, org: str) -> Any:
        token = create_token(sub=f"user-{org}", org=org, roles=[Role(r) for r in roles], settings=self.settings)
        return self.package.AuthenticatedClient(
            base_url=BASE_URL,
            token=token,
            httpx_args={"transport": httpx.ASGITransport(app=self.gateway)},
            raise_on_unexpected_status=True,
        )

    def public(self) -> Any:
        transport = httpx.ASGITransport(app=self.gateway)
        return self.package.Client(base_url=BASE_URL, httpx_args={"transport": transport})

    async def call(self, operation: str, client: Any, *args: Any, **kwargs: Any) -> Any:
        module = importlib.import_module(self.operations[operation])
        return await module.asyncio_detailed(*args, client=client, **kwargs)


def ok(response: Any, status: int) -> Any:
    assert response.status_code == status, f"{response.status_code}: {response.content[:2000]!r}"
    assert response.parsed is not None
    return response.parsed


async def test_a_gift_through_the_generated_client(
    generated: Path, gateway: Gateway, migrated: Settings, workers: None
) -> None:
    api = Api(generated, gateway, migrated)
    m = api.models
    recipient = api.client("frontline", org="org-shelter")
    donor = api.client("donor", org="org-grain")
    coordinator = api.client("coordinator", org="org-hub")
    carrier = api.client("logistics", org="org-carrier")

    # A site, created once although the request is sent twice with one Idempotency-Key.
    key = str(uuid.uuid4())
    body = m.SiteCreate(name="浦东临时安置点", kind=m.SiteKind.SHELTER, region_code="310115", lat=31.22, lon=121.54)
    first = await api.call("sites_create", recipient, body=body, idempotency_key=key)
    site = ok(first, 201)
    assert isinstance(site, m.Site) and site.kind == m.SiteKind.SHELTER
    assert first.headers["location"] == f"/v1/sites/{site.id}" and first.headers["etag"] == '"1"'
    again = await api.call("sites_create", recipient, body=body, idempotency_key=key)
    assert ok(again, 201).id == site.id and again.headers["idempotent-replayed"] == "true"

    need = ok(
        await api.call(
            "needs_create",
            recipient,
            body=m.NeedCreate(
                site_id=site.id,
                title="安置点大米",
                urgency=m.Urgency.HIGH,
                beneficiaries=300,
                lines=[m.NeedLineCreate(item_code=RICE, quantity=100)],
            ),
            idempotency_key=str(uuid.uuid4()),
        ),
        201,
    )
    gift_giver = ok(
        await api.call("donors_create", donor, body=m.DonorCreate(name="粮油公司", kind=m.DonorKind.COMPANY)), 201
    )
    offer = ok(
        await api.call(
            "offers_create",
            donor,
            body=m.OfferCreate(
                donor_id=gift_giver.id,
                kind=m.OfferKind.IN_KIND,
                lots=[m.LotCreate(item_code=RICE, quantity=100, lat=31.3, lon=121.5)],
            ),
        ),
        201,
    )
    assert isinstance(offer.tracking_code, str)

    # Matching proposes; the coordinator accepts.
    async def proposed() -> Any:
        page = ok(await api.call("proposals_list", coordinator, need_id=need.id), 200)
        return page.items or None

    [proposal] = await eventually(proposed)
    assert proposal.status == m.ProposalStatus.PROPOSED and proposal.quantity == 100
    accepted = ok(await api.call("proposals_accept", coordinator, proposal.id), 200)
    assert accepted.status == m.ProposalStatus.ACCEPTED

    async def planned() -> Any:
        page = ok(await api.call("shipments_list", recipient, need_id=need.id), 200)
        return page.items[0] if page.items else None

    planned_shipment = await eventually(planned)
    read = await api.call("shipments_get", recipient, planned_shipment.id)
    shipment = ok(read, 200)
    assert shipment.status == m.ShipmentStatus.PLANNED and isinstance(shipment.origin, m.Place)
    etag = read.headers["etag"]
    unchanged = await api.call("shipments_get", recipient, shipment.id, if_none_match=etag)
    assert unchanged.status_code == 304 and unchanged.content == b""

    # If-Match: a stale version is refused with a typed problem; the current one changes the shipment.
    legs = [m.Leg(origin="宝山仓库", destination="浦东临时安置点", carrier="顺丰速运")]
    update = m.ShipmentUpdateRequest(carrier="顺丰速运", legs=legs)
    stale = await api.call("shipments_update", carrier, shipment.id, body=update, if_match='"999"')
    problem = stale.parsed
    assert stale.status_code == 412 and isinstance(problem, m.Problem), stale.content
    assert problem.status == 412 and problem.type_.endswith("precondition-failed") and problem.detail
    changed = await api.call("shipments_update", carrier, shipment.id, body=update, if_match=etag)
    assert [leg.origin for leg in ok(changed, 200).legs] == ["宝山仓库"] and changed.headers["etag"] != etag

    for status in (m.StatusChange.PICKED_UP, m.StatusChange.IN_TRANSIT, m.StatusChange.DELIVERED):
        body = m.StatusRequest(status=status, location="浦东")
        assert ok(await api.call("shipments_status", carrier, shipment.id, body=body), 200).status.value == status.value

    # The receipt: a wrong PIN is a typed 403 that says how many tries are left; the right one receives it.
    lines = [m.ReceiptLine(line_id=line.id, quantity_received=line.quantity) for line in shipment.lines]
    wrong = "000000" if shipment.handover_pin != "000000" else "111111"
    refused = await api.call("shipments_receipt", recipient, shipment.id, body=m.ReceiptRequest(pin=wrong, lines=lines))
    assert refused.status_code == 403 and isinstance(refused.parsed, m.Problem), refused.content
    assert isinstance(refused.parsed.attempts_left, int) and refused.parsed.attempts_left >= 1
    receipt = m.ReceiptRequest(pin=shipment.handover_pin, lines=lines)
    received = ok(await api.call("shipments_receipt", recipient, shipment.id, body=receipt), 200)
    assert received.status == m.ShipmentStatus.RECEIVED
    feedback = m.FeedbackCreate(rating=5, comment="很及时", beneficiaries_served=280)
    assert ok(await api.call("shipments_feedback", recipient, shipment.id, body=feedback), 201).rating == 5

    # The donor's public page, as JSON through the generated model, without a token.
    async def tracked() -> Any:
        tracking = ok(await api.call("track_get", api.public(), offer.tracking_code), 200)
        kinds = [step.kind for step in tracking.timeline]
        return tracking if m.TrackStepKind.FEEDBACK in kinds and m.TrackStepKind.RECEIVED in kinds else None

    tracking = await eventually(tracked)
    assert tracking.kind == m.GiftKind.IN_KIND and tracking.summary.quantity_received == 100

    async def counted() -> Any:
        impact = ok(await api.call("reports_impact_get", coordinator, region_code="31"), 200)
        return impact if impact.totals.beneficiaries == 280 else None

    impact = await eventually(counted)
    assert isinstance(impact, m.Impact) and impact.regions

    # A 404 parses into the problem model too.
    missing = await api.call("needs_get", recipient, uuid.uuid4())
    assert missing.status_code == 404 and isinstance(missing.parsed, m.Problem)
    assert missing.parsed.status == 404 and missing.parsed.type_.endswith("not-found")
    assert missing.headers["content-type"] == "application/problem+json"
