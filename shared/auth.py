"""Bearer JWT auth: who is calling (sub), for which organisation (org), in which roles.

A token's signature is checked by PyJWT; what its claims say is checked by `TokenClaims` before anything uses
them, so a correctly signed token with claims of the wrong shape is a 401, whoever signed it."""

from __future__ import annotations

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
from pydantic import AllowInfNan, BaseModel, ConfigDict, Strict, StringConstraints, ValidationError

from shared.errors import Forbidden, Unauthorized
from shared.settings import Settings, get_settings


class Role(StrEnum):
    coordinator = "coordinator"
    frontline = "frontline"
    donor = "donor"
    logistics = "logistics"
    working_group = "working_group"
    admin = "admin"


STAFF = frozenset({Role.coordinator, Role.admin})
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
    ttl_seconds: int | None = None,
    settings: Settings | None = None,
) -> str:
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
    return jwt.encode(claims, settings.jwt_secret, algorithm="HS256")


_VERIFIED: OrderedDict[tuple[str, str], Principal] = OrderedDict()
_VERIFIED_MAX = 4096


def decode_token(token: str, settings: Settings) -> Principal:
    """Verify a bearer token: its Principal, or Unauthorized. Verified tokens are remembered (until they
    expire) so a client sending the same token on every request pays for the signature check once."""
    key = (settings.jwt_secret, token)
    cached = _VERIFIED.get(key)
    if cached is not None:
        if cached.expires_at > time.time():
            return cached
        _VERIFIED.pop(key, None)
    principal = _verify(token, settings)
    _VERIFIED[key] = principal
    if len(_VERIFIED) > _VERIFIED_MAX:
        _VERIFIED.popitem(last=False)
    return principal


def _verify(token: str, settings: Settings) -> Principal:
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
    return principal_from_claims(raw)


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
    "description": "A ReliefHub JWT (`reliefhub token create`): `sub`, `org`, `roles`.",
}


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _principal_of(request: Request) -> Principal:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send `Authorization: Bearer <token>`.")
    principal = decode_token(token.strip(), settings_of(request))
    request.state.principal = principal
    return principal


# One dependency per route, not a chain: each level of FastAPI's dependency solving costs per request.
# The OpenAPI document declares the bearer scheme itself (shared.app).
async def current_principal(request: Request) -> Principal:
    return _principal_of(request)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: Role) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
    """A dependency that admits only tokens holding one of `roles` (admins always pass)."""
    allowed = frozenset(roles) | {Role.admin}

    async def dependency(request: Request) -> Principal:
        principal = _principal_of(request)
        if not principal.roles.intersection(allowed):
            raise Forbidden(f"This action needs one of the roles: {', '.join(sorted(allowed))}.")
        return principal

    return dependency


def principal_subject(request: Request, settings: Settings) -> str | None:
    """The caller's identity for scoping idempotency keys, or None without a valid token.

    A digest of (org, sub): unambiguous where "a/b" + "c" and "a" + "b/c" would collide, and of fixed length
    whatever the claims hold (the key table's column is bounded)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        p = decode_token(token.strip(), settings)
    except Unauthorized:
        return None
    return hashlib.sha256(json.dumps([p.org, p.sub], ensure_ascii=False).encode()).hexdigest()
