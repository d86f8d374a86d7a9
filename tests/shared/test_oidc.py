"""Real identity: access tokens of an OpenID Connect provider, checked against its JWKS served over HTTP by a local
server with keys generated here (tests/shared/identity_provider.py) — RS256 and ES256, the key set cached and
fetched again for a rotated key, Keycloak's claim shapes, and every way a token is refused (401 problems); HS256
tokens beside them, refused where the deployment says so, except the services' own."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from jwt.utils import base64url_encode
from pydantic import ValidationError

from shared.auth import Role, create_token, decode_token
from shared.errors import Unauthorized
from shared.settings import Settings
from tests.helpers.auth import TokenFactory
from tests.helpers.identity_provider import IdentityProvider, SigningKey, serve_identity_provider
from tests.helpers.needs import create_need, create_site, site_body
from tests.helpers.problems import assert_problem

SECRET = "test-secret-" + "t" * 32
KEYCLOAK_CLAIMS = {"oidc_claim_roles": "realm_access.roles", "oidc_claim_org": "org", "oidc_claim_regions": "regions"}


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    with serve_identity_provider(SigningKey.generate("RS256", "rsa-1"), SigningKey.generate("ES256", "ec-1")) as p:
        yield p


def _configure(settings: Settings, monkeypatch: pytest.MonkeyPatch, idp: IdentityProvider, **extra: Any) -> None:
    values = {
        "oidc_issuer": idp.issuer,
        "oidc_audience": idp.audience,
        "oidc_jwks_url": idp.jwks_url,
        **extra,
    }
    for name, value in values.items():
        monkeypatch.setattr(settings, name, value)


@pytest.fixture
def oidc(migrated: Settings, monkeypatch: pytest.MonkeyPatch, idp: IdentityProvider) -> IdentityProvider:
    """The services trust the local provider (a key id it does not hold is fetched for at once)."""
    _configure(migrated, monkeypatch, idp, oidc_jwks_cooldown_seconds=0.0)
    return idp


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_rs256_and_es256_access_tokens_act_for_their_organisation(
    client: httpx.AsyncClient, oidc: IdentityProvider
) -> None:
    rsa_key, ec_key = oidc.published
    for key, org in ((rsa_key, "org-rsa"), (ec_key, "org-ec")):
        site = await create_site(client, bearer(oidc.token(key, org=org, sub=f"user-{org}")))
        assert site["org"] == org
    for _ in range(3):  # verified once, then remembered; the key set is fetched once for both keys
        r = await client.get("/v1/sites?org=org-ec", headers=bearer(oidc.token(ec_key, org="org-ec")))
        assert r.status_code == 200 and [s["org"] for s in r.json()["items"]] == ["org-ec"]
    assert oidc.fetches == 1


async def test_keycloak_tokens_scope_a_hub_coordinator_to_its_regions(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    migrated: Settings,
    monkeypatch: pytest.MonkeyPatch,
    idp: IdentityProvider,
) -> None:
    """Realm roles under `realm_access.roles` (with Keycloak's own roles beside ReliefHub's), the regions from a
    user attribute that is not multivalued (one string): a coordinator of Zhengzhou's hub (4101) verifies needs
    in Zhengzhou, and gets a 403 for one in Shanghai (3101) that changes nothing."""
    _configure(migrated, monkeypatch, idp, **KEYCLOAK_CLAIMS)
    frontline = auth("frontline", org="org-sites")
    shanghai = await create_site(client, frontline, region_code="310101")
    zhengzhou = await create_site(client, frontline, region_code="410102", lat=34.75, lon=113.62)
    need_sh = await create_need(client, frontline, shanghai["id"])
    need_zz = await create_need(client, frontline, zhengzhou["id"])
    token = idp.token(
        org="hub-zhengzhou",
        roles=None,
        realm_access={"roles": ["offline_access", "coordinator", "default-roles-reliefhub", "uma_authorization"]},
        regions="4101",
        preferred_username="zhang.wei",
    )
    verdict = {"verdict": "verified", "reason": "电话核实"}
    r = await client.post(f"/v1/needs/{need_sh['id']}/verify", headers=bearer(token), json=verdict)
    problem = assert_problem(r, 403)
    assert problem["type"].endswith("out-of-region") and problem["regions"] == ["4101"]
    assert "310101" in problem["detail"]
    r = await client.get(f"/v1/needs/{need_sh['id']}", headers=frontline)
    assert r.json()["verification"] == "unverified" and r.json()["version"] == need_sh["version"]

    r = await client.post(f"/v1/needs/{need_zz['id']}/verify", headers=bearer(token), json=verdict)
    assert r.status_code == 200, r.text
    assert r.json()["verification"] == "verified"


async def test_a_rotated_key_is_fetched_and_accepted_without_a_restart(
    client: httpx.AsyncClient, oidc: IdentityProvider
) -> None:
    old = oidc.published[0]
    r = await client.get("/v1/sites", headers=bearer(oidc.token(old)))
    assert r.status_code == 200 and oidc.fetches == 1
    new = SigningKey.generate("RS256", "rsa-2")
    oidc.publish(new)  # the provider rotates: the old key is withdrawn, the new one signs from now on
    r = await client.get("/v1/sites", headers=bearer(oidc.token(new)))
    assert r.status_code == 200, r.text
    assert oidc.fetches == 2
    r = await client.get("/v1/sites", headers=bearer(oidc.token(old)))  # a fresh token of the withdrawn key
    assert "'rsa-1' is not among the identity provider's keys" in assert_problem(r, 401)["detail"]


async def test_unknown_key_ids_do_not_hammer_the_provider(
    client: httpx.AsyncClient, migrated: Settings, monkeypatch: pytest.MonkeyPatch, idp: IdentityProvider
) -> None:
    """With the default cooldown, a flood of tokens naming made-up key ids costs the provider no extra fetch."""
    _configure(migrated, monkeypatch, idp)
    assert migrated.oidc_jwks_cooldown_seconds == 30
    assert (await client.get("/v1/sites", headers=bearer(idp.token()))).status_code == 200
    for i in range(5):
        r = await client.get("/v1/sites", headers=bearer(idp.token(kid=f"made-up-{i}")))
        assert_problem(r, 401)
    assert idp.fetches == 1


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _hs256_with_the_public_key(idp: IdentityProvider) -> str:
    """The algorithm-confusion attack: HMAC keyed with the provider's public key, which anyone can fetch."""
    public = idp.published[0].private.public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": idp.published[0].kid}
    signing_input = base64url_encode(_json(header)) + b"." + base64url_encode(_json(idp.claims()))
    signature = hmac.new(pem, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64url_encode(signature)).decode()


def _unsigned(idp: IdentityProvider) -> str:
    header = base64url_encode(_json({"alg": "none", "kid": idp.published[0].kid}))
    return (header + b"." + base64url_encode(_json(idp.claims())) + b".").decode()


def _signed_by_a_stranger(idp: IdentityProvider) -> str:
    """A published key id, and a signature by a key the provider never had."""
    stranger = SigningKey.generate("RS256", idp.published[0].kid)
    return jwt.encode(idp.claims(), stranger.private, algorithm="RS256", headers={"kid": stranger.kid})


REFUSED: dict[str, tuple[Any, str]] = {
    "wrong audience": (lambda p: p.token(aud="another-client"), "not meant for this service"),
    "wrong issuer": (lambda p: p.token(iss="https://idp.example.org/realms/other"), "not issued by the identity"),
    "expired": (lambda p: p.token(exp=int(time.time()) - 120), "expired"),
    "unknown kid": (lambda p: p.token(kid="retired-2019"), "'retired-2019' is not among"),
    "no kid": (lambda p: jwt.encode(p.claims(), p.published[0].private, algorithm="RS256"), "names no signing key"),
    "no audience": (lambda p: p.token(aud=None), "not valid"),
    "no subject": (lambda p: p.token(sub=None), "not valid"),
    "another key's signature": (_signed_by_a_stranger, "not valid"),
    "HS256 keyed with the public key": (_hs256_with_the_public_key, "not valid"),
    "alg none": (_unsigned, "'none' are not accepted"),
    "no organisation": (lambda p: p.token(org=None), "no organisation"),
    "regions of the wrong shape": (lambda p: p.token(regions=[31]), "regions"),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_refused_tokens_are_401_problems_that_change_nothing(
    client: httpx.AsyncClient, oidc: IdentityProvider, case: str
) -> None:
    make, detail = REFUSED[case]
    r = await client.post("/v1/sites", headers=bearer(make(oidc)), json=site_body(name=f"refused: {case}"))
    problem = assert_problem(r, 401)
    assert detail in problem["detail"], problem
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = await client.get("/v1/sites", headers=bearer(oidc.token()))
    assert r.status_code == 200 and r.json()["items"] == []


async def test_an_unreachable_provider_is_a_503_problem(
    client: httpx.AsyncClient, migrated: Settings, monkeypatch: pytest.MonkeyPatch, idp: IdentityProvider
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _configure(migrated, monkeypatch, idp, oidc_jwks_url=f"http://127.0.0.1:{port}/certs")
    r = await client.get("/v1/sites", headers=bearer(idp.token()))
    problem = assert_problem(r, 503)
    assert problem["type"].endswith("identity-provider-unavailable") and r.headers["retry-after"] == "5"


async def test_hs256_tokens_are_refused_where_disabled_but_the_services_own_pass(
    client: httpx.AsyncClient,
    auth: TokenFactory,
    oidc: IdentityProvider,
    migrated: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (await client.get("/v1/sites", headers=auth("coordinator"))).status_code == 200
    monkeypatch.setattr(migrated, "allow_hs256", False)
    r = await client.get("/v1/sites", headers=auth("coordinator"))
    assert "HS256 tokens are refused" in assert_problem(r, 401)["detail"]
    service = create_token(sub="service:matching", org="reliefhub", roles=[Role.admin], settings=migrated)
    assert (await client.get("/v1/sites", headers=bearer(service))).status_code == 200
    assert (await client.get("/v1/sites", headers=bearer(oidc.token()))).status_code == 200


# --- settings and claims, without the API -----------------------------------------------------------------------


def test_production_refuses_hs256_once_a_provider_is_set_unless_enabled(idp: IdentityProvider) -> None:
    provider: dict[str, Any] = {"oidc_issuer": idp.issuer, "oidc_audience": idp.audience, "oidc_jwks_url": idp.jwks_url}
    assert not Settings(environment="production", jwt_secret=SECRET, **provider).hs256_accepted
    assert Settings(environment="production", jwt_secret=SECRET, allow_hs256=True, **provider).hs256_accepted
    assert Settings(environment="production", jwt_secret=SECRET).hs256_accepted  # no provider: its only identity
    assert not Settings(environment="production", jwt_secret=SECRET, allow_hs256=False).hs256_accepted
    assert Settings(environment="test", jwt_secret=SECRET, **provider).hs256_accepted
    production = Settings(environment="production", jwt_secret=SECRET, **provider)
    with pytest.raises(Unauthorized, match="HS256 tokens are refused"):
        decode_token(create_token(sub="alice", org="hub", roles=["coordinator"], settings=production), production)


@pytest.mark.parametrize(
    "values",
    [
        {"oidc_issuer": "https://sso.example.org/realms/reliefhub"},
        {"oidc_issuer": "https://sso.example.org/realms/reliefhub", "oidc_audience": "reliefhub-api"},
        {"oidc_issuer": "https://a", "oidc_audience": "b", "oidc_jwks_url": "file:///etc/passwd"},
        {"oidc_issuer": "https://a", "oidc_audience": "b", "oidc_jwks_url": "https://a/certs", "oidc_algorithms": []},
        {"oidc_claim_roles": " "},
        {"oidc_algorithms": ["HS256"]},
    ],
)
def test_an_incomplete_or_unsafe_provider_configuration_is_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Settings(environment="test", jwt_secret=SECRET, **values)


def _provider_settings(idp: IdentityProvider, **extra: Any) -> Settings:
    return Settings(
        environment="test",
        jwt_secret=SECRET,
        oidc_issuer=idp.issuer,
        oidc_audience=idp.audience,
        oidc_jwks_url=idp.jwks_url,
        **extra,
    )


def test_claim_names_may_be_paths_or_namespaced(idp: IdentityProvider) -> None:
    settings = _provider_settings(
        idp,
        oidc_claim_org="https://reliefhub.org/org",
        oidc_claim_roles="resource_access.reliefhub-api.roles",
        oidc_claim_regions="attributes.hub_regions",
        oidc_claim_group="attributes.working_group",
    )
    claims: dict[str, Any] = {
        "org": None,
        "roles": None,
        "https://reliefhub.org/org": "wg-devices",
        "resource_access": {"reliefhub-api": {"roles": ["working_group", "manage-account"]}},
        "attributes": {"hub_regions": ["31", "3201"], "working_group": ["medical_device"]},
    }
    token = idp.token(**claims)
    p = decode_token(token, settings)
    assert (p.org, p.roles, p.group) == ("wg-devices", frozenset({Role.working_group}), "medical_device")
    assert p.regions == ("31", "3201")
    assert p.claims["attributes"]["hub_regions"] == ["31", "3201"]


def test_a_token_without_regions_is_national_and_roles_may_come_as_one_string(idp: IdentityProvider) -> None:
    settings = _provider_settings(idp)
    p = decode_token(idp.token(roles="coordinator logistics"), settings)
    assert p.roles == {Role.coordinator, Role.logistics} and p.regions is None
    p = decode_token(idp.token(regions="4101, 4102"), settings)
    assert p.regions == ("4101", "4102")
    p = decode_token(idp.token(regions=[]), settings)
    assert p.regions == ()  # a claim naming no region: a coordinator who acts nowhere
    with pytest.raises(Unauthorized, match="roles"):
        decode_token(idp.token(roles={"coordinator": True}), settings)
