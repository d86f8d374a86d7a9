"""Dependencies of the matching service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from shared.auth import Principal, Role, require_roles

Coordinator = Annotated[Principal, Depends(require_roles(Role.coordinator))]
Staff = Annotated[Principal, Depends(require_roles(Role.coordinator, Role.logistics, Role.working_group))]
# The need's site (its frontline users) or a coordinator: declining a proposal, reading a site's proposals.
SiteOrStaff = Annotated[
    Principal,
    Depends(require_roles(Role.frontline, Role.coordinator, Role.logistics, Role.working_group)),
]
SiteOrCoordinator = Annotated[Principal, Depends(require_roles(Role.frontline, Role.coordinator))]
