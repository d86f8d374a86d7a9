"""Dependencies of the supply service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from shared.auth import Principal, Role, require_roles

DonorWriter = Annotated[Principal, Depends(require_roles(Role.coordinator, Role.donor))]
WorkingGroup = Annotated[Principal, Depends(require_roles(Role.working_group))]
# Matching reserves for accepted proposals with its service token (an admin); coordinators may hold stock by hand.
Reserver = Annotated[Principal, Depends(require_roles(Role.coordinator))]
# Coordinators and the fundraising working group (the route checks the group) record payments.
PaymentRecorder = Annotated[Principal, Depends(require_roles(Role.coordinator, Role.working_group))]
