"""Access tokens from an OpenID Connect identity provider (Keycloak, Authentik, Auth0…): RS256/ES256 signatures
checked against the provider's JWKS (PyJWT's `PyJWKClient`: the key set cached, fetched again for a key id it
does not hold), issuer, audience and lifetime checked, and the provider's claims mapped onto ReliefHub's.

`signing_key` does network I/O (a blocking urllib request inside PyJWKClient): request handlers call it in a
worker thread (`shared.auth.authenticate`)."""

from __future__ import annotations

import re
import threading
from collections.abc import Collection
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient

from shared.errors import IdentityProviderUnavailable, Unauthorized
from shared.settings import Settings

_CLIENTS: dict[tuple[str, float, float, float], PyJWKClient] = {}
_CLIENTS_LOCK = threading.Lock()
_LIST_SEPARATORS = re.compile(r"[\s,]+")


def jwks_client(settings: Settings) -> PyJWKClient:
    """One client per JWKS URL (and cache policy) per process, so its cache serves every request."""
    assert settings.oidc_jwks_url is not None
    key = (
        settings.oidc_jwks_url,
        settings.oidc_jwks_cache_seconds,
        settings.oidc_jwks_cooldown_seconds,
        settings.oidc_jwks_timeout_seconds,
    )
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = PyJWKClient(
                settings.oidc_jwks_url,
                cache_jwk_set=True,
                lifespan=settings.oidc_jwks_cache_seconds,
                cooldown_duration=settings.oidc_jwks_cooldown_seconds,
                timeout=settings.oidc_jwks_timeout_seconds,
                headers={"User-Agent": "reliefhub"},
            )
            _CLIENTS[key] = client
        return client


def is_provider_token(header: dict[str, Any], settings: Settings) -> bool:
    """Whether a token's (unverified) header says it is for the identity provider's keys."""
    return settings.oidc_enabled and header.get("alg") in settings.oidc_algorithms


def signing_key(token: str, settings: Settings) -> PyJWK:
    """The provider's key the token names (`kid`). Blocking: fetches the JWKS when the cache has no such key."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as exc:
        raise Unauthorized("The token is not valid.") from exc
    if not isinstance(kid, str) or not kid:
        raise Unauthorized("The token names no signing key (`kid` in its header).")
    try:
        return jwks_client(settings).get_signing_key(kid)
    except jwt.PyJWKClientConnectionError as exc:
        raise IdentityProviderUnavailable(
            "The identity provider's keys (RELIEFHUB_OIDC_JWKS_URL) cannot be fetched; retry shortly.",
            headers={"Retry-After": "5"},
        ) from exc
    except jwt.PyJWKClientError as exc:
        raise Unauthorized(f"The token's signing key {kid!r} is not among the identity provider's keys.") from exc
    except jwt.PyJWTError as exc:  # a key set or key the provider published that PyJWT cannot use
        raise IdentityProviderUnavailable(
            f"The identity provider's key set cannot be used: {exc}.", headers={"Retry-After": "5"}
        ) from exc


def verified_claims(token: str, key: PyJWK, settings: Settings) -> dict[str, Any]:
    """The token's claims, once its signature, issuer, audience and lifetime hold."""
    try:
        raw: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=list(settings.oidc_algorithms),
            audience=settings.oidc_audience,
            issuer=settings.oidc_issuer,
            leeway=settings.oidc_leeway_seconds,
            options={"require": ["sub", "exp", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The token has expired.") from exc
    except jwt.InvalidAudienceError as exc:
        raise Unauthorized(f"The token is not meant for this service (audience {settings.oidc_audience!r}).") from exc
    except jwt.InvalidIssuerError as exc:
        raise Unauthorized(f"The token was not issued by the identity provider {settings.oidc_issuer!r}.") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("The token is not valid.") from exc
    return raw


def claim(raw: dict[str, Any], name: str) -> Any:
    """A claim by name, or by a dotted path into nested objects (`realm_access.roles`). A claim whose own name
    holds dots (`https://example.org/roles`) is found under that name first."""
    if name in raw:
        return raw[name]
    value: Any = raw
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _as_list(value: Any) -> Any:
    """A list claim as a list: identity providers send single values as strings, or lists joined by spaces or
    commas (a Keycloak user attribute that is not multivalued). Anything else is left for validation to refuse."""
    if isinstance(value, str):
        return [v for v in _LIST_SEPARATORS.split(value) if v]
    return value


def mapped_claims(raw: dict[str, Any], settings: Settings, *, known_roles: Collection[str]) -> dict[str, Any]:
    """The provider's claims under ReliefHub's names (`org`, `roles`, `regions`, `group`). The provider's roles
    that are not ReliefHub roles (Keycloak's `offline_access`, `default-roles-…`) are left out; a `regions`
    claim that is absent means national, as for HS256 tokens."""
    out = dict(raw)
    out["org"] = claim(raw, settings.oidc_claim_org)
    roles = _as_list(claim(raw, settings.oidc_claim_roles))
    if roles is None:
        out["roles"] = []
    elif isinstance(roles, list):
        out["roles"] = [r for r in roles if isinstance(r, str) and r in known_roles]
    else:
        out["roles"] = roles  # the wrong type: TokenClaims refuses it
    regions = claim(raw, settings.oidc_claim_regions)
    out["regions"] = None if regions is None else _as_list(regions)
    group = claim(raw, settings.oidc_claim_group)
    if isinstance(group, list) and len(group) == 1:  # a Keycloak attribute mapped as multivalued
        group = group[0]
    out["group"] = group
    return out
