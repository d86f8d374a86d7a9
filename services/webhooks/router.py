"""HTTP endpoints of the webhooks service."""

from __future__ import annotations

from typing import Any

from services.webhooks import service
from shared.app import service_router
from shared.auth import CurrentPrincipal
from shared.errors import problem_responses

router = service_router(prefix="/v1", tags=["webhooks"])


@router.get("/event-types", responses=problem_responses())
async def list_event_types(principal: CurrentPrincipal) -> dict[str, Any]:
    """The catalog of event types every service publishes, each with the JSON Schema of its data."""
    return {"items": service.event_type_catalog()}
