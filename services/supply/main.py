"""The supply service: donors, offers (in-kind lots and cash pledges), verification and reservations."""

from __future__ import annotations

from fastapi import FastAPI

from services.supply.events import on_logistics_event
from services.supply.funding import FUND_EVENTS, on_funding_event
from services.supply.models import Base, catalog, kit
from services.supply.router import router
from services.supply.service import expire_reservations
from shared.app import create_service_app
from shared.catalog.follow import CATALOG_TYPES, catalog_handler
from shared.migrations import migrations_dir
from shared.operations import OPERATION_EVENTS
from shared.service import PeriodicJob, ServiceSpec, Subscription
from shared.settings import Settings

SERVICE = ServiceSpec(
    name="supply",
    description=(
        "Donors and their offers: in-kind lots and cash pledges, working-group verification, reservations, "
        "payments received against pledges."
    ),
    metadata=Base.metadata,
    kit=kit,
    routers=[router],
    migrations=migrations_dir(__file__),
    collections=("donors", "offers", "lots", "reservations"),
    subscriptions=[
        Subscription(
            stream="logistics.events",
            group="supply-shipments",
            handler=on_logistics_event,
            types=("reliefhub.logistics.shipment.",),
        ),
        Subscription(
            stream="logistics.events",
            group="supply-funding",
            handler=on_funding_event,
            types=tuple(sorted(OPERATION_EVENTS | FUND_EVENTS)),
        ),
        Subscription(
            stream="needs.events", group="supply-catalog", handler=catalog_handler(catalog), types=CATALOG_TYPES
        ),
    ],
    catalog=catalog,
    jobs=[PeriodicJob("expire-reservations", expire_reservations, lambda s: min(s.sweep_seconds, 30.0))],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings)
