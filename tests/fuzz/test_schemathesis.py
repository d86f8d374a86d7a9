"""Schemathesis fuzzes every operation of the merged OpenAPI document, as an admin and as a coordinator, against the
in-process gateway on the session's real PostgreSQL and Redis: no 5xx, every response matches the schema and the
content type its status declares.

The gateway here is a separate one, with its own Settings copy: schemathesis drives ASGI apps from its own event-loop
thread (and runs their lifespan there), while the session `gateway` fixture's pools belong to pytest's loop.
The copy also lifts the public tracking page's rate limit (60 requests a minute per client): every fuzz request comes
from the same test client address, in both roles' runs, so past the 60th GET /v1/track/{code} would answer nothing but
429 (declared, so not a failure, but nothing else about the page would be checked). The limit itself is tested in
tests/logistics/test_tracking.py.

Random ids only ever find nothing (404), so before each role's run a few resources are created, and an id path
parameter is either what schemathesis generated or one of those: the 200 answers get their schemas checked too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from redis import Redis as SyncRedis
from schemathesis import Case, HookContext
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import get_client, shutdown_lifespans
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from reliefhub.gateway import Gateway
from shared.settings import Settings
from tests.conftest import TokenFactory, _truncate

pytestmark = pytest.mark.slow  # under a minute here; `pytest -m "not slow"` leaves it out

ROLES = ("admin", "coordinator")
ORG = "org-fuzz"
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]

# Schemathesis' own phases: the schema's examples and random generation. Its coverage phase (every boundary and
# negation of every parameter) is left out to keep the run short; stateful links are not declared.
CONFIG = schemathesis.Config.from_dict(
    {
        "cache": {"enabled": False},
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
    }
)


@dataclass
class Seeds:
    ids: dict[str, str] = field(default_factory=dict)  # path parameter → an existing resource
    disposable: dict[str, str] = field(default_factory=dict)  # … for DELETE, so the others keep theirs

    def for_path(
        self, context: HookContext, path_parameters: dict[str, Any] | None
    ) -> st.SearchStrategy[dict[str, Any] | None]:
        if not path_parameters:  # None for an operation without any
            return st.just(path_parameters)
        method = context.operation.method.upper() if context.operation is not None else ""
        pool = self.disposable if method == "DELETE" else self.ids
        known = {name: pool[name] for name in path_parameters if name in pool}
        if not known:
            return st.just(path_parameters)
        return st.sampled_from([path_parameters, {**path_parameters, **known}])


@pytest.fixture(scope="module")
def fuzz_gateway(migrated: Settings) -> Iterator[Gateway]:
    settings_copy = migrated.model_copy(update={"track_requests_per_minute": 1_000_000})
    # Start from empty tables and Redis, as the `clean` fixture does for tests on the session gateway.
    asyncio.run(_truncate(settings_copy.database_url))
    redis = SyncRedis.from_url(settings_copy.redis_url)
    try:
        redis.flushdb()
    finally:
        redis.close()
    gateway = Gateway(settings_copy)
    yield gateway
    # Schemathesis started the gateway's lifespan on its first request; stop it (closing the pools) while the
    # session's servers are still up, not at interpreter exit.
    shutdown_lifespans()


@pytest.fixture(scope="module")
def fuzz_seeds() -> Seeds:
    return Seeds()


@pytest.fixture(scope="module")
def fuzz_document(fuzz_gateway: Gateway, fuzz_seeds: Seeds) -> BaseSchema:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_gateway, config=CONFIG)
    assert schema.raw_schema == fuzz_gateway.openapi()

    def flatmap_path_parameters(context: HookContext, path_parameters: dict[str, Any] | None) -> st.SearchStrategy[Any]:
        return fuzz_seeds.for_path(context, path_parameters)

    schema.hook(flatmap_path_parameters)
    return schema


@pytest.fixture(scope="module", params=ROLES)
def fuzz_role(request: pytest.FixtureRequest) -> str:
    role: str = request.param
    return role


@pytest.fixture
def fuzz_headers(fuzz_role: str, auth: TokenFactory) -> dict[str, str]:
    return auth(fuzz_role, org=ORG)


@pytest.fixture
def fuzz_schema(
    fuzz_document: BaseSchema, fuzz_gateway: Gateway, fuzz_seeds: Seeds, fuzz_headers: dict[str, str]
) -> BaseSchema:
    """Fresh resources for this role's run (the last run closed, withdrew and deleted its own). Depending on
    `fuzz_role`, it makes the fuzz test below run once per role."""
    fuzz_seeds.ids, fuzz_seeds.disposable = _seed(fuzz_gateway, fuzz_headers)
    return fuzz_document


def _seed(gateway: Gateway, headers: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    with get_client(gateway) as client:

        def create(path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = client.post(path, headers=headers, json=body)
            assert response.status_code == 201, f"{path}: {response.status_code} {response.text}"
            created: dict[str, Any] = response.json()
            return created

        site = create(
            "/v1/sites", {"name": "瑞金医院", "kind": "hospital", "region_code": "310101", "lat": 31.2, "lon": 121.5}
        )
        need = create(
            "/v1/needs",
            {
                "site_id": site["id"],
                "title": "饮用水",
                "urgency": "high",
                "lines": [{"item_code": "water.bottled.small_550ml", "quantity": 100}],
            },
        )
        donor = create("/v1/donors", {"name": "某基金会", "kind": "foundation"})
        offer = create(
            "/v1/offers",
            {
                "donor_id": donor["id"],
                "kind": "in_kind",
                "lots": [{"item_code": "water.bottled.small_550ml", "quantity": 500, "lat": 31.3, "lon": 121.5}],
            },
        )
        lot_id = offer["lots"][0]["id"]
        reservations = [
            create(f"/v1/lots/{lot_id}/reservations", {"quantity": 1, "reference": f"fuzz-{uuid.uuid4()}"})
            for _ in range(2)
        ]
        run = create("/v1/allocation-runs", {"scope": {"region_code": "31"}})
        endpoints = [
            create("/v1/webhook-endpoints", {"url": "http://127.0.0.1:9/hook", "event_types": ["*"], "enabled": False})
            for _ in range(2)
        ]
    ids = {
        "site_id": site["id"],
        "need_id": need["id"],
        "donor_id": donor["id"],
        "offer_id": offer["id"],
        "lot_id": lot_id,
        "reservation_id": reservations[0]["id"],
        "run_id": run["id"],
        "endpoint_id": endpoints[0]["id"],
        "code": offer["tracking_code"],
    }
    return ids, {"reservation_id": reservations[1]["id"], "endpoint_id": endpoints[1]["id"]}


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@schema.parametrize()
@settings(
    max_examples=20,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_fuzz(case: Case, fuzz_headers: dict[str, str]) -> None:
    headers = dict(fuzz_headers)
    if case.method.upper() in ("PATCH", "PUT"):
        # Updates need If-Match (428 without it, which says nothing about the body); `*` accepts any version.
        headers["If-Match"] = "*"
    case.call_and_validate(headers=headers, checks=CHECKS)
