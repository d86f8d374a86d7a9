"""Request headers with a bearer token signed by the test secret."""

from __future__ import annotations

from collections.abc import Callable

from shared.auth import Role, create_token
from shared.settings import Settings

# auth("coordinator", org="org-hub", sub=…, group=…, regions=[…], idempotency_key="k") → headers
TokenFactory = Callable[..., dict[str, str]]


def token_factory(settings: Settings) -> TokenFactory:
    """What the `auth` fixture is: headers with a token of these roles (and any extra headers, `_` → `-`)."""

    def make(
        *roles: str,
        org: str = "org-hub",
        sub: str | None = None,
        group: str | None = None,
        regions: list[str] | None = None,
        **headers: str,
    ) -> dict[str, str]:
        token = create_token(
            sub=sub or f"user-{org}",
            org=org,
            roles=[Role(r) for r in roles],
            group=group,
            regions=regions,
            settings=settings,
        )
        return {"Authorization": f"Bearer {token}", **{k.replace("_", "-"): v for k, v in headers.items()}}

    return make
