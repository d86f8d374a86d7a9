"""The logistics service: shipments, procurement, proof of delivery, feedback, public tracking and impact reports."""

from __future__ import annotations

from fastapi import FastAPI

from services.logistics.accounts_router import router as accounts_router
from services.logistics.claimed import CLAIM_CONFIRMED, on_claim_event
from services.logistics.events import SUBSCRIPTIONS
from services.logistics.funds_router import router as funds_router
from services.logistics.models import Base, catalog, kit
from services.logistics.router import router
from shared.app import create_service_app
from shared.migrations import migrations_dir
from shared.service import ServiceSpec, Subscription
from shared.settings import Settings

SERVICE = ServiceSpec(
    name="logistics",
    description="Shipments, procurement, proof of delivery, feedback, public tracking and impact reports.",
    metadata=Base.metadata,
    kit=kit,
    catalog=catalog,
    routers=[router, funds_router, accounts_router],
    migrations=migrations_dir(__file__),
    collections=(
        "shipments",
        "procurements",
        "ledger",
        "track",
        "reports",
        "exports",
        "public",
        "operations",
        "funds",
    ),
    sub_resources=("donors/statement",),
    calls=("supply",),
    subscriptions=[
        *SUBSCRIPTIONS,
        Subscription(stream="needs.events", group="logistics-claims", handler=on_claim_event, types=(CLAIM_CONFIRMED,)),
    ],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings)
