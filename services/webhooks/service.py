"""Business rules of the webhooks service."""

from __future__ import annotations

from typing import Any

from shared.events import event_catalog


def event_type_catalog() -> list[dict[str, Any]]:
    # The publishers' modules register their types when imported.
    import services.matching.events
    import services.needs.events
    import services.supply.events  # noqa: F401

    return [
        {"type": et.name, "service": et.service, "description": et.description, "schema": et.json_schema()}
        for et in event_catalog()
    ]
