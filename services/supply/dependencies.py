"""Dependencies of the supply service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from shared.auth import Principal, Role, require_roles

DonorWriter = Annotated[Principal, Depends(require_roles(Role.coordinator, Role.donor))]
WorkingGroup = Annotated[Principal, Depends(require_roles(Role.working_group))]
Reserver = Annotated[Principal, Depends(require_roles(Role.coordinator, Role.logistics))]
