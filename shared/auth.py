"""Bearer JWT auth: who is calling (sub), for which organisation (org), in which roles."""

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


@dataclass(frozen=True, slots=True)
class Principal:
    sub: str
    org: str
    roles: frozenset[Role]
    group: str | None = None  # the working group a working_group token speaks for
    claims: dict[str, Any] = field(default_factory=dict, compare=False)

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
    """Verify a bearer token. Verified tokens are remembered (until they expire) so a client sending the same
    token on every request pays for the signature check once."""
    key = (settings.jwt_secret, token)
    cached = _VERIFIED.get(key)
    if cached is not None:
        if cached.claims["exp"] > time.time():
            return cached
        _VERIFIED.pop(key, None)
    principal = _verify(token, settings)
    _VERIFIED[key] = principal
    if len(_VERIFIED) > _VERIFIED_MAX:
        _VERIFIED.popitem(last=False)
    return principal


def _verify(token: str, settings: Settings) -> Principal:
    try:
        claims = jwt.decode(
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
    try:
        roles = frozenset(Role(r) for r in claims.get("roles", []))
    except ValueError as exc:
        raise Unauthorized("The token names an unknown role.") from exc
    org = claims.get("org")
    if not isinstance(org, str) or not org or not isinstance(claims["sub"], str):
        raise Unauthorized("The token has no organisation.")
    if len(org) > MAX_ORG_LENGTH or len(claims["sub"]) > MAX_SUB_LENGTH:
        raise Unauthorized(f"The token's org (≤ {MAX_ORG_LENGTH}) or sub (≤ {MAX_SUB_LENGTH}) is too long.")
    group = claims.get("group")
    return Principal(
        sub=claims["sub"], org=org, roles=roles, group=group if isinstance(group, str) else None, claims=claims
    )


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
