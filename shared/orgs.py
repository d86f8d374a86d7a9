"""The organisations registry as every service sees it: may the caller's organisation write?

The registry lives in the partners service; each process asks it over HTTP (`GET /v1/organizations/{id}`) and
remembers an approved organisation for `org_status_cache_seconds`, so a busy writer costs one lookup per window.
Any other answer is asked again on the next write: an approval takes effect at once, a suspension within the
window. Looked up rather than carried in the token: an identity provider knows nothing of approvals, and a
token issued before a suspension would otherwise keep writing until it expires."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx
from fastapi import Request

from shared.auth import Principal, Role, current_principal
from shared.errors import Forbidden, ServiceUnavailable, Unauthorized

if TYPE_CHECKING:
    from shared.runtime import Runtime

REGISTRY_SERVICE = "partners"
APPROVED = "approved"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class OrganisationNotApproved(Forbidden):
    slug, title = "organisation-not-approved", "Your organisation is not approved to make changes"


@dataclass
class OrgStatuses:
    """Approved organisations seen recently, per process: org → when the registry last said so."""

    approved_at: dict[str, float] = field(default_factory=dict)

    async def status(self, rt: Runtime, org: str) -> str | None:
        """The organisation's status in the registry (None: not registered)."""
        now = time.monotonic()
        seen = self.approved_at.get(org)
        if seen is not None and now - seen < rt.settings.org_status_cache_seconds:
            return APPROVED
        try:
            response = await rt.client(REGISTRY_SERVICE).request("GET", f"/v1/organizations/{quote(org, safe='')}")
        except httpx.HTTPError:
            response = None
        if response is None or response.status_code >= 500 or response.status_code in (401, 403, 429):
            if seen is not None and now - seen < rt.settings.org_status_stale_seconds:
                return APPROVED  # the registry is away: what it said a little while ago still stands
            raise ServiceUnavailable("The organisations registry cannot be reached; retry shortly.")
        if response.status_code == 404:
            self.approved_at.pop(org, None)
            return None
        status = str(response.json().get("status"))
        if status == APPROVED:
            self.approved_at[org] = now
        else:
            self.approved_at.pop(org, None)
        return status


def statuses_of(request: Request) -> OrgStatuses:
    state = request.app.state
    if not hasattr(state, "org_statuses"):
        state.org_statuses = OrgStatuses()
    statuses: OrgStatuses = state.org_statuses
    return statuses


async def require_approved_org(request: Request, rt: Runtime) -> None:
    """Refuse a write by an organisation the registry has not approved. Admins (operators and the services'
    own calls) are not organisations of the registry; a request without a valid token is left to its route
    (a 401)."""
    try:
        principal: Principal = await current_principal(request)
    except Unauthorized:
        return
    if principal.has(Role.admin):
        return
    status = await statuses_of(request).status(rt, principal.org)
    if status == APPROVED:
        return
    if status is None:
        detail = (
            f"Organisation {principal.org!r} is not registered: register it (POST /v1/organizations) and have "
            "a coordinator of the hub covering it approve it."
        )
    elif status == "pending":
        detail = f"Organisation {principal.org!r} awaits approval by a coordinator of the hub covering it."
    else:
        detail = f"Organisation {principal.org!r} is {status}; it may not make changes."
    raise OrganisationNotApproved(detail, extra={"org_status": status})
