"""Every service, and the one route table: which service owns each `/v1/<collection>`."""

from __future__ import annotations

from functools import cache

from shared.service import ServiceSpec


@cache
def services() -> dict[str, ServiceSpec]:
    from services.logistics.main import SERVICE as logistics
    from services.matching.main import SERVICE as matching
    from services.needs.main import SERVICE as needs
    from services.partners.main import SERVICE as partners
    from services.supply.main import SERVICE as supply
    from services.webhooks.main import SERVICE as webhooks

    return {s.name: s for s in (needs, supply, matching, logistics, webhooks, partners)}


@cache
def route_table() -> dict[str, str]:
    """`collection` → service name, from each service's declared collections."""
    table: dict[str, str] = {}
    for spec in services().values():
        for collection in spec.collections:
            if collection in table:
                raise ValueError(f"/v1/{collection} is claimed by {table[collection]} and {spec.name}")
            table[collection] = spec.name
    return table
