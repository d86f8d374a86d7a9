"""Dependencies of the partners service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from shared.auth import Principal, Role, require_roles, settings_of
from shared.settings import Settings


def bearer_credentials(request: Request) -> str:
    """The caller's Authorization header, passed on when a task's outcome is recorded by the service owning its
    subject (that service then decides, as for a direct call, whether the caller may give it)."""
    return request.headers.get("authorization", "")


Coordinator = Annotated[Principal, Depends(require_roles(Role.coordinator))]
TaskWorker = Annotated[Principal, Depends(require_roles(Role.working_group))]
Credentials = Annotated[str, Depends(bearer_credentials)]
SettingsDep = Annotated[Settings, Depends(settings_of)]
