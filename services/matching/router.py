"""HTTP endpoints of the matching service."""

from __future__ import annotations

from shared.app import service_router

router = service_router(prefix="/v1", tags=["matching"])
