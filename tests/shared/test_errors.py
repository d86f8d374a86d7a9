"""Every error is RFC 9457 problem+json: bad bodies, unknown paths and methods, auth, and the unexpected."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from asyncpg.exceptions import DeadlockDetectedError, SerializationError  # type: ignore[import-untyped]
from fastapi import APIRouter
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from reliefhub.devservers import free_port
from reliefhub.registry import services
from shared.app import SessionDep, create_service_app, service_router
from shared.auth import create_token
from shared.db import KitTables, driver_connection, make_kit_tables, service_metadata
from shared.errors import Conflict, NotFound, problem_responses
from shared.service import ServiceSpec
from shared.settings import Settings
from tests.helpers.auth import TokenFactory
from tests.helpers.problems import assert_problem

pytestmark = pytest.mark.usefixtures("redis")

SITE = {"name": "社区服务站", "kind": "community", "region_code": "330102"}


async def test_malformed_json_is_400(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    headers = {**auth("frontline"), "Content-Type": "application/json"}
    for bad in (b'{"name": ', b"{'name': 'x'}", b"\xff\xfe{}", b'{"a": 1} trailing'):
        body = assert_problem(await client.post("/v1/sites", headers=headers, content=bad), 400, context=repr(bad))
        assert body["type"].endswith("malformed-json")
        assert body["errors"] and {"loc", "msg"} <= body["errors"][0].keys()


async def test_validation_errors_are_422_with_their_locations(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    response = await client.post("/v1/sites", headers=auth("frontline"), json={**SITE, "region_code": "abc"})
    body = assert_problem(response, 422)
    assert {"loc": ["body", "region_code"], "msg": body["errors"][0]["msg"]} in body["errors"]


async def test_a_nul_character_postgresql_refuses_is_422(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    """Found by tests/fuzz: text with U+0000 reaches a query (PostgreSQL refuses it) and was a 500."""
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/sites", {"json": {**SITE, "name": "社区\x00服务站"}}),
        ("POST", "/v1/allocation-runs", {"json": {"scope": {"item_codes": ["food.grain.rice\x00"]}}}),
        ("GET", "/v1/needs", {"params": {"item_code": "water\x00"}}),
        (  # intake's statements go through raw asyncpg, whose errors are not DBAPIError
            "POST",
            "/v1/needs",
            {"json": {"site_id": str(uuid.uuid4()), "title": "水", "lines": [{"item_code": "w\x00", "quantity": 1}]}},
        ),
    ]
    for method, path, kwargs in cases:
        response = await client.request(method, path, headers=auth("coordinator"), **kwargs)
        body = assert_problem(response, 422, context=f"{method} {path}")
        assert "NUL" in body["detail"]


async def test_a_body_over_the_limit_is_413_before_it_is_read(
    client: httpx.AsyncClient, auth: TokenFactory, migrated: Settings
) -> None:
    big = b'{"name": "' + b"x" * migrated.max_body_bytes + b'"}'
    response = await client.post(
        "/v1/sites", headers={**auth("frontline"), "Content-Type": "application/json"}, content=big
    )
    body = assert_problem(response, 413)
    assert body["type"].endswith("payload-too-large")


@pytest.mark.parametrize("idempotency_key", [None, "k-1"])
async def test_a_streamed_body_over_the_limit_is_413(
    client: httpx.AsyncClient, auth: TokenFactory, migrated: Settings, idempotency_key: str | None
) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: only counting the bytes can tell
        yield b'{"name": "'
        for _ in range(migrated.max_body_bytes // 50_000 + 1):
            yield b"x" * 50_000
        yield b'", "kind": "hospital", "region_code": "310101"}'

    headers = {**auth("frontline"), "Content-Type": "application/json"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    response = await client.post("/v1/sites", headers=headers, content=chunks())
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)


async def test_imports_take_bodies_up_to_their_own_larger_limit(
    client: httpx.AsyncClient, auth: TokenFactory, migrated: Settings
) -> None:
    assert migrated.max_import_bytes > 2 * migrated.max_body_bytes
    csv = b"site_id,title,item_code,quantity,notes\n" + b"%s,t,food.grain.rice,1,%s\n" % (
        str(uuid.uuid4()).encode(),
        b"n" * (2 * migrated.max_body_bytes),
    )
    response = await client.post("/v1/needs/imports", headers=auth("frontline"), files={"file": ("needs.csv", csv)})
    assert response.status_code != 413
    assert_problem(response, 422)  # the rows are read, and rejected on their merits

    too_big = b"x" * (migrated.max_import_bytes + 1)
    response = await client.post("/v1/needs/imports", headers=auth("frontline"), files={"file": ("n.csv", too_big)})
    assert_problem(response, 413)


@pytest.mark.parametrize(
    "path",
    ["/v1/nothing-here", "/v1/sites/a/b/c", "/v1/needs/8d3c1f0e-5a2b-4c7d-9e6f-1a2b3c4d5e6f/nonsense", "/nothing"],
)
async def test_unknown_paths_are_404(client: httpx.AsyncClient, auth: TokenFactory, path: str) -> None:
    assert_problem(await client.get(path, headers=auth("coordinator")), 404, context=path)


async def test_a_wrong_method_is_405_with_allow(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    response = await client.delete("/v1/sites", headers=auth("coordinator"))
    assert_problem(response, 405)
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert allowed and allowed <= {"GET", "POST"}  # Starlette names the methods of the first route of the path
    assert_problem(await client.put(f"/v1/needs/{uuid.uuid4()}", headers=auth("coordinator"), json={}), 405)


async def test_no_token_is_401_with_www_authenticate(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}, {"Authorization": ""}):
        response = await client.get("/v1/sites", headers=headers)
        assert_problem(response, 401, context=str(headers))
        assert response.headers["www-authenticate"].startswith("Bearer")


def _token(settings: Settings, **overrides: object) -> str:
    return create_token(
        sub="u-1", org="org-a", roles=["coordinator"], settings=settings.model_copy(update=overrides or None)
    )


@pytest.mark.parametrize(
    "case",
    ["expired", "bad-signature", "wrong-audience", "wrong-issuer", "garbage", "unsigned"],
)
async def test_invalid_tokens_are_401(client: httpx.AsyncClient, migrated: Settings, case: str) -> None:
    import jwt

    token = {
        "expired": lambda: create_token(
            sub="u-1", org="org-a", roles=["coordinator"], ttl_seconds=-60, settings=migrated
        ),
        "bad-signature": lambda: _token(migrated, jwt_secret="another-secret-that-is-long-enough-to-sign"),
        "wrong-audience": lambda: _token(migrated, jwt_audience="someone-else"),
        "wrong-issuer": lambda: _token(migrated, jwt_issuer="someone-else"),
        "garbage": lambda: "not.a.jwt",
        "unsigned": lambda: jwt.encode(
            {**jwt.decode(_token(migrated), options={"verify_signature": False})}, key="", algorithm="none"
        ),
    }[case]()
    response = await client.get("/v1/sites", headers={"Authorization": f"Bearer {token}"})
    body = assert_problem(response, 401, context=case)
    assert response.headers["www-authenticate"].startswith("Bearer")
    if case == "expired":
        assert "expired" in body["detail"]


async def test_a_role_not_allowed_is_403(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    for roles in (("donor",), ("logistics",), ("working_group",), ()):
        response = await client.post("/v1/sites", headers=auth(*roles), json=SITE)
        body = assert_problem(response, 403, context=str(roles))
        assert "coordinator" in body["detail"]


# --- the kit's handlers on a bare service app --------------------------------------------------------------


def _kit_spec(router: APIRouter, description: str, *, kit: KitTables | None = None) -> ServiceSpec:
    """A bare service of the kit's, with `router` (and the kit tables of its own schema unless given)."""
    return ServiceSpec(
        name="kit_test",
        description=description,
        metadata=service_metadata("kit_test"),
        kit=kit or make_kit_tables(service_metadata("kit_test")),
        routers=[router],
        migrations=Path("."),
    )


def _kit_app(settings: Settings) -> httpx.AsyncClient:
    router = APIRouter(prefix="/v1")
    dead_port = free_port()

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    @router.get("/db-down")
    async def db_down() -> None:
        engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{dead_port}/x")
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    @router.get("/redis-down")
    async def redis_down() -> None:
        client = Redis.from_url(f"redis://127.0.0.1:{dead_port}/0", socket_connect_timeout=1)
        try:
            await client.ping()
        finally:
            await client.aclose()

    @router.get("/conflict", responses=problem_responses(Conflict, NotFound))
    async def conflict() -> None:
        raise Conflict("Taken.", extra={"hint": "retry"}, headers={"X-Why": "because"})

    spec = _kit_spec(router, "errors")
    app = create_service_app(spec, settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://kit.test")


async def test_an_unexpected_error_is_a_500_problem_without_internals(migrated: Settings) -> None:
    async with _kit_app(migrated) as client:
        response = await client.get("/v1/boom")
    body = assert_problem(response, 500)
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
    assert body["detail"] == "An unexpected error occurred."


@pytest.mark.parametrize("path", ["/v1/db-down", "/v1/redis-down"])
async def test_an_unreachable_backing_service_is_503_with_retry_after(migrated: Settings, path: str) -> None:
    async with _kit_app(migrated) as client:
        response = await client.get(path)
    body = assert_problem(response, 503)
    assert body["type"].endswith("service-unavailable")
    assert response.headers["retry-after"] == "2"


async def test_a_request_that_waits_out_the_pool_is_503_with_retry_after(migrated: Settings) -> None:
    """Every pooled connection busy for the pool's whole timeout: 503 with Retry-After (busy, not broken), and
    the request that held the connection still answers."""
    router = service_router(prefix="/v1")
    holding = asyncio.Event()
    release = asyncio.Event()

    @router.get("/hold")
    async def hold(session: SessionDep) -> dict[str, int]:
        await session.execute(text("SELECT 1"))  # the pool's one connection, held until released
        holding.set()
        await release.wait()
        return {"held": 1}

    @router.get("/read")
    async def read(session: SessionDep) -> None:
        await session.execute(text("SELECT 1"))

    spec = _kit_spec(router, "pool")
    app = create_service_app(spec, migrated.model_copy(update={"db_pool_size": 1, "db_pool_timeout_seconds": 0.3}))
    token = create_token(sub="t", org="o", roles=["coordinator"], settings=migrated)
    headers = {"Authorization": f"Bearer {token}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://kit.test") as client:
            held = asyncio.create_task(client.get("/v1/hold", headers=headers))
            await asyncio.wait_for(holding.wait(), 10)
            waited = await client.get("/v1/read", headers=headers)
            release.set()
            first = await held
            after = await client.get("/v1/read", headers=headers)
    body = assert_problem(waited, 503)
    assert body["type"].endswith("service-unavailable") and waited.headers["retry-after"] == "2"
    assert first.status_code == 200 and after.status_code == 200


async def test_domain_errors_carry_their_status_headers_and_extensions(migrated: Settings) -> None:
    async with _kit_app(migrated) as client:
        response = await client.get("/v1/conflict")
        doc = (await client.get("/openapi.json")).json()
    body = assert_problem(response, 409)
    assert body["type"] == "urn:reliefhub:problem:conflict" and body["detail"] == "Taken." and body["hint"] == "retry"
    assert response.headers["x-why"] == "because"
    declared = doc["paths"]["/v1/conflict"]["get"]["responses"]
    assert {"401", "404", "409", "422"} <= declared.keys()
    assert "application/problem+json" in declared["409"]["content"]


async def test_a_transaction_that_lost_a_deadlock_is_run_again(migrated: Settings) -> None:
    """PostgreSQL aborts one of two deadlocked transactions (40P01) or a serialization failure (40001); the
    request's transaction is run again rather than answered with a 500, and a request that keeps colliding
    gets a 503 with Retry-After."""
    router = service_router(prefix="/v1")
    calls: list[str] = []

    @router.post("/collide-once")
    async def collide_once(session: SessionDep) -> dict[str, int]:
        calls.append("once")
        await session.execute(text("SELECT 1"))
        if calls.count("once") == 1:
            raise DBAPIError("UPDATE …", None, DeadlockDetectedError("deadlock detected"))
        return {"attempts": calls.count("once")}

    @router.post("/collide-always")
    async def collide_always(session: SessionDep) -> None:
        calls.append("always")
        raise DBAPIError("UPDATE …", None, SerializationError("could not serialize access"))

    spec = _kit_spec(router, "retries")
    app = create_service_app(spec, migrated)
    token = create_token(sub="t", org="o", roles=["coordinator"], settings=migrated)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://kit.test") as client:
            headers = {"Authorization": f"Bearer {token}"}
            once = await client.post("/v1/collide-once", headers=headers)
            always = await client.post("/v1/collide-always", headers=headers)
    assert once.status_code == 200 and once.json() == {"attempts": 2}
    body = assert_problem(always, 503)
    assert body["type"].endswith("concurrent-update") and always.headers["retry-after"] == "1"
    assert calls.count("always") == 3


async def test_a_value_postgresql_or_its_driver_refuses_is_422(migrated: Settings) -> None:
    """A value that reaches a query past validation and does not fit its column (SQLSTATE class 22 from the
    server, or a value asyncpg cannot encode) is the client's, not a 500; its key is released."""
    router = service_router(prefix="/v1")
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))  # year 0 in UTC

    @router.post("/values/{case}")
    async def refused(case: str, session: SessionDep) -> None:
        if case == "not-a-number":  # 22P02 invalid_text_representation, from the server
            await session.execute(text("SELECT CAST(CAST(:v AS text) AS integer)"), {"v": "abc"})
        elif case == "out-of-range":  # 22003 numeric_value_out_of_range, from the server
            await session.execute(text("SELECT CAST(CAST(:v AS text) AS smallint)"), {"v": "100000"})
        elif case == "unencodable":  # asyncpg cannot send it: DataError raised by the driver itself
            await session.execute(text("SELECT CAST(:v AS timestamptz)"), {"v": early})
        elif case == "raw-unencodable":  # the same through the raw asyncpg connection (intake, the outbox)
            await (await driver_connection(session)).execute("SELECT $1::timestamptz", early)
        elif case == "raw-out-of-range":
            await (await driver_connection(session)).execute("SELECT $1::text::smallint", "100000")

    spec = _kit_spec(router, "values", kit=services()["needs"].kit)  # a migrated schema: a real idempotency table
    app = create_service_app(spec, migrated)
    token = create_token(sub="t", org="o", roles=["coordinator"], settings=migrated)
    cases = ["not-a-number", "out-of-range", "unencodable", "raw-unencodable", "raw-out-of-range"]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://kit.test") as client:
            for case in cases:
                for key in (None, f"k-{case}"):
                    headers = {"Authorization": f"Bearer {token}", **({"Idempotency-Key": key} if key else {})}
                    response = await client.post(f"/v1/values/{case}", headers=headers)
                    body = assert_problem(response, 422, context=f"{case} {key}")
                    assert body["type"].endswith("invalid-value")
