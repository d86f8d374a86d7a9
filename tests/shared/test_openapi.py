"""The merged OpenAPI document is a valid OpenAPI 3.1 document (openapi-spec-validator) and keeps the project's
own rules, the ones client generators depend on: every error a `Problem` under application/problem+json, the
headers the kit reads declared where it reads them, `<collection>_<verb>` operationIds unique and matching
their tags, every status and kind an enum, the nested objects typed, a public operation documenting no 401."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate

from reliefhub.gateway import Gateway
from services.logistics import page
from services.logistics import schemas as logistics_schemas
from shared.openapi import operation_id
from shared.pagination import Page
from shared.settings import Settings

PROBLEM = {"$ref": "#/components/schemas/Problem"}
OPERATION_ID = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return Gateway(Settings(environment="test", jwt_secret="t" * 40)).openapi()


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method, op


def header_parameters(doc: dict[str, Any], op: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for parameter in op.get("parameters", []):
        if "$ref" in parameter:
            parameter = doc["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[1]]
        if parameter["in"] == "header":
            found[parameter["name"]] = parameter
    return found


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")
    info = document["info"]
    assert info["license"]["identifier"] == "Apache-2.0" and info["contact"]["name"]
    assert document["servers"] and document["servers"][0]["url"].startswith("http")


def test_every_error_is_a_problem_under_problem_json(document: dict[str, Any]) -> None:
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status"} <= set(problem["required"])
    members = problem["properties"]
    for extension in ("errors", "attempts_left", "allowed", "retry_after"):
        assert extension in members, extension
    assert members["errors"]["anyOf"][0]["items"] == {"$ref": "#/components/schemas/ProblemError"}
    for path, method, op in operations(document):
        errors = {code: r for code, r in op["responses"].items() if code[0] in "45"}
        assert errors, (method, path)
        for code, response in errors.items():
            assert response["content"] == {"application/problem+json": {"schema": PROBLEM}}, (method, path, code)
    assert not {"HTTPValidationError", "ValidationError", "ProblemDetail"} & set(document["components"]["schemas"])


def test_the_kits_headers_are_declared_where_routes_use_them(document: dict[str, Any]) -> None:
    for path, method, op in operations(document):
        headers = header_parameters(document, op)
        responses = op["responses"]
        success = [r for code, r in responses.items() if code.startswith("2") and code != "204"]
        if method == "post":  # every POST honours Idempotency-Key, the creating ones above all
            key = headers["Idempotency-Key"]
            assert key["required"] is False and key["schema"]["maxLength"] == 255, path
            assert all("Idempotent-Replayed" in r["headers"] for r in success), path
            assert "Retry-After" in responses["409"]["headers"], path  # the key's first request still running
        if method in ("patch", "put"):
            assert headers["If-Match"]["required"] is True, (method, path)
            assert {"412", "428"} <= set(responses), (method, path)
            assert all("ETag" in r["headers"] for r in success), (method, path)
        if "401" in responses:
            assert "WWW-Authenticate" in responses["401"]["headers"], (method, path)
        for code in ("429", "503"):
            if code in responses:
                assert "Retry-After" in responses[code]["headers"], (method, path, code)
        if "201" in responses and path.count("/") == 2:  # a collection's POST names what it created
            assert "Location" in responses["201"]["headers"], path
    sites = document["paths"]["/v1/sites/{site_id}"]["get"]
    assert "If-None-Match" in header_parameters(document, sites)
    assert sites["responses"]["304"]["headers"]["ETag"] and "ETag" in sites["responses"]["200"]["headers"]


def test_operation_ids_are_collection_and_verb_unique_and_tagged(document: dict[str, Any]) -> None:
    seen: dict[str, str] = {}
    tags = {t["name"] for t in document["tags"]}
    for path, method, op in operations(document):
        oid = op["operationId"]
        assert OPERATION_ID.match(oid) and "_v1_" not in oid, oid
        assert oid not in seen, f"{oid}: {seen.get(oid)} and {method} {path}"
        seen[oid] = f"{method} {path}"
        [tag] = op["tags"]
        assert tag == path.split("/")[2] and tag in tags, (oid, tag)
        assert oid.startswith(tag.replace("-", "_") + "_"), (oid, tag)
    grouped = [t for group in document["x-tagGroups"] for t in group["tags"]]
    assert sorted(grouped) == sorted(tags)
    named = {seen[oid]: oid for oid in seen}
    assert named["post /v1/needs"] == "needs_create" and named["get /v1/needs"] == "needs_list"
    assert named["get /v1/needs/{need_id}"] == "needs_get" and named["patch /v1/needs/{need_id}"] == "needs_update"
    assert named["post /v1/shipments/{shipment_id}/receipt"] == "shipments_receipt"
    assert named["get /v1/policy"] == "policy_get" and named["put /v1/policy"] == "policy_replace"
    assert named["get /v1/track/{code}"] == "track_get" and named["get /v1/track/{code}.html"] == "track_get_html"
    assert named["get /v1/webhook-endpoints/{endpoint_id}/deliveries"] == "webhook_endpoints_deliveries_list"


def _plain_string(schema: dict[str, Any]) -> bool:
    if "$ref" in schema or "enum" in schema or "const" in schema:
        return False
    if "anyOf" in schema:
        return any(_plain_string(s) for s in schema["anyOf"] if s.get("type") != "null")
    if schema.get("type") == "array":
        return _plain_string(schema.get("items", {}))
    return bool(schema.get("type") == "string")


def test_statuses_and_kinds_are_enums_and_nested_objects_typed(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name, schema in schemas.items():
        for prop, sub in schema.get("properties", {}).items():
            if prop in ("status", "kind") or prop.endswith(("_status", "_kind")):
                assert not _plain_string(sub), f"{name}.{prop} is a plain string"
    for name, prop, ref in (
        ("Shipment", "origin", "Place"),
        ("Procurement", "supplier", "Supplier"),
        ("AllocationRun", "scope", "RunScope"),
        ("Proposal", "status", "ProposalStatus"),
        ("Reservation", "status", "ReservationStatus"),
        ("AllocationRun", "status", "RunStatus"),
        ("Tracking", "kind", "GiftKind"),
        ("Tracking", "status", "GiftStatus"),
        ("TrackStep", "kind", "TrackStepKind"),
    ):
        assert schemas[name]["properties"][prop] == {"$ref": f"#/components/schemas/{ref}"}, (name, prop)
    assert schemas["Shipment"]["properties"]["legs"]["items"] == {"$ref": "#/components/schemas/Leg"}
    # Every step the tracking timeline can show is a member of its enum (a new one must be added there).
    assert set(page.TITLES) == {k.value for k in logistics_schemas.TrackStepKind}


def test_public_tracking_documents_json_and_html_apart_and_no_401(document: dict[str, Any]) -> None:
    as_json = document["paths"]["/v1/track/{code}"]["get"]
    as_html = document["paths"]["/v1/track/{code}.html"]["get"]
    for op in (as_json, as_html):
        assert op["security"] == [] and "401" not in op["responses"]
    assert set(as_json["responses"]["200"]["content"]) == {"application/json"}
    assert set(as_html["responses"]["200"]["content"]) == {"text/html"}
    assert not [p for p in as_json.get("parameters", []) if p.get("name") in ("format", "lang")]


def test_operation_ids_follow_the_path_for_any_route() -> None:
    app = FastAPI(generate_unique_id_function=operation_id)

    @app.get("/v1/items/requests")
    async def a() -> Page[int]:
        return Page(items=[])

    @app.post("/v1/items/requests")
    async def b() -> None: ...

    @app.post("/v1/items/requests/{request_id}/approve")
    async def c() -> None: ...

    @app.delete("/v1/funds/{fund_id}")
    async def d() -> None: ...

    @app.get("/healthz")
    async def e() -> None: ...

    ids = [op["operationId"] for _, _, op in operations(app.openapi())]
    assert ids == ["items_requests_list", "items_requests", "items_requests_approve", "funds_delete", "e"]
