"""The needs service: recipient sites, needs and their lines, verification, duplicates and staleness."""

from __future__ import annotations

from fastapi import FastAPI

from services.needs.claims import expire_claims, on_logistics_event, on_logistics_events
from services.needs.claims_router import router as claims_router
from services.needs.events import MATCHED, on_matching_event, on_matching_events
from services.needs.models import Base, catalog, kit
from services.needs.operations import on_operation_event
from services.needs.requests_router import router as requests_router
from services.needs.router import router
from services.needs.service import expire_stale_needs
from shared.app import create_service_app
from shared.migrations import migrations_dir
from shared.operations import OPERATION_EVENTS
from shared.service import PeriodicJob, ServiceSpec, Subscription
from shared.settings import Settings

SERVICE = ServiceSpec(
    name="needs",
    description="The item catalog, recipient sites and their needs: intake, verification, duplicates, staleness.",
    metadata=Base.metadata,
    kit=kit,
    catalog=catalog,
    routers=[requests_router, router, claims_router],  # /items/requests before /items/{item_code}
    migrations=migrations_dir(__file__),
    collections=("items", "sites", "needs", "claims"),
    subscriptions=[
        Subscription(
            stream="matching.events",
            group="needs-rollup",
            handler=on_matching_event,
            batch_handler=on_matching_events,
            types=MATCHED,
        ),
        Subscription(
            stream="logistics.events",
            group="needs-rollup",
            handler=on_logistics_event,
            batch_handler=on_logistics_events,
            types=("reliefhub.logistics.shipment.",),
        ),
        Subscription(
            stream="logistics.events",
            group="needs-operations",
            handler=on_operation_event,
            types=tuple(sorted(OPERATION_EVENTS)),
        ),
    ],
    jobs=[
        PeriodicJob("expire-stale-needs", expire_stale_needs, lambda s: s.sweep_seconds),
        PeriodicJob("expire-claims", expire_claims, lambda s: s.sweep_seconds),
    ],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings)
