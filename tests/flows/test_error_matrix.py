"""The acceptance rule, for every operation of the merged OpenAPI document: malformed, oversized, unauthorized and
unknown-id requests get a 4xx problem+json, never a 500.

The operations are read from the services' routers when the tests are collected, and checked against
`gateway.openapi()`; an operation that takes a body must have a valid example in `tests.helpers.surface`, so a
new endpoint fails here until it is covered.
"""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from reliefhub.gateway import Gateway
from reliefhub.registry import services
from shared.settings import Settings
from tests.helpers.auth import TokenFactory
from tests.helpers.problems import assert_problem
from tests.helpers.surface import EXAMPLES, JSON, MULTIPART, OPERATIONS, PUBLIC, Operation, operations_of

pytestmark = pytest.mark.usefixtures("redis")

WITH_BODY = [op for op in OPERATIONS if op.body]
WITH_ID = [op for op in OPERATIONS if op.id_params]
PAGED = [op for op in OPERATIONS if ("limit", "query") in op.parameters]


def _ids(ops: list[Operation]) -> list[str]:
    return [str(op) for op in ops]


def valid_body(op: Operation) -> dict[str, Any]:
    if op.body is None:
        return {}
    example = EXAMPLES[op.key]
    if op.body == MULTIPART:
        return {"files": {"file": ("import.csv", example, "text/csv")}}
    return {"json": example}


async def send(
    client: httpx.AsyncClient, op: Operation, headers: dict[str, str], id_value: str | None = None, **kwargs: Any
) -> httpx.Response:
    headers = {**headers, "If-Match": '"1"'} if op.method in ("PATCH", "PUT") else headers
    return await client.request(op.method, op.url(id_value or str(uuid.uuid4())), headers=headers, **kwargs)


# --- the matrix covers the whole surface -------------------------------------------------------------------


def test_the_surface_is_known() -> None:
    assert len(OPERATIONS) >= 20, [str(op) for op in OPERATIONS]
    assert WITH_BODY and WITH_ID and PAGED


async def test_the_matrix_covers_what_the_gateway_serves(gateway: Gateway) -> None:
    served = {op.key: op for op in operations_of(gateway.openapi())}
    assert served == {op.key: op for op in OPERATIONS}


def test_every_operation_with_a_body_has_a_valid_example() -> None:
    needed = {op.key for op in WITH_BODY}
    missing, stale = needed - set(EXAMPLES), set(EXAMPLES) - needed
    assert not missing, f"add a valid example body to EXAMPLES (tests/helpers/surface.py) for: {sorted(missing)}"
    assert not stale, f"EXAMPLES names operations that no longer exist or take no body: {sorted(stale)}"


def test_the_json_examples_are_valid_for_their_body_models() -> None:
    """So that a 404 below really comes from the lookup, not from a body that happens to pass."""
    checked = set()
    for spec in services().values():
        for router in spec.routers:
            for route in router.routes:
                field = getattr(route, "body_field", None)
                for method in getattr(route, "methods", ()):
                    example = EXAMPLES.get((method, getattr(route, "path", "")))
                    if field is not None and isinstance(example, dict):
                        TypeAdapter(field.field_info.annotation).validate_python(example)
                        checked.add((method, route.path))  # type: ignore[attr-defined]
    assert checked == {key for key, example in EXAMPLES.items() if isinstance(example, dict)}


# --- (a) no token ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", [op for op in OPERATIONS if op.key not in PUBLIC], ids=str)
async def test_no_token_is_401(client: httpx.AsyncClient, op: Operation) -> None:
    response = await send(client, op, {}, **valid_body(op))
    assert_problem(response, 401, context=str(op))
    assert response.headers["www-authenticate"].startswith("Bearer"), op


# --- (b) bodies --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", WITH_BODY, ids=str)
async def test_a_malformed_body_is_400(client: httpx.AsyncClient, auth: TokenFactory, op: Operation) -> None:
    if op.body == MULTIPART:
        content_type, content = f"{MULTIPART}; boundary=abc", b"--abc\r\nnot a part"
    else:
        content_type, content = JSON, b'{"name": "unterminated'
    response = await send(client, op, {**auth("admin"), "Content-Type": content_type}, content=content)
    assert_problem(response, 400, context=str(op))


@cache
def _oversized(limit: int) -> bytes:
    return b'{"padding": "' + b"x" * limit + b'"}'


@pytest.mark.parametrize("op", WITH_BODY, ids=str)
async def test_a_body_over_the_limit_is_413(
    client: httpx.AsyncClient, auth: TokenFactory, migrated: Settings, op: Operation
) -> None:
    limit = migrated.max_import_bytes if op.body == MULTIPART else migrated.max_body_bytes
    content_type = f"{MULTIPART}; boundary=abc" if op.body == MULTIPART else JSON
    response = await send(client, op, {**auth("admin"), "Content-Type": content_type}, content=_oversized(limit))
    assert_problem(response, 413, context=str(op))


@pytest.mark.parametrize("op", WITH_BODY, ids=str)
async def test_a_json_array_instead_of_an_object_is_422(
    client: httpx.AsyncClient, auth: TokenFactory, op: Operation
) -> None:
    example = EXAMPLES[op.key]
    response = await send(client, op, auth("admin"), json=[example if isinstance(example, dict) else {}])
    assert_problem(response, 422, context=str(op))


# --- (c) ids -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", WITH_ID, ids=str)
async def test_an_unknown_id_is_404(client: httpx.AsyncClient, auth: TokenFactory, op: Operation) -> None:
    response = await send(client, op, auth("admin"), **valid_body(op))
    assert_problem(response, 404, context=str(op))


@pytest.mark.parametrize("op", WITH_ID, ids=str)
async def test_a_malformed_id_is_422(client: httpx.AsyncClient, auth: TokenFactory, op: Operation) -> None:
    for bad in ("not-a-uuid", "1", "00000000-0000-0000-0000-00000000000g"):
        response = await send(client, op, auth("admin"), id_value=bad, **valid_body(op))
        body = assert_problem(response, 422, context=f"{op} with id {bad!r}")
        assert any(e["loc"][0] == "path" for e in body["errors"]), body


# --- (d) paging --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", PAGED, ids=str)
async def test_bad_paging_is_422(client: httpx.AsyncClient, auth: TokenFactory, op: Operation) -> None:
    for params in ({"limit": "0"}, {"limit": "501"}, {"cursor": "garbage!"}, {"cursor": "W10"}):
        response = await send(client, op, auth("admin"), params=params)
        assert_problem(response, 422, context=f"{op} {params}")
