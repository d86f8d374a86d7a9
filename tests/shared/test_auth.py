"""Bearer JWTs: what a token must hold, roles, and the caller identity that scopes idempotency keys."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest
from starlette.requests import Request

from shared.auth import Principal, Role, create_token, decode_token, principal_subject
from shared.errors import Unauthorized
from shared.settings import Settings
from tests.conftest import TokenFactory
from tests.shared.problem import assert_problem

SETTINGS = Settings(environment="test", jwt_secret="test-secret-" + "t" * 32)


def _raw(claims: dict[str, object], settings: Settings = SETTINGS) -> str:
    base: dict[str, object] = {
        "sub": "u-1",
        "org": "org-a",
        "roles": ["frontline"],
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "exp": int(time.time()) + 60,
    }
    return jwt.encode({k: v for k, v in {**base, **claims}.items() if v is not None}, settings.jwt_secret, "HS256")


def test_a_token_round_trips_to_its_principal() -> None:
    token = create_token(
        sub="u-1", org="org-a", roles=["working_group", Role.donor], group="pharmacy", settings=SETTINGS
    )
    p = decode_token(token, SETTINGS)
    assert (p.sub, p.org, p.roles, p.group) == ("u-1", "org-a", frozenset({Role.working_group, Role.donor}), "pharmacy")
    assert p.has(Role.donor) and not p.has(Role.admin)
    assert not p.is_staff and p.owns("org-a") and not p.owns("org-b") and not p.owns(None)
    assert decode_token(create_token(sub="s", org="o", roles=["coordinator"], settings=SETTINGS), SETTINGS).is_staff


def test_create_token_refuses_unknown_roles() -> None:
    with pytest.raises(ValueError):
        create_token(sub="u", org="o", roles=["superuser"], settings=SETTINGS)


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        ({"exp": int(time.time()) - 10}, "expired"),
        ({"exp": None}, "not valid"),
        ({"aud": "elsewhere"}, "not valid"),
        ({"iss": "elsewhere"}, "not valid"),
        ({"sub": None}, "not valid"),
        ({"roles": ["superuser"]}, "unknown role"),
        ({"org": None}, "organisation"),
        ({"org": ""}, "organisation"),
        ({"org": 42}, "organisation"),
    ],
)
def test_tokens_missing_or_with_wrong_claims_are_refused(claims: dict[str, object], detail: str) -> None:
    with pytest.raises(Unauthorized, match=detail) as info:
        decode_token(_raw(claims), SETTINGS)
    assert info.value.status == 401 and info.value.headers == {"WWW-Authenticate": 'Bearer realm="reliefhub"'}


def test_a_token_signed_with_another_secret_or_algorithm_is_refused() -> None:
    other = SETTINGS.model_copy(update={"jwt_secret": "x" * 40})
    with pytest.raises(Unauthorized):
        decode_token(_raw({}, other), SETTINGS)
    unsigned = jwt.encode(jwt.decode(_raw({}), options={"verify_signature": False}), None, algorithm="none")
    with pytest.raises(Unauthorized):
        decode_token(unsigned, SETTINGS)


def _request(authorization: str | None) -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization is not None else []
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""})


def test_principal_subject_identifies_the_caller_unambiguously() -> None:
    def subject(org: str, sub: str) -> str | None:
        token = create_token(sub=sub, org=org, roles=["frontline"], settings=SETTINGS)
        return principal_subject(_request(f"Bearer {token}"), SETTINGS)

    assert subject("org-a", "alice") == subject("org-a", "alice")
    ids = {subject("org-a", "alice"), subject("org-a", "bob"), subject("org-b", "alice")}
    ids |= {subject("a/b", "c"), subject("a", "b/c"), subject("a", "x" * 200)}
    assert len(ids) == 6 and None not in ids
    assert all(len(i) <= 300 for i in ids if i)  # fits idempotency_key.principal


def test_overlong_org_or_sub_claims_are_refused() -> None:
    """Claims longer than the columns that record them would fail later; refuse the token instead."""
    for org, sub in (("o" * 101, "s"), ("o", "s" * 201)):
        token = create_token(sub=sub, org=org, roles=["frontline"], settings=SETTINGS)
        with pytest.raises(Unauthorized, match="too long"):
            decode_token(token, SETTINGS)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic dTpw", "Bearer not-a-jwt"])
def test_principal_subject_is_none_without_a_valid_token(header: str | None) -> None:
    assert principal_subject(_request(header), SETTINGS) is None


def test_principal_is_a_value() -> None:
    a = Principal(sub="u", org="o", roles=frozenset({Role.admin}), claims={"jti": "1"})
    b = Principal(sub="u", org="o", roles=frozenset({Role.admin}), claims={"jti": "2"})
    assert a == b and a.is_staff


@pytest.mark.usefixtures("redis")
async def test_roles_gate_endpoints_and_admins_always_pass(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    site = {"name": "避难所", "kind": "shelter", "region_code": "510104"}
    assert_problem(await client.post("/v1/sites", headers=auth("donor"), json=site), 403)
    for roles in (("frontline",), ("coordinator",), ("admin",), ("donor", "frontline")):
        response = await client.post("/v1/sites", headers=auth(*roles), json=site)
        assert response.status_code == 201, (roles, response.text)
    # any valid token may read
    assert (await client.get("/v1/items", headers=auth("donor"))).status_code == 200
    assert_problem(await client.get("/v1/items"), 401)
