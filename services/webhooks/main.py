"""The webhooks service: working groups' endpoints, signed deliveries, the event catalog."""

from __future__ import annotations

from fastapi import FastAPI

from services.webhooks.delivery import run_dispatcher
from services.webhooks.models import Base, kit
from services.webhooks.router import router
from services.webhooks.service import on_event, on_events
from shared.app import create_service_app
from shared.migrations import migrations_dir
from shared.service import ServiceSpec, Subscription
from shared.settings import Settings

SERVICE = ServiceSpec(
    name="webhooks",
    description="Working groups' webhook endpoints, signed deliveries and the event catalog.",
    metadata=Base.metadata,
    kit=kit,
    routers=[router],
    migrations=migrations_dir(__file__),
    collections=("event-types", "webhook-endpoints", "webhook-deliveries"),
    # Every service's stream, webhooks' own included (an endpoint may watch others being disabled).
    subscriptions=[
        Subscription(stream=f"{name}.events", group="webhooks-fanout", handler=on_event, batch_handler=on_events)
        for name in ("needs", "supply", "matching", "logistics", "webhooks", "partners")
    ],
    loops=[run_dispatcher],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings)
