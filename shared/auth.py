"""Bearer JWT auth: who is calling (sub), for which organisation (org), in which roles.

A token's signature is checked by PyJWT; what its claims say is checked by `TokenClaims` before anything uses
them, so a correctly signed token with claims of the wrong shape is a 401, whoever signed it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from jwt import PyJWK
from pydantic import AllowInfNan, BaseModel, ConfigDict, Strict, StringConstraints, ValidationError

from shared import oidc
from shared.errors import Forbidden, OutOfRegion, Unauthorized
from shared.settings import Settings, get_settings


class Role(StrEnum):
    coordinator = "coordinator"
    frontline = "frontline"
    donor = "donor"
    logistics = "logistics"
    working_group = "working_group"
    admin = "admin"


STAFF = frozenset({Role.coordinator, Role.admin})
# The organisation of the services' own tokens (`shared.http.ServiceClient`).
SERVICE_ORG = "reliefhub"
MAX_ORG_LENGTH = 100
MAX_SUB_LENGTH = 200
MAX_GROUP_LENGTH = 100

# Strict: a claim of another JSON type is refused, never coerced ("5" is not a number, 1 is not a string).
Organisation = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=MAX_ORG_LENGTH)]
Subject = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=MAX_SUB_LENGTH)]
GroupName = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=MAX_GROUP_LENGTH)]
# A prefix of the administrative division codes (GB/T 2260) of the sites a token may act for; [0-9], not \d,
# which would also match other scripts' digits.
RegionPrefix = Annotated[str, Strict(), StringConstraints(pattern=r"^[0-9]{2,6}$")]
# NumericDate (RFC 7519 §2): a JSON number; Strict refuses booleans and strings of digits.
NumericDate = Annotated[float, Strict(), AllowInfNan(False)]


class TokenClaims(BaseModel):
    """The claims a ReliefHub token must carry, whoever issued it. Unknown extra claims are allowed."""

    model_config = ConfigDict(extra="allow", frozen=True)

    sub: Subject
    org: Organisation
    roles: list[Role] = []
    group: GroupName | None = None  # the working group a working_group token speaks for
    regions: list[RegionPrefix] | None = None
    exp: NumericDate
    nbf: NumericDate | None = None
    iat: NumericDate | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    sub: str
    org: str
    roles: frozenset[Role]
    group: str | None = None  # the working group a working_group token speaks for
    claims: dict[str, Any] = field(default_factory=dict, compare=False)
    regions: tuple[str, ...] | None = None  # region-code prefixes the token is limited to (None: not limited)
    expires_at: float = field(default=float("inf"), compare=False)

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def is_staff(self) -> bool:
        return self.has(*STAFF)

    def owns(self, org: str | None) -> bool:
        return org is not None and org == self.org

    @property
    def identity(self) -> tuple[str, str]:
        """Who this is: a `sub` names someone only within its organisation, so (org, sub) together."""
        return (self.org, self.sub)


def create_token(
    *,
    sub: str,
    org: str,
    roles: Iterable[Role | str],
    group: str | None = None,
    regions: Iterable[str] | None = None,
    ttl_seconds: int | None = None,
    settings: Settings | None = None,
) -> str:
    """An HS256 token signed with the deployment's secret (development, the CLI, the services' own calls)."""
    settings = settings or get_settings()
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "org": org,
        "roles": sorted({Role(r).value for r in roles}),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + (ttl_seconds if ttl_seconds is not None else settings.token_ttl_seconds),
        "jti": uuid.uuid4().hex,
    }
    if group:
        claims["group"] = group
    if regions is not None:
        claims["regions"] = list(regions)
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


_VERIFIED: OrderedDict[tuple[tuple[Any, ...], str], Principal] = OrderedDict()
_VERIFIED_MAX = 4096
_ROLE_NAMES = frozenset(r.value for r in Role)


def _verification(settings: Settings) -> tuple[Any, ...]:
    """What a verified token's principal depends on besides the token (a token verified under other settings is
    verified again)."""
    return (
        settings.jwt_secret,
        settings.jwt_issuer,
        settings.jwt_audience,
        settings.hs256_accepted,
        settings.oidc_issuer,
        settings.oidc_audience,
        settings.oidc_jwks_url,
        tuple(settings.oidc_algorithms),
        settings.oidc_claim_org,
        settings.oidc_claim_roles,
        settings.oidc_claim_regions,
        settings.oidc_claim_group,
    )


def _remembered(key: tuple[tuple[Any, ...], str]) -> Principal | None:
    cached = _VERIFIED.get(key)
    if cached is not None:
        if cached.expires_at > time.time():
            return cached
        _VERIFIED.pop(key, None)
    return None


def _remember(key: tuple[tuple[Any, ...], str], principal: Principal) -> Principal:
    _VERIFIED[key] = principal
    if len(_VERIFIED) > _VERIFIED_MAX:
        _VERIFIED.popitem(last=False)
    return principal


def _header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise Unauthorized("The token is not valid.") from exc


def decode_token(token: str, settings: Settings) -> Principal:
    """Verify a bearer token: its Principal, or Unauthorized. Verified tokens are remembered (until they
    expire) so a client sending the same token on every request pays for the signature check once.

    Blocking when an identity provider's key set must be fetched: request handlers use `authenticate`."""
    key = (_verification(settings), token)
    cached = _remembered(key)
    if cached is not None:
        return cached
    header = _header(token)
    provider_key = oidc.signing_key(token, settings) if oidc.is_provider_token(header, settings) else None
    return _remember(key, _verify(token, header, provider_key, settings))


async def authenticate(token: str, settings: Settings) -> Principal:
    """`decode_token` for request handlers: an identity provider's key is looked up in a worker thread, since
    PyJWKClient fetches the key set with blocking I/O when its cache lacks the token's key."""
    key = (_verification(settings), token)
    cached = _remembered(key)
    if cached is not None:
        return cached
    header = _header(token)
    provider_key = None
    if oidc.is_provider_token(header, settings):
        provider_key = await asyncio.to_thread(oidc.signing_key, token, settings)
    return _remember(key, _verify(token, header, provider_key, settings))


def _verify(token: str, header: dict[str, Any], provider_key: PyJWK | None, settings: Settings) -> Principal:
    if provider_key is not None:
        claims = oidc.mapped_claims(
            oidc.verified_claims(token, provider_key, settings), settings, known_roles=_ROLE_NAMES
        )
        if claims["org"] is None:
            raise Unauthorized(f"The token has no organisation (claim `{settings.oidc_claim_org}`).")
        return principal_from_claims(claims)
    algorithm = header.get("alg")
    if algorithm != "HS256":
        accepted = ["HS256", *(settings.oidc_algorithms if settings.oidc_enabled else [])]
        raise Unauthorized(f"Tokens signed with {algorithm!r} are not accepted (accepted: {', '.join(accepted)}).")
    try:
        raw = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=["HS256"],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["sub", "exp", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The token has expired.") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("The token is not valid.") from exc
    principal = principal_from_claims(raw)
    if not settings.hs256_accepted and not is_service(principal):
        raise Unauthorized(
            "This deployment accepts its identity provider's tokens only: HS256 tokens are refused "
            "(RELIEFHUB_ALLOW_HS256 enables them)."
        )
    return principal


def is_service(principal: Principal) -> bool:
    """A ReliefHub service calling another (`shared.http.ServiceClient`'s token)."""
    return principal.org == SERVICE_ORG and principal.sub.startswith("service:")


def principal_from_claims(raw: dict[str, Any]) -> Principal:
    """The Principal a verified token's claims describe, or Unauthorized when they do not fit TokenClaims."""
    try:
        claims = TokenClaims.model_validate(raw)
    except ValidationError as exc:
        raise Unauthorized(_claims_problem(exc)) from None
    return Principal(
        sub=claims.sub,
        org=claims.org,
        roles=frozenset(claims.roles),
        group=claims.group,
        claims=raw,
        regions=tuple(claims.regions) if claims.regions is not None else None,
        expires_at=claims.exp,
    )


def _claims_problem(exc: ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    claim = str(error["loc"][0]) if error["loc"] else "claims"
    if claim == "roles" and error["type"] == "enum":
        return f"The token names an unknown role (known: {', '.join(Role)})."
    if error["type"] == "string_too_long":
        return f"The token's {claim} is too long (at most {error['ctx']['max_length']} characters)."
    if claim == "org":
        return "The token has no organisation (`org`: a non-empty string)."
    return f"The token's `{claim}` claim is not valid: {error['msg']}."


BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": (
        "A JWT with `sub`, `org`, `roles` and optionally `regions` and `group`: an access token of the identity "
        "provider (RS256/ES256), or an HS256 token (`reliefhub token create`) where the deployment accepts them."
    ),
}


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _principal_of(request: Request) -> Principal:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send `Authorization: Bearer <token>`.")
    principal = await authenticate(token.strip(), settings_of(request))
    request.state.principal = principal
    return principal


# One dependency per route, not a chain: each level of FastAPI's dependency solving costs per request.
# The OpenAPI document declares the bearer scheme itself (shared.app).
async def current_principal(request: Request) -> Principal:
    return await _principal_of(request)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: Role) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
    """A dependency that admits only tokens holding one of `roles` (admins always pass)."""
    allowed = frozenset(roles) | {Role.admin}

    async def dependency(request: Request) -> Principal:
        principal = await _principal_of(request)
        if not principal.roles.intersection(allowed):
            raise Forbidden(f"This action needs one of the roles: {', '.join(sorted(allowed))}.")
        return principal

    return dependency


# --- hubs: a coordinator's regions ------------------------------------------------------------------------------


def in_region(principal: Principal, region_code: str | None) -> bool:
    """Whether the token's `regions` cover `region_code` (a token without `regions` covers every region; nothing
    covers an unknown region but such a token)."""
    if principal.regions is None:
        return True
    return region_code is not None and region_code.startswith(principal.regions)


def may_act_in(principal: Principal, region_code: str | None) -> bool:
    """Whether the principal's staff powers reach `region_code`: a hub's coordinator (a token with `regions`)
    acts only inside its regions; other roles act by ownership, which regions do not change."""
    return not principal.is_staff or in_region(principal, region_code)


def require_in_region(principal: Principal, region_code: str | None, *, what: str = "This") -> None:
    """Refuse (403 out-of-region) a coordinator acting outside the regions its token names. Called wherever a
    coordinator verifies, accepts, rejects, runs or reports on something that lies in a region."""
    if may_act_in(principal, region_code):
        return
    assert principal.regions is not None
    mine = ", ".join(principal.regions) or "none"
    where = f"in region {region_code}" if region_code else "in no region"
    raise OutOfRegion(
        f"{what} is {where}, outside the regions of your token ({mine}).",
        extra={"region_code": region_code, "regions": list(principal.regions)},
    )


def require_national(principal: Principal, *, what: str) -> None:
    """Refuse (403 out-of-region) a hub's coordinator changing what holds for every region (`what`)."""
    if principal.is_staff and principal.regions is not None:
        raise OutOfRegion(
            f"{what} holds for every region: it needs a national coordinator (a token without `regions`).",
            extra={"region_code": None, "regions": list(principal.regions)},
        )


async def principal_subject(request: Request, settings: Settings) -> str | None:
    """The caller's identity for scoping idempotency keys, or None without a valid token.

    A digest of (org, sub): unambiguous where "a/b" + "c" and "a" + "b/c" would collide, and of fixed length
    whatever the claims hold (the key table's column is bounded)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        p = await authenticate(token.strip(), settings)
    except Unauthorized:
        return None
    return hashlib.sha256(json.dumps([p.org, p.sub], ensure_ascii=False).encode()).hexdigest()
