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


@cache
def sub_resource_table() -> dict[tuple[str, str], str]:
    """(collection, name) → the service that serves `/v1/<collection>/{id}/<name>` though another owns the
    collection."""
    owners = route_table()
    table: dict[tuple[str, str], str] = {}
    for spec in services().values():
        for sub in spec.sub_resources:
            collection, _, name = sub.partition("/")
            if owners.get(collection) in (None, spec.name) or not name or "/" in name:
                raise ValueError(f"{spec.name}: {sub!r} is not <another service's collection>/<name>")
            if (collection, name) in table:
                raise ValueError(
                    f"/v1/{collection}/{{id}}/{name} is claimed by {table[collection, name]} and {spec.name}"
                )
            table[collection, name] = spec.name
    return table


def service_of(path: str) -> str | None:
    """The service that answers `path` (`/v1/<collection>/…`), if any."""
    parts = path.split("/", 5)
    if len(parts) < 3 or parts[1] != "v1":
        return None
    if len(parts) >= 5:
        name = parts[4].split(".", 1)[0]
        sub = sub_resource_table().get((parts[2], name))
        if sub is not None:
            return sub
    return route_table().get(parts[2])
