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

Then `test_hostile_inputs` sends, to every operation the document gives a JSON body or a date-time query
parameter, what random generation hardly finds: deep nesting, lone surrogates and out-of-range timestamps, with
an Idempotency-Key, under the same checks (a fixed list of cases, a few seconds per role).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from redis import Redis as SyncRedis
from schemathesis import Case, HookContext
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.python.asgi import get_client, shutdown_lifespans
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from reliefhub.gateway import Gateway
from shared.settings import Settings
from tests.helpers.auth import TokenFactory
from tests.helpers.db import truncate_services

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
    asyncio.run(truncate_services(settings_copy.database_url))
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
    with get_client(cast(Any, gateway)) as client:  # an ASGI app; schemathesis types it narrower than Starlette

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


# --- hostile inputs ------------------------------------------------------------------------------------------
# What random generation hardly ever produces, and what a careless or hostile client sends: JSON nested deeper than
# a parser recurses, a string holding a lone surrogate (a valid JSON escape that is not UTF-8), and timestamps whose
# offset carries them out of what Python and PostgreSQL convert. Every operation the document gives a JSON body or a
# date-time query parameter gets them, a POST with an Idempotency-Key and without, each on a body that is otherwise
# valid (built from the operation's schema and the seeded ids), so that the hostile part is what the service meets.

DEPTH = 1000
FAR_DATES = ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59")
SURROGATE = "\ud800x"
# Values for the patterns the document declares; a pattern not listed gets a plain string (and a 422).
PATTERN_VALUES = {
    r"^[1-8]\d{5}$": "310101",
    r"^\d{6}$": "123456",
    r"^\d{2,6}$": "31",
    r"^[A-Z]{3}$": "CNY",
    r"^[a-z0-9_.]{1,100}$": "water.bottled.small_550ml",
    r"^[^@\s]+@[^@\s]+$": "wg@example.org",
    r"^\+?[0-9][0-9 \-]{4,30}$": "+86 138 0000 0000",
    r"^[A-Za-z0-9_-]{8,64}$": "abcdefgh",
    r"^(zh|en)$": "zh",
    r"^(json|html)$": "json",
    r"^reliefhub(\.[a-z_]+){0,3}(\.\*)?$|^\*$": "*",
}
NAMED_VALUES = {"item_code": "water.bottled.small_550ml", "url": "http://127.0.0.1:9/hook"}


@dataclass(frozen=True)
class HostileCase:
    method: str
    path: str
    label: str
    path_parameters: dict[str, str]
    body: bytes | None = None
    query: dict[str, str] | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.label}"


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        target: Any = doc
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    options = [o for o in schema.get("anyOf", schema.get("oneOf", [])) if o.get("type") != "null"]
    if options:
        return _resolve(options[0], doc)
    return schema


def _has_date(schema: dict[str, Any], doc: dict[str, Any], seen: frozenset[str] = frozenset()) -> bool:
    schema = _resolve(schema, doc)
    if schema.get("format") == "date-time":
        return True
    if schema.get("title") in seen:
        return False
    seen = seen | {str(schema.get("title"))}
    children = [*schema.get("properties", {}).values(), *([schema["items"]] if "items" in schema else [])]
    return any(_has_date(child, doc, seen) for child in children)


def _instance(schema: dict[str, Any], doc: dict[str, Any], name: str, ids: dict[str, str], when: Iterator[str]) -> Any:
    """A valid value for `schema`: required properties, and any that hold a timestamp (the next of `when`)."""
    schema = _resolve(schema, doc)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object":
        required = set(schema.get("required", []))
        return {
            key: _instance(sub, doc, key, ids, when)
            for key, sub in schema.get("properties", {}).items()
            if key in required or _has_date(sub, doc)
        }
    if kind == "array":
        return [_instance(schema["items"], doc, name, ids, when)] * max(1, schema.get("minItems", 1))
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1)
        value = min(max(low, 1), schema.get("maximum", 1_000_000))
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    fmt = schema.get("format")
    if fmt == "date-time":
        return next(when)
    if fmt == "uuid":
        return ids.get(name, str(uuid.uuid4()))
    if name in NAMED_VALUES:
        return NAMED_VALUES[name]
    return PATTERN_VALUES.get(schema.get("pattern", ""), "x" * max(1, schema.get("minLength", 1)))


def _with_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return SURROGATE + value
    if isinstance(value, dict):
        return {_with_surrogates(k): _with_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_surrogates(v) for v in value]
    return value


def _encoded(value: Any) -> bytes:
    return json.dumps(value).encode()  # ensure_ascii: a lone surrogate travels as its \ud800 escape


def hostile_cases(doc: dict[str, Any], ids: dict[str, str]) -> list[HostileCase]:
    cases: list[HostileCase] = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            parameters = operation.get("parameters", [])
            path_parameters = {
                p["name"]: ids.get(p["name"], str(uuid.uuid4())) for p in parameters if p.get("in") == "path"
            }
            for label, body, query in _hostile_inputs(operation, doc, ids):
                cases.append(HostileCase(method.upper(), path, label, path_parameters, body, query))
    return cases


def _hostile_inputs(
    operation: dict[str, Any], doc: dict[str, Any], ids: dict[str, str]
) -> Iterator[tuple[str, bytes | None, dict[str, str] | None]]:
    """(label, JSON body, query) for one operation of the document."""
    dated = [
        p["name"] for p in operation.get("parameters", []) if p.get("in") == "query" and _has_date(p["schema"], doc)
    ]
    for when in FAR_DATES if dated else ():
        yield f"query {','.join(dated)}={when}", None, dict.fromkeys(dated, when)
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return
    schema = content["schema"]
    valid = _instance(schema, doc, "", ids, _dates())
    yield f"nested {DEPTH} deep", b"[" * DEPTH + b"]" * DEPTH, None
    if isinstance(valid, dict) and valid:
        first = next(iter(valid))
        deep = json.loads('{"a":' * (DEPTH // 2) + "1" + "}" * (DEPTH // 2))
        yield f"{first} nested {DEPTH // 2} deep", _encoded({**valid, first: deep}), None
    yield "lone surrogates", _encoded(_with_surrogates(valid)), None
    stamps = sum(1 for _ in _instance_dates(schema, doc, ids))
    for n, when in itertools.product(range(stamps), FAR_DATES):  # one at a time: the others keep their order
        yield f"timestamp #{n} {when}", _encoded(_instance(schema, doc, "", ids, _dates({n: when}))), None


def _dates(hostile: dict[int, str] | None = None) -> Iterator[str]:
    """Timestamps for a body, in the order they appear: a day apart (an offer's lot is available before it
    expires), the n-th replaced by `hostile[n]`."""
    for n in itertools.count():
        yield (hostile or {}).get(n, f"2030-01-{n + 1:02d}T00:00:00+08:00")


def _instance_dates(schema: dict[str, Any], doc: dict[str, Any], ids: dict[str, str]) -> list[str]:
    seen: list[str] = []

    def recording() -> Iterator[str]:
        for value in _dates():
            seen.append(value)
            yield value

    _instance(schema, doc, "", ids, recording())
    return seen


def test_hostile_inputs(
    fuzz_schema: BaseSchema, fuzz_gateway: Gateway, fuzz_seeds: Seeds, fuzz_headers: dict[str, str]
) -> None:
    cases = hostile_cases(fuzz_gateway.openapi(), fuzz_seeds.ids)
    assert len(cases) > 50
    failures: list[str] = []
    for hostile in cases:
        operation = fuzz_schema[hostile.path][hostile.method]
        for key in (None, f"hostile-{uuid.uuid4()}") if hostile.method == "POST" else (None,):
            headers = dict(fuzz_headers)
            if hostile.method in ("PATCH", "PUT"):
                headers["If-Match"] = "*"
            if key is not None:
                headers["Idempotency-Key"] = key
            kwargs: dict[str, Any] = {"path_parameters": hostile.path_parameters, "query": hostile.query}
            if hostile.body is not None:
                kwargs.update(body=hostile.body, media_type="application/json")
            try:
                operation.Case(**kwargs).call_and_validate(headers=headers, checks=CHECKS)
            except FailureGroup as group:  # every case is tried; the report lists what failed
                failures.append(f"{hostile} (Idempotency-Key: {key}): {group.exceptions[0]}")
            except Exception as exc:  # a 500's exception, re-raised by the ASGI client
                failures.append(f"{hostile} (Idempotency-Key: {key}): {exc!r}")
    assert not failures, "\n\n".join(failures)
