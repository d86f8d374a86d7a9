"""Bearer JWTs: what a token must hold, roles, and the caller identity that scopes idempotency keys."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import jwt
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from shared.auth import (
    Principal,
    Role,
    create_token,
    decode_token,
    in_region,
    may_act_in,
    principal_subject,
    require_in_region,
    require_national,
)
from shared.errors import OutOfRegion, Unauthorized
from shared.settings import Settings
from tests.helpers.auth import TokenFactory
from tests.helpers.problems import assert_problem

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
    unsigned = jwt.encode(jwt.decode(_raw({}), options={"verify_signature": False}), "", algorithm="none")
    with pytest.raises(Unauthorized):
        decode_token(unsigned, SETTINGS)


def _request(authorization: str | None) -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization is not None else []
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""})


async def test_principal_subject_identifies_the_caller_unambiguously() -> None:
    async def subject(org: str, sub: str) -> str | None:
        token = create_token(sub=sub, org=org, roles=["frontline"], settings=SETTINGS)
        return await principal_subject(_request(f"Bearer {token}"), SETTINGS)

    assert await subject("org-a", "alice") == await subject("org-a", "alice")
    ids = {await subject("org-a", "alice"), await subject("org-a", "bob"), await subject("org-b", "alice")}
    ids |= {await subject("a/b", "c"), await subject("a", "b/c"), await subject("a", "x" * 200)}
    assert len(ids) == 6 and None not in ids
    assert all(len(i) <= 300 for i in ids if i)  # fits idempotency_key.principal


def test_overlong_org_or_sub_claims_are_refused() -> None:
    """Claims longer than the columns that record them would fail later; refuse the token instead."""
    for org, sub in (("o" * 101, "s"), ("o", "s" * 201)):
        token = create_token(sub=sub, org=org, roles=["frontline"], settings=SETTINGS)
        with pytest.raises(Unauthorized, match="too long"):
            decode_token(token, SETTINGS)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic dTpw", "Bearer not-a-jwt"])
async def test_principal_subject_is_none_without_a_valid_token(header: str | None) -> None:
    assert await principal_subject(_request(header), SETTINGS) is None


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


# --- claims of the wrong shape in correctly signed tokens ------------------------------------------------------

ODD_CLAIMS: list[dict[str, object]] = [
    {"roles": 5},
    {"roles": {"admin": 1}},
    {"roles": "admin"},
    {"roles": [["admin"]]},
    {"roles": [None]},
    {"exp": "1796150000"},
    {"exp": True},
    {"exp": [4102444800]},  # a future date, but in a list (a fixed value: test ids must not change between workers)
    {"nbf": "0"},
    {"iat": False},
    {"iat": {"at": 1}},
    {"sub": ""},
    {"sub": 7},
    {"org": ["org-a"]},
    {"group": 5},
    {"group": ""},
    {"regions": "31"},
    {"regions": ["3"]},
    {"regions": ["3101150"]},
    {"regions": ["３１"]},  # fullwidth digits match \d, not a region code
    {"regions": [31]},
]


@pytest.mark.parametrize("claims", ODD_CLAIMS, ids=[repr(c) for c in ODD_CLAIMS])
def test_claims_of_the_wrong_type_are_refused_every_time(claims: dict[str, object]) -> None:
    token = _raw(claims)
    for _ in range(3):  # the second and later verifications go through the cache of verified tokens
        with pytest.raises(Unauthorized) as info:
            decode_token(token, SETTINGS)
        assert info.value.status == 401


def test_numeric_dates_may_be_floats_and_extra_claims_are_kept() -> None:
    now = time.time()
    p = decode_token(_raw({"exp": now + 60.5, "nbf": now - 1.5, "iat": int(now), "tenant": {"x": [1]}}), SETTINGS)
    assert p.claims["tenant"] == {"x": [1]} and p.expires_at == pytest.approx(now + 60.5)
    assert p.regions is None


def test_region_prefixes_are_exposed_on_the_principal() -> None:
    p = decode_token(_raw({"regions": ["31", "510104"]}), SETTINGS)
    assert p.regions == ("31", "510104")


def _principal(*roles: Role, regions: tuple[str, ...] | None) -> Principal:
    return Principal(sub="u", org="hub", roles=frozenset(roles), regions=regions)


def test_a_hub_coordinator_acts_inside_its_regions_only() -> None:
    hub = _principal(Role.coordinator, regions=("4101", "31"))
    for code in ("410102", "4101", "310101", "31"):
        assert in_region(hub, code) and may_act_in(hub, code)
        require_in_region(hub, code)
    outside: tuple[str | None, ...] = ("410201", "41", "3", "320101", None)  # a wider prefix is not inside
    for elsewhere in outside:
        assert not may_act_in(hub, elsewhere)
        with pytest.raises(OutOfRegion) as caught:
            require_in_region(hub, elsewhere, what="The need")
        assert caught.value.status == 403
        assert caught.value.extra == {"region_code": elsewhere, "regions": ["4101", "31"]}
        assert caught.value.detail.startswith("The need is in")
    with pytest.raises(OutOfRegion, match="national coordinator"):
        require_national(hub, what="The scoring policy")
    nowhere = _principal(Role.admin, regions=())
    assert not may_act_in(nowhere, "310101")


def test_regions_bound_staff_powers_only_and_no_claim_is_national() -> None:
    national = _principal(Role.coordinator, regions=None)
    require_in_region(national, "650102")
    require_in_region(national, None)
    require_national(national, what="The scoring policy")
    frontline = _principal(Role.frontline, Role.donor, regions=("4101",))  # acts by ownership, not by region
    assert not in_region(frontline, "310101") and may_act_in(frontline, "310101")
    require_in_region(frontline, "310101")
    require_national(frontline, what="The scoring policy")


def test_create_token_carries_regions() -> None:
    token = create_token(sub="u", org="hub", roles=["coordinator"], regions=["4101"], settings=SETTINGS)
    assert decode_token(token, SETTINGS).regions == ("4101",)
    national = create_token(sub="u", org="hub", roles=["coordinator"], settings=SETTINGS)
    assert "regions" not in jwt.decode(national, options={"verify_signature": False})


def test_a_cached_token_still_expires() -> None:
    token = _raw({"exp": time.time() + 1})
    assert decode_token(token, SETTINGS).sub == "u-1"
    time.sleep(1.1)
    with pytest.raises(Unauthorized, match="expired"):
        decode_token(token, SETTINGS)


_NOW = int(time.time())
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()  # NaN and ±Infinity included: PyJWT writes and reads them although JSON has no such numbers
    | st.text(max_size=30)
    | st.from_regex(r"\A[0-9]{1,12}\Z")
    | st.sampled_from([r.value for r in Role])
)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "admin", "exp"]), inner),
    max_leaves=6,
)
_valid: dict[str, st.SearchStrategy[Any]] = {
    "sub": st.text(min_size=1, max_size=200),
    "org": st.text(min_size=1, max_size=100),
    "roles": st.lists(st.sampled_from([r.value for r in Role]), max_size=6),
    "group": st.text(min_size=1, max_size=100),
    "regions": st.lists(st.from_regex(r"\A[0-9]{2,6}\Z"), max_size=3),
    "exp": st.integers(_NOW + 3600, 2**62) | st.floats(_NOW + 3600.0, 1e300),
    "nbf": st.integers(0, _NOW - 3600) | st.floats(0.0, _NOW - 3600.0),
    "iat": st.integers(0, _NOW - 3600),
    "iss": st.just(SETTINGS.jwt_issuer),
    "aud": st.just(SETTINGS.jwt_audience) | st.just([SETTINGS.jwt_audience, "other"]),
    "jti": st.text(max_size=32),
}


@st.composite
def claim_sets(draw: st.DrawFn) -> dict[str, Any]:
    """A few claims (none to four) missing or any JSON value, the others valid; plus unknown extra claims."""
    odd = draw(st.sets(st.sampled_from(sorted(_valid)), max_size=4))
    claims: dict[str, Any] = {}
    for name, valid in _valid.items():
        if name not in odd:
            claims[name] = draw(valid)
        elif draw(st.booleans()):
            claims[name] = draw(_json)
    claims.update(draw(st.dictionaries(st.sampled_from(["scope", "tenant", "kid", ""]), _json, max_size=2)))
    return claims


def _outcome(token: str) -> tuple[str, object]:
    try:
        p = decode_token(token, SETTINGS)
    except Unauthorized as exc:
        return "401", exc.detail
    assert isinstance(p, Principal)
    return "principal", (p.sub, p.org, p.roles, p.group, p.regions, p.expires_at)


@settings(max_examples=500, deadline=None)
@given(claim_sets())
def test_any_claims_give_a_principal_or_401_and_the_same_one_again(claims: dict[str, Any]) -> None:
    # Signed through the JWS layer: PyJWT's own encode refuses some claim types a hand-made token may hold.
    token = jwt.PyJWS().encode(json.dumps(claims).encode(), SETTINGS.jwt_secret, algorithm="HS256")
    first = _outcome(token)  # any other exception fails the test
    assert _outcome(token) == first
    event(first[0])
    if first[0] == "principal":
        fields: Any = first[1]
        sub, org, roles, *_ = fields
        assert isinstance(sub, str) and sub and isinstance(org, str) and org
        assert all(isinstance(r, Role) for r in roles)


@pytest.mark.usefixtures("redis")
async def test_odd_claims_are_401_through_the_api_repeatedly(client: httpx.AsyncClient, migrated: Settings) -> None:
    for claims in ({"roles": 5}, {"exp": str(int(time.time()) + 3600)}, {"roles": {"admin": 1}}):
        token = _raw({"roles": ["coordinator"], **claims}, migrated)
        for attempt in range(3):
            response = await client.get("/v1/sites", headers={"Authorization": f"Bearer {token}"})
            assert_problem(response, 401, context=f"{claims} #{attempt}")
            response = await client.post(
                "/v1/sites", headers={"Authorization": f"Bearer {token}"}, json={"name": "x", "kind": "shelter"}
            )
            assert_problem(response, 401, context=f"POST {claims} #{attempt}")
